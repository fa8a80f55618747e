"""Compact JSON codecs for activities and aggregated activities (never pickle).

An activity is stored as the JSON array
``[verb_id, actor, object, target, time_micros, extra_context]``, followed by an object
of subclass fields for a class that has them (older data has ``null`` there), and an
aggregated activity as ``[group, created, updated, seen, read, minimized, [activity
arrays...]]``; which activities a group holds beyond the kept ones is known to the feed's
index, not the group.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime, timedelta
from typing import Any, Generic, TypeVar

import orjson
from pydantic import ValidationError

from .activity import (
    Activity,
    AggregatedActivity,
    epoch_micros,
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

    def dumps(self, aggregated: AggregatedActivity) -> bytes:
        """Encode one aggregated activity."""
        return orjson.dumps(
            [
                aggregated.group,
                _micros_or_none(aggregated.created_at),
                _micros_or_none(aggregated.updated_at),
                _micros_or_none(aggregated.seen_at),
                _micros_or_none(aggregated.read_at),
                aggregated.minimized_activities,
                [self.activities.to_data(a) for a in aggregated.activities],
            ]
        )

    def loads(self, raw: bytes | str) -> G:
        """Decode one aggregated activity; ``SerializationError`` on malformed data."""
        try:
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


def _micros_or_none(value: Any) -> int | None:
    return None if value is None else epoch_micros(value)


def _time_or_none(value: int | None) -> Any:
    return None if value is None else from_epoch_micros(value)
