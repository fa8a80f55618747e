"""Compact JSON codecs for activities and aggregated activities (never pickle).

An activity is stored as the JSON array
``[verb_id, actor, object, target, time_micros, extra_context]``, followed by an object
of subclass fields for a class that has them (older data has ``null`` there), and an
aggregated activity in a compact text form a Lua script can extend:
``~<created>|<updated>|<seen>|<read>|<minimized>|<kept>|<last entry bytes>|<group
bytes>|<group>`` (times as 18 digits of µs, empty for none) then per kept activity, in id
order, ``<id>\\x1f<data>\\x1f`` (a control byte JSON never holds).
The older JSON form ``[group, created, updated, seen, read, minimized, [activity
arrays...]]`` still loads. Which activities a group holds beyond the kept ones is known
to the feed's index, not the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar, cast

import orjson
from pydantic import ValidationError

from .activity import (
    Activity,
    AggregatedActivity,
    epoch_micros,
    format_micros,
    from_epoch_micros,
    stored_activity,
)
from .exceptions import SerializationError
from .verbs import get_verb_by_id

A = TypeVar("A", bound=Activity)
G = TypeVar("G", bound=AggregatedActivity)

_BASE_FIELDS = frozenset(Activity.model_fields)
_ID_TYPES = frozenset((int, str))
_EPOCH = from_epoch_micros(0)
TIME_CACHE = 8192
"""Activity times decoded lately, by microseconds (datetimes are immutable, so shared);
cleared when full. Feeds read the same activities over and over."""
_times: dict[int, datetime] = {}

SEPARATOR = b"\x1f"
"""Ends ids and activity data in the compact group form (a control byte JSON never holds)."""

DECODED_CACHE = 4096
"""Decoded activities one aggregated serializer keeps (cleared when full)."""


def _caches_id(activity_class: type[Activity]) -> bool:
    return getattr(activity_class, "activity_id", None) is Activity.__dict__["activity_id"]


def _subclass_fields(activity_class: type[Activity]) -> tuple[str, ...]:
    return tuple(name for name in activity_class.model_fields if name not in _BASE_FIELDS)


class ActivitySerializer(Generic[A]):
    """Encodes activities of one class to compact JSON and back, subclass fields included."""

    def __init__(self, activity_class: type[A] = Activity) -> None:  # type: ignore[assignment]
        if not (isinstance(activity_class, type) and issubclass(activity_class, Activity)):
            raise TypeError(f"activity_class must be an Activity subclass, got {activity_class!r}")
        self.activity_class = activity_class
        self._extra_fields = _subclass_fields(activity_class)
        self._plain = activity_class is Activity
        self.keeps_ids = _caches_id(activity_class)
        """Whether a decoded activity may take its stored id instead of hashing it again."""

    def to_data(self, activity: Activity) -> list[Any]:
        """The JSON-ready array of one activity."""
        data = [
            activity.verb.id,
            activity.actor,
            activity.object,
            activity.target,
            epoch_micros(activity.time),
            activity.extra_context,
        ]
        if self._extra_fields:
            data.append(activity.model_dump(mode="json", include=set(self._extra_fields)))
        return data

    def from_data(self, data: Any, activity_id: str | None = None) -> A:
        """Rebuild an activity from its array; ``SerializationError`` on malformed data.

        ``activity_id``, the id the data was stored under, is trusted as its id (a plain
        ``Activity`` then never hashes its fields again).
        """
        try:
            if self._plain:
                return _plain_activities([activity_id], [data])[0]  # type: ignore[return-value]
            if len(data) == 6:
                verb_id, actor, object_, target, micros, extra_context = data
                extra = None
            else:
                verb_id, actor, object_, target, micros, extra_context, extra = data
            fields = dict(extra or {})
            fields.update(
                actor=actor,
                verb=get_verb_by_id(verb_id),
                object=object_,
                target=target,
                time=from_epoch_micros(micros),
                extra_context=extra_context or {},
            )
            return self.activity_class.model_validate(fields)
        except (TypeError, ValueError, KeyError, OverflowError, ValidationError) as exc:
            raise SerializationError(
                f"cannot decode a {self.activity_class.__name__} from {data!r:.200}: {exc}"
            ) from exc

    def loads_rows(self, rows: Sequence[tuple[str, bytes]]) -> list[A]:
        """Decode stored rows ``(activity_id, data)`` with one JSON parse for them all; each
        id is trusted as that of its data (it is the key the data was stored under)."""
        if not rows:
            return []
        try:
            decoded = orjson.loads(b"[" + b",".join([data for _, data in rows]) + b"]")
        except (orjson.JSONDecodeError, TypeError):
            decoded = None
        if type(decoded) is not list or len(decoded) != len(rows):
            # one of them is not valid JSON: decode each, so the error names it
            return [self.from_data(_parse(data), activity_id) for activity_id, data in rows]
        if self._plain:
            try:
                return _plain_activities([row[0] for row in rows], decoded)  # type: ignore[return-value]
            except (TypeError, ValueError, KeyError, OverflowError):
                pass  # decode each below, so the error names the row
        return [
            self.from_data(data, row[0]) for row, data in zip(rows, decoded, strict=True)
        ]

    def dumps(self, activity: Activity) -> bytes:
        """Encode one activity."""
        return orjson.dumps(self.to_data(activity))

    def loads(self, raw: bytes | str, activity_id: str | None = None) -> A:
        """Decode one activity (``activity_id``: the id it was stored under, trusted)."""
        return self.from_data(_parse(raw), activity_id)

    def dumps_many(self, activities: Iterable[Activity]) -> dict[str, bytes]:
        """Encode activities keyed by id."""
        return {a.activity_id: self.dumps(a) for a in activities}


class AggregatedSerializer(Generic[G]):
    """Encodes aggregated activities, with their activities inline, to compact JSON and back."""

    def __init__(
        self,
        aggregated_class: type[G],
        activity_serializer: ActivitySerializer[Any],
    ) -> None:
        self.aggregated_class = aggregated_class
        self.activities = activity_serializer
        self._decoded: dict[bytes, Activity] = {}
        """Activities decoded from the compact form by their encoding: activities are frozen,
        so groups may share them (only those without mutable extra context or fields)."""
        self._caches = not activity_serializer._extra_fields
        self._defaults = _plain_defaults(aggregated_class)
        """The other fields' defaults, if ``model_construct`` may be skipped (plain defaults,
        no private attributes), else ``None``."""

    def dumps(self, aggregated: AggregatedActivity) -> bytes:
        """Encode one aggregated activity (the compact form)."""
        group = aggregated.group.encode()
        items = [entry(a.activity_id, self.activities.dumps(a)) for a in aggregated.activities]
        entries = [item for item in items if item is not None]
        if len(entries) < len(items):
            return self._dumps_json(aggregated)
        header = b"~%s|%s|%s|%s|%d|%d|%d|%d|%s" % (
            _digits(aggregated.created_at),
            _digits(aggregated.updated_at),
            _digits(aggregated.seen_at),
            _digits(aggregated.read_at),
            aggregated.minimized_activities,
            len(entries),
            len(entries[-1]) if entries else 0,
            len(group),
            group,
        )
        return header + b"".join(entries)

    def _dumps_json(self, aggregated: AggregatedActivity) -> bytes:
        """The older JSON form, for activities the compact form cannot hold."""
        return orjson.dumps(
            [
                aggregated.group,
                _micros(aggregated.created_at),
                _micros(aggregated.updated_at),
                _micros(aggregated.seen_at),
                _micros(aggregated.read_at),
                aggregated.minimized_activities,
                [self.activities.to_data(a) for a in aggregated.activities],
            ]
        )

    def loads(self, raw: bytes | str) -> G:
        """Decode one aggregated activity; ``SerializationError`` on malformed data."""
        if isinstance(raw, str):
            raw = raw.encode()
        try:
            if raw[:1] == b"~":
                return self._loads_compact(raw)
            data = orjson.loads(raw)
            group, created, updated, seen, read, minimized, activities = data
            if not isinstance(group, str) or not isinstance(minimized, int):
                raise TypeError("expected 7 fields, a string group and an integer minimized")
            return self.aggregated_class.model_construct(
                group=group,
                created_at=_time_or_none(created),
                updated_at=_time_or_none(updated),
                seen_at=_time_or_none(seen),
                read_at=_time_or_none(read),
                minimized_activities=minimized,
                activities=[self.activities.from_data(a) for a in activities],
            )
        except SerializationError:
            raise
        except (orjson.JSONDecodeError, TypeError, ValueError, OverflowError) as exc:
            raise SerializationError(
                f"cannot decode a {self.aggregated_class.__name__} from {raw!r:.200}: {exc}"
            ) from exc

    def remember(self, data: bytes, activity: Activity) -> None:
        """Take ``activity`` as the decoding of ``data`` (an activity just written)."""
        if (
            self._caches
            and type(activity) is self.activities.activity_class
            and not activity.extra_context
            and len(self._decoded) < DECODED_CACHE
        ):
            self._decoded[data] = activity

    def _loads_compact(self, raw: bytes) -> G:
        fields = raw.split(b"|", 8)
        if len(fields) != 9:
            raise ValueError("expected 9 header fields")
        body = fields[8][int(fields[7]) :]
        parts = body.split(SEPARATOR)
        if parts.pop() != b"" or len(parts) % 2:
            raise ValueError("activity entries are not id and data pairs")
        ids, datas = parts[0::2], parts[1::2]
        return self._build(raw[: len(raw) - len(body)], ids, datas)

    def _build(self, header: bytes, ids: Sequence[bytes], datas: Sequence[bytes]) -> G:
        """The group of a compact header (ending with the group) and its kept activities."""
        if header[:1] != b"~":
            raise ValueError("not a compact group header")
        fields = header[1:].split(b"|", 8)
        created, updated, seen, read, minimized, kept, _, size, group = fields
        if len(group) != int(size):
            raise ValueError("group length does not match")
        if len(ids) != len(datas) or len(ids) != int(kept):
            raise ValueError("kept activities do not match their count")
        cache = self._decoded
        found = [cache.get(data) for data in datas]
        missing = [i for i, hit in enumerate(found) if hit is None]
        if missing:
            arrays = orjson.loads(b"[" + b",".join(datas[i] for i in missing) + b"]")
            if len(cache) + len(missing) > DECODED_CACHE:
                cache.clear()
            for i, array in zip(missing, arrays, strict=True):
                activity = found[i] = self.activities.from_data(array)
                if self.activities.keeps_ids:
                    activity.__dict__["activity_id"] = ids[i].decode()
                if self._caches and not activity.extra_context:
                    cache[datas[i]] = activity
        values = {
            "group": group.decode(),
            "created_at": _time_of_digits(created),
            "updated_at": _time_of_digits(updated),
            "seen_at": _time_of_digits(seen),
            "read_at": _time_of_digits(read),
            "minimized_activities": int(minimized),
            "activities": cast(list[Activity], found),
        }
        defaults = self._defaults
        if defaults is None:
            return self.aggregated_class.model_construct(**values)
        built = self.aggregated_class.__new__(self.aggregated_class)
        object.__setattr__(built, "__dict__", {**defaults, **values})
        object.__setattr__(built, "__pydantic_fields_set__", set(values))
        object.__setattr__(built, "__pydantic_extra__", None)
        object.__setattr__(built, "__pydantic_private__", None)
        return built


def entry(activity_id: str, data: bytes) -> bytes | None:
    """One kept activity in the compact group form, ``<id>\\x1f<data>\\x1f``; ``None`` if
    either holds the separator (JSON never does; such a group keeps the JSON form)."""
    ident = activity_id.encode()
    if SEPARATOR in ident or SEPARATOR in data or ident[:1] in (b"", b"["):
        return None
    return ident + SEPARATOR + data + SEPARATOR


def _plain_activities(ids: Sequence[str | None], arrays: Sequence[Any]) -> list[Activity]:
    """Plain ``Activity`` objects without validation: cheap type checks, so corrupt rows fail
    loudly; an ``extra`` field (a subclass's) is ignored, as the class has none. An id given
    is trusted as its activity's."""
    built = []
    for activity_id, data in zip(ids, arrays, strict=True):
        if type(data) is not list:
            raise TypeError(f"expected an array, got {type(data).__name__}")
        if len(data) == 7:
            verb_id, actor, object_, target, micros, extra_context, _ = data
        else:
            verb_id, actor, object_, target, micros, extra_context = data
        if (
            type(actor) not in _ID_TYPES
            or type(object_) not in _ID_TYPES
            or (target is not None and type(target) not in _ID_TYPES)
        ):
            raise TypeError(f"ids must be int or str, got {actor!r}, {object_!r}, {target!r}")
        if type(micros) is not int:
            raise TypeError(f"time must be integer microseconds, got {micros!r}")
        if extra_context is None:
            extra_context = {}
        elif type(extra_context) is not dict:
            raise TypeError(f"extra_context must be an object, got {extra_context!r}")
        time = _times.get(micros)
        if time is None:
            if len(_times) >= TIME_CACHE:
                _times.clear()
            time = _times[micros] = _EPOCH + timedelta(0, 0, micros)
        values = {
            "actor": actor,
            "verb": get_verb_by_id(verb_id),
            "object": object_,
            "target": target,
            "time": time,
            "extra_context": extra_context,
        }
        if activity_id is not None:
            values["activity_id"] = activity_id  # the cached_property's slot
        built.append(stored_activity(values))
    return built


def _parse(raw: bytes | str) -> Any:
    """The JSON value of stored data; ``SerializationError`` if it is not JSON."""
    try:
        return orjson.loads(raw)
    except (orjson.JSONDecodeError, TypeError) as exc:
        raise SerializationError(f"stored activity is not valid JSON: {raw!r:.200}") from exc


_BUILT = frozenset(
    (
        "group",
        "created_at",
        "updated_at",
        "seen_at",
        "read_at",
        "minimized_activities",
        "activities",
    )
)


def _plain_defaults(aggregated_class: type[AggregatedActivity]) -> dict[str, Any] | None:
    """Defaults of the fields a compact group does not hold, if all are plain immutable
    values and the class has no private attributes or extra; else ``None``."""
    if aggregated_class.__private_attributes__ or aggregated_class.model_config.get("extra"):
        return None
    defaults: dict[str, Any] = {}
    for name, info in aggregated_class.model_fields.items():
        if name in _BUILT:
            continue
        if info.default_factory is not None or not isinstance(
            info.default, bool | int | float | str | bytes | type(None)
        ):
            return None
        defaults[name] = info.default
    return defaults


_TIMES: dict[bytes, Any] = {}
"""Datetimes of recent 18-digit times (groups share creation and update times)."""


def _micros(value: Any) -> int | None:
    return None if value is None else epoch_micros(value)


def _digits(value: Any) -> bytes:
    return b"" if value is None else format_micros(epoch_micros(value)).encode()


def _time_of_digits(value: bytes) -> Any:
    if not value:
        return None
    found = _TIMES.get(value)
    if found is None:
        if not value.isdigit():
            raise ValueError(f"malformed time {value!r}")
        if len(_TIMES) >= DECODED_CACHE:
            _TIMES.clear()
        found = _TIMES[value] = from_epoch_micros(int(value))
    return found


def _time_or_none(value: int | None) -> Any:
    return None if value is None else from_epoch_micros(value)
