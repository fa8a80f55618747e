"""Compact JSON codecs for activities and aggregated activities (never pickle).

An activity is stored as the JSON array
``[verb_id, actor, object, target, time_micros, extra_context, subclass_fields]``
and an aggregated activity as
``[group, created, updated, seen, read, minimized, [activity arrays...]]``; which
activities a group holds beyond the kept ones is known to the feed's index, not the group.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Generic, TypeVar

import orjson
from pydantic import ValidationError

from .activity import (
    Activity,
    AggregatedActivity,
    epoch_micros,
    from_epoch_micros,
)
from .exceptions import SerializationError
from .verbs import get_verb_by_id

A = TypeVar("A", bound=Activity)
G = TypeVar("G", bound=AggregatedActivity)

_BASE_FIELDS = frozenset(Activity.model_fields)


def _subclass_fields(activity_class: type[Activity]) -> tuple[str, ...]:
    return tuple(name for name in activity_class.model_fields if name not in _BASE_FIELDS)


class ActivitySerializer(Generic[A]):
    """Encodes activities of one class to compact JSON and back, subclass fields included."""

    def __init__(self, activity_class: type[A] = Activity) -> None:  # type: ignore[assignment]
        if not (isinstance(activity_class, type) and issubclass(activity_class, Activity)):
            raise TypeError(f"activity_class must be an Activity subclass, got {activity_class!r}")
        self.activity_class = activity_class
        self._extra_fields = _subclass_fields(activity_class)

    def to_data(self, activity: Activity) -> list[Any]:
        """The JSON-ready array of one activity."""
        extra = (
            activity.model_dump(mode="json", include=set(self._extra_fields))
            if self._extra_fields
            else None
        )
        return [
            activity.verb.id,
            activity.actor,
            activity.object,
            activity.target,
            epoch_micros(activity.time),
            activity.extra_context,
            extra,
        ]

    def from_data(self, data: Any) -> A:
        """Rebuild an activity from its array; ``SerializationError`` on malformed data."""
        try:
            verb_id, actor, object_, target, micros, extra_context, extra = data
            verb = get_verb_by_id(verb_id)
            time = from_epoch_micros(micros)
            if not self._extra_fields and self.activity_class is Activity:
                _check_unvalidated(actor, object_, target, extra_context)
                return Activity.model_construct(  # type: ignore[return-value]
                    actor=actor,
                    verb=verb,
                    object=object_,
                    target=target,
                    time=time,
                    extra_context=extra_context or {},
                )
            fields = dict(extra or {})
            fields.update(
                actor=actor,
                verb=verb,
                object=object_,
                target=target,
                time=time,
                extra_context=extra_context or {},
            )
            return self.activity_class.model_validate(fields)
        except (TypeError, ValueError, KeyError, OverflowError, ValidationError) as exc:
            raise SerializationError(
                f"cannot decode a {self.activity_class.__name__} from {data!r:.200}: {exc}"
            ) from exc

    def dumps(self, activity: Activity) -> bytes:
        """Encode one activity."""
        return orjson.dumps(self.to_data(activity))

    def loads(self, raw: bytes | str) -> A:
        """Decode one activity."""
        try:
            data = orjson.loads(raw)
        except (orjson.JSONDecodeError, TypeError) as exc:
            raise SerializationError(f"stored activity is not valid JSON: {raw!r:.200}") from exc
        return self.from_data(data)

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


def _check_unvalidated(actor: Any, object_: Any, target: Any, extra_context: Any) -> None:
    """Cheap type checks for the fast path that skips validation, so corrupt rows fail loudly."""
    for value in (actor, object_, target):
        if isinstance(value, bool) or not isinstance(value, int | str | None):
            raise TypeError(f"ids must be int or str, got {value!r}")
    if actor is None or object_ is None:
        raise TypeError("actor and object must not be null")
    if not isinstance(extra_context, dict | None):
        raise TypeError(f"extra_context must be an object, got {extra_context!r}")


def _micros_or_none(value: Any) -> int | None:
    return None if value is None else epoch_micros(value)


def _time_or_none(value: int | None) -> Any:
    return None if value is None else from_epoch_micros(value)
