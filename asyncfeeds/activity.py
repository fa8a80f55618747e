"""Activity models: a single activity, a group of them, and a notification group."""

from __future__ import annotations

import builtins
import hashlib
import math
from collections.abc import Iterable, Mapping
from datetime import UTC, datetime, timedelta
from functools import cached_property
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Protocol, Self

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    JsonValue,
    PlainSerializer,
    SerializeAsAny,
    computed_field,
    field_validator,
)

from .exceptions import ActivityNotFoundError, DuplicateActivityError
from .verbs import Verb, resolve_verb

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ID_TIME_DIGITS = 18
"""Digits of time at the start of an activity id: microseconds up to 9999-12-31 fit in 18."""
MAX_EXTRA_CONTEXT_DEPTH = 32
"""How deeply ``extra_context`` may nest, so every feed kind can store what validates."""


def _reduce_to_id(value: Any) -> Any:
    """Accept an object with an ``.id`` attribute in place of its id."""
    if isinstance(value, int | str) or value is None:
        return value
    if hasattr(value, "id"):
        return value.id
    return value


def _check_id(value: Any) -> int | str:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"must be an int or str id (or an object with .id), got {value!r}")
    if isinstance(value, str) and not value:
        raise ValueError("must not be an empty string")
    return value


ObjectId = Annotated[int | str, BeforeValidator(lambda v: _check_id(_reduce_to_id(v)))]
VerbType = Annotated[
    type[Verb],
    BeforeValidator(resolve_verb),
    PlainSerializer(lambda verb: verb.infinitive, return_type=str),
]


class HasId(Protocol):
    """Anything with an ``id`` (a Django model, a dataclass...), accepted in place of its id."""

    @property
    def id(self) -> int | str: ...


IdLike = int | str | HasId
"""What ``actor``, ``object`` and ``target`` accept: an id or an object with ``.id``."""
VerbLike = type[Verb] | Verb | int | str
"""What ``verb`` accepts: a registered verb class, its instance, its id or its infinitive."""


class _Required:
    """Marks a constructor argument not given, so pydantic reports it as a missing field."""

    def __repr__(self) -> str:
        return "<required>"


_REQUIRED: Any = _Required()


def _check_json(value: Any, depth: int = 1) -> None:
    """Reject NaN, infinity and nesting deeper than ``MAX_EXTRA_CONTEXT_DEPTH``."""
    if isinstance(value, float) and not math.isfinite(value):
        raise ValueError(f"{value} is not a JSON value")
    if isinstance(value, dict | list):
        if depth > MAX_EXTRA_CONTEXT_DEPTH:
            raise ValueError(f"nests deeper than {MAX_EXTRA_CONTEXT_DEPTH} levels")
        for item in value.values() if isinstance(value, dict) else value:
            _check_json(item, depth + 1)


def to_utc(value: datetime) -> datetime:
    """Naive datetimes are UTC; aware ones are converted to UTC."""
    if value.tzinfo is None:
        return value.replace(tzinfo=UTC)
    return value.astimezone(UTC)


def utcnow() -> datetime:
    """The current time, aware, in UTC."""
    return datetime.now(UTC)


def epoch_micros(value: datetime) -> int:
    """Microseconds since 1970-01-01 UTC of an aware datetime."""
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_epoch_micros(micros: int) -> datetime:
    """The aware UTC datetime ``micros`` microseconds after 1970-01-01."""
    return _EPOCH + timedelta(0, 0, micros)


def make_activity_id(time: datetime, verb_id: int, actor: Any, object_: Any, target: Any) -> str:
    """Build the sortable, deterministic id: 18 digits of time, then 16 hex of identity hash."""
    micros = epoch_micros(time)
    if micros < 0:
        raise ValueError("activity time must not be before 1970-01-01")
    identity = f"{verb_id}|{actor!r}|{object_!r}|{target!r}".encode()
    digest = hashlib.blake2b(identity, digest_size=8).hexdigest()
    return f"{micros:0{ID_TIME_DIGITS}d}{digest}"


def format_micros(micros: int) -> str:
    """Fixed-width digits of a time, as activity and aggregated ids start with."""
    return f"{micros:0{ID_TIME_DIGITS}d}"


def group_of(aggregated_id: str) -> str:
    """The group key inside an aggregated id (``<18-digit creation time>:<group>``)."""
    if len(aggregated_id) > ID_TIME_DIGITS and aggregated_id[ID_TIME_DIGITS] == ":":
        return aggregated_id[ID_TIME_DIGITS + 1 :]
    return aggregated_id


def activity_id_time(activity_id: str) -> datetime:
    """The time encoded in an activity id."""
    return from_epoch_micros(int(activity_id[:ID_TIME_DIGITS]))


class Activity(BaseModel):
    """Something an actor did to an object, at a time; its id is derived from those fields."""

    model_config = ConfigDict(frozen=True, arbitrary_types_allowed=True)

    actor: ObjectId
    verb: VerbType
    object: ObjectId
    target: ObjectId | None = None
    time: datetime = Field(default_factory=utcnow)
    extra_context: dict[str, JsonValue] = Field(default_factory=dict)

    if TYPE_CHECKING:

        def __init__(
            self,
            actor: IdLike,
            verb: VerbLike,
            object: IdLike,
            target: IdLike | None = None,
            time: datetime | None = None,
            extra_context: Mapping[str, JsonValue] | None = None,
            **fields: Any,
        ) -> None: ...

    else:

        def __init__(
            self,
            actor=_REQUIRED,
            verb=_REQUIRED,
            object=_REQUIRED,
            target=None,
            time=None,
            extra_context=None,
            **fields,
        ):
            """Stream Framework's signature, positional or by keyword; ``time=None`` is now."""
            for name, value in (("actor", actor), ("verb", verb), ("object", object)):
                if value is not _REQUIRED:
                    fields[name] = value
            optional = (("target", target), ("time", time), ("extra_context", extra_context))
            for name, value in optional:
                if value is not None:
                    fields[name] = value
            super().__init__(**fields)

        # model_validate, nested validation and model_construct bypass this __init__
        # exactly as they bypass BaseModel's: validation stays pydantic's own.
        __init__.__pydantic_base_init__ = True

    @field_validator("time")
    @classmethod
    def _time_to_utc(cls, value: datetime) -> datetime:
        try:
            value = to_utc(value)
        except OverflowError:
            raise ValueError("must be between 1970-01-01 and 9999-12-31 UTC") from None
        if value < _EPOCH:
            raise ValueError("must not be before 1970-01-01")
        return value

    @field_validator("extra_context")
    @classmethod
    def _json_only(cls, value: dict[str, Any]) -> dict[str, Any]:
        _check_json(value)
        return value

    @computed_field  # type: ignore[prop-decorator]
    @cached_property
    def activity_id(self) -> str:
        """Deterministic, unique and chronologically sortable string id."""
        return make_activity_id(self.time, self.verb.id, self.actor, self.object, self.target)

    @property
    def serialization_id(self) -> str:
        """Alias of ``activity_id`` (the Stream Framework name)."""
        return self.activity_id

    @property
    def actor_id(self) -> int | str:
        """Stream Framework's name for ``actor`` (always the id here)."""
        return self.actor

    @property
    def object_id(self) -> int | str:
        """Stream Framework's name for ``object`` (always the id here)."""
        return self.object

    @property
    def target_id(self) -> int | str | None:
        """Stream Framework's name for ``target`` (always the id here)."""
        return self.target

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with ``update`` applied; its id is derived afresh from the new fields."""
        copied = super().model_copy(update=update, deep=deep)
        copied.__dict__.pop("activity_id", None)
        return copied

    def __eq__(self, other: builtins.object) -> bool:
        if isinstance(other, Activity):
            return self.activity_id == other.activity_id
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self.activity_id)

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(actor={self.actor!r}, verb={self.verb.infinitive}, "
            f"object={self.object!r}, target={self.target!r}, time={self.time.isoformat()})"
        )


_ACTIVITY_FIELDS = frozenset(("actor", "verb", "object", "target", "time", "extra_context"))
_new_object = object.__new__
_set_slot = object.__setattr__


def stored_activity(values: dict[str, Any]) -> Activity:
    """An ``Activity`` whose ``__dict__`` is ``values``: its six fields as read back from
    storage (and its ``activity_id``, trusted, if there), built without validation, as
    ``model_construct`` would build it, for less."""
    activity: Activity = _new_object(Activity)
    _set_slot(activity, "__dict__", values)
    _set_slot(activity, "__pydantic_fields_set__", set(_ACTIVITY_FIELDS))
    _set_slot(activity, "__pydantic_extra__", None)
    _set_slot(activity, "__pydantic_private__", None)
    return activity


class AggregatedActivity(BaseModel):
    """A group of activities shown as one item, such as "3 people pinned to Cooking today"."""

    model_config = ConfigDict(validate_assignment=False)

    max_aggregated_activities_length: ClassVar[int] = 15

    group: str
    activities: list[SerializeAsAny[Activity]] = Field(default_factory=list)
    """Dumped as their own classes, so an activity subclass keeps its fields in JSON."""
    created_at: datetime | None = None  # time of the first activity; fixed, it keys the id
    updated_at: datetime | None = None
    seen_at: datetime | None = None
    read_at: datetime | None = None
    minimized_activities: int = 0
    """Activities of the group no longer kept in ``activities`` (the feed's index knows them)."""

    @field_validator("created_at", "updated_at", "seen_at", "read_at")
    @classmethod
    def _times_to_utc(cls, value: datetime | None) -> datetime | None:
        return None if value is None else to_utc(value)

    @computed_field  # type: ignore[prop-decorator]
    @property
    def aggregated_id(self) -> str:
        """Stable id: creation time then group key, so a group reopened later gets a new id."""
        if self.created_at is None:
            return self.group
        return f"{format_micros(epoch_micros(self.created_at))}:{self.group}"

    @property
    def serialization_id(self) -> str:
        """Alias of ``aggregated_id``."""
        return self.aggregated_id

    @computed_field  # type: ignore[prop-decorator]
    @property
    def activity_count(self) -> int:
        """All activities ever in the group, the minimized ones included."""
        return len(self.activities) + self.minimized_activities

    @property
    def actor_ids(self) -> list[int | str]:
        """Distinct actors of the kept activities, newest first."""
        return _distinct(a.actor for a in reversed(self.activities))

    @property
    def object_ids(self) -> list[int | str]:
        """Distinct objects of the kept activities, newest first."""
        return _distinct(a.object for a in reversed(self.activities))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def actor_count(self) -> int:
        """Distinct kept actors plus one per minimized activity (an upper bound, as in SF)."""
        return len(self.actor_ids) + self.minimized_activities

    @property
    def other_actor_count(self) -> int:
        """Actors beyond the two a UI usually names ("A, B and 3 others")."""
        return max(self.actor_count - 2, 0)

    @property
    def verbs(self) -> list[type[Verb]]:
        """Distinct verbs of the kept activities, newest first."""
        return _distinct(a.verb for a in reversed(self.activities))

    @computed_field  # type: ignore[prop-decorator]
    @property
    def verb(self) -> Annotated[
        type[Verb] | None,
        PlainSerializer(lambda verb: verb and verb.infinitive, return_type=str | None),
    ]:
        """The verb of the newest activity."""
        return self.activities[-1].verb if self.activities else None

    @property
    def last_activity(self) -> Activity | None:
        """The newest activity."""
        return self.activities[-1] if self.activities else None

    @property
    def last_activities(self) -> list[Activity]:
        """The kept activities, newest first."""
        return list(reversed(self.activities))

    def contains(self, activity: Activity | str) -> bool:
        """Whether the group holds this activity (or activity id)."""
        activity_id = activity if isinstance(activity, str) else activity.activity_id
        return any(a.activity_id == activity_id for a in self.activities)

    def append(self, activity: Activity) -> None:
        """Add an activity, keeping time order and the length cap; duplicates raise."""
        if not isinstance(activity, Activity):
            raise TypeError(f"append() takes an Activity, got {type(activity).__name__}")
        if self.contains(activity):
            raise DuplicateActivityError(
                f"activity {activity.activity_id} is already in group {self.group!r}"
            )
        self.activities.append(activity)
        if len(self.activities) > 1 and self.activities[-2].activity_id > activity.activity_id:
            self.activities.sort(key=lambda a: a.activity_id)
        overflow = len(self.activities) - self.max_aggregated_activities_length
        if overflow > 0:
            del self.activities[:overflow]
            self.minimized_activities += overflow
        if self.created_at is None:
            self.created_at = activity.time
        if self.updated_at is None or activity.time > self.updated_at:
            self.updated_at = activity.time

    def remove(self, activity: Activity | str) -> None:
        """Take one activity out; ``ActivityNotFoundError`` if it is not held."""
        activity_id = activity if isinstance(activity, str) else activity.activity_id
        for index, held in enumerate(self.activities):
            if held.activity_id == activity_id:
                del self.activities[index]
                self._refresh_times()
                return
        raise ActivityNotFoundError(f"activity {activity_id} is not in group {self.group!r}")

    def remove_many(self, activities: Iterable[Activity | str]) -> None:
        """Take several activities out; all must be held, else nothing changes."""
        ids = {a if isinstance(a, str) else a.activity_id for a in activities}
        missing = ids - {a.activity_id for a in self.activities}
        if missing:
            raise ActivityNotFoundError(
                f"activities {sorted(missing)} are not in group {self.group!r}"
            )
        self.activities = [a for a in self.activities if a.activity_id not in ids]
        self._refresh_times()

    def _refresh_times(self) -> None:
        if self.activities:
            self.updated_at = max(a.time for a in self.activities)

    def __eq__(self, other: object) -> bool:
        if isinstance(other, AggregatedActivity):
            return (
                self.group == other.group
                and [a.activity_id for a in self.activities]
                == [a.activity_id for a in other.activities]
                and self.minimized_activities == other.minimized_activities
            )
        return NotImplemented

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(group={self.group!r}, activity_count={self.activity_count}, "
            f"actor_count={self.actor_count})"
        )


class NotificationActivity(AggregatedActivity):
    """An aggregated activity of a notification feed, with its seen and read state."""

    is_seen: bool = False
    is_read: bool = False


def _distinct(values: Iterable[Any]) -> list[Any]:
    return list(dict.fromkeys(values))
