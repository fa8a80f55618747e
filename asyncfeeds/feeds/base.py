"""``Feed``: a flat timeline of activities with slicing, filtering and hydration.

The class holds the logic only; a backend subclass binds storages by
overriding ``get_timeline_storage`` and ``get_activity_storage``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import Awaitable, Iterable, Sequence
from typing import Any, ClassVar

from ..activity import Activity
from ..compat import FeedNames
from ..metrics import Metrics, metered_read, metered_write, process_metrics
from ..serializers import ActivitySerializer
from ..storage.base import ActivityStorage, Bounds, TimelineStorage

_FILTERS = {
    "activity_id__gt": "gt",
    "activity_id__gte": "gte",
    "activity_id__lt": "lt",
    "activity_id__lte": "lte",
}
_ORDERINGS = {"activity_id": False, "-activity_id": True}


class Feed(FeedNames):
    """One user's timeline: ``await feed.add(a)``, ``await feed[:25]``."""

    key_format: ClassVar[str] = "feed:{user_id}"
    max_length: ClassVar[int] = 100
    activity_class: ClassVar[type[Activity]] = Activity
    activity_key_prefix: ClassVar[str] = "activity"
    metrics: ClassVar[Metrics] = process_metrics

    def __init__(self, user_id: int | str) -> None:
        if isinstance(user_id, bool) or not isinstance(user_id, int | str):
            raise TypeError(f"user_id must be an int or str, got {user_id!r}")
        self.user_id = user_id
        self.key = self.key_format.format(user_id=user_id)
        self._bounds = Bounds()
        self._newest_first = True

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.key}>"

    # -- bindings a backend provides -------------------------------------------------
    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        """The timeline storage of this feed class (bound by the backend subclass)."""
        raise NotImplementedError(f"{cls.__name__} is not bound to a storage backend")

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        """The activity storage of this feed class (bound by the backend subclass)."""
        raise NotImplementedError(f"{cls.__name__} is not bound to a storage backend")

    @classmethod
    def get_serializer(cls) -> ActivitySerializer[Any]:
        """The activity codec for this class's ``activity_class`` (built once per class)."""
        serializer = cls.__dict__.get("_serializer")
        if serializer is None or serializer.activity_class is not cls.activity_class:
            serializer = ActivitySerializer(cls.activity_class)
            cls._serializer = serializer  # type: ignore[attr-defined]
        return serializer

    @classmethod
    def key_prefix(cls) -> str:
        """The constant start of every key of this class, used by ``flush``."""
        return cls.key_format.split("{", 1)[0]

    @classmethod
    def feed_key(cls, user_id: int | str) -> str:
        """The storage key of one user's feed."""
        return cls.key_format.format(user_id=user_id)

    # -- validation ------------------------------------------------------------------
    @classmethod
    def validate_activities(cls, activities: Iterable[Activity]) -> list[Activity]:
        """Check every item is an activity of ``activity_class``; ``TypeError`` before any write."""
        if isinstance(activities, Activity | str | bytes) or not isinstance(activities, Iterable):
            raise TypeError(f"expected an iterable of {cls.activity_class.__name__}")
        checked = list(activities)
        for item in checked:
            if not isinstance(item, cls.activity_class):
                raise TypeError(
                    f"{cls.__name__} takes {cls.activity_class.__name__} instances, "
                    f"got {type(item).__name__}"
                )
        return checked

    @staticmethod
    def activity_ids(items: Iterable[Activity | str]) -> list[str]:
        """Ids of activities or ids; ``TypeError`` for anything else."""
        if isinstance(items, Activity | str | bytes) or not isinstance(items, Iterable):
            raise TypeError("expected an iterable of activities or activity ids")
        ids = []
        for item in items:
            if isinstance(item, Activity):
                ids.append(item.activity_id)
            elif isinstance(item, str):
                ids.append(item)
            else:
                raise TypeError(
                    f"expected an activity or an activity id, got {type(item).__name__}"
                )
        return ids

    # -- activity storage ------------------------------------------------------------
    @classmethod
    async def insert_activities(cls, activities: Iterable[Activity]) -> None:
        """Store activities in the activity storage (what fanout does once per activity)."""
        checked = cls.validate_activities(activities)
        if checked:
            await cls.get_activity_storage().add_many(cls.get_serializer().dumps_many(checked))

    @classmethod
    async def insert_activity(cls, activity: Activity) -> None:
        """Store one activity in the activity storage."""
        await cls.insert_activities([activity])

    @classmethod
    async def remove_activities(cls, activities: Iterable[Activity | str]) -> None:
        """Forget activities from the activity storage."""
        ids = cls.activity_ids(activities)
        if ids:
            await cls.get_activity_storage().remove_many(ids)

    @classmethod
    async def remove_activity(cls, activity: Activity | str) -> None:
        """Forget one activity from the activity storage."""
        await cls.remove_activities([activity])

    @classmethod
    async def flush(cls) -> None:
        """Drop every timeline of this class and its activity storage (tests)."""
        await cls.get_timeline_storage().flush(cls.key_prefix())
        await cls.get_activity_storage().flush()

    # -- batch writes for many feeds (fanout) ----------------------------------------
    @classmethod
    async def fanout_add(cls, user_ids: Sequence[int | str], activities: Sequence[Activity]) -> int:
        """Add activities to many users' feeds in one storage batch; the data is stored already."""
        storage = cls.get_timeline_storage()
        serializer = cls.get_serializer()
        entries = [
            (a.activity_id, serializer.dumps(a) if storage.stores_payload else b"")
            for a in activities
        ]
        added = await storage.add_many({cls.feed_key(u): entries for u in user_ids}, cls.max_length)
        return sum(added.values())

    @classmethod
    async def fanout_remove(
        cls, user_ids: Sequence[int | str], activities: Sequence[Activity | str]
    ) -> int:
        """Remove activities from many users' feeds in one storage batch."""
        ids = cls.activity_ids(activities)
        removed = await cls.get_timeline_storage().remove_many(
            {cls.feed_key(u): ids for u in user_ids}
        )
        return sum(removed.values())

    @classmethod
    async def fanout_update(
        cls, user_ids: Sequence[int | str], activities: Sequence[Activity]
    ) -> int:
        """Replace the copies of activities held by many users' feeds; never adds one elsewhere.

        Id-only timelines hold no copy (the activity storage is the one to update).
        """
        storage = cls.get_timeline_storage()
        if not storage.stores_payload or not activities:
            return 0
        keys = [cls.feed_key(u) for u in user_ids]
        ids = [a.activity_id for a in activities]
        held = await asyncio.gather(*(storage.contains_many(key, ids) for key in keys))
        serializer = cls.get_serializer()
        entries = {
            key: [
                (a.activity_id, serializer.dumps(a))
                for a, found in zip(activities, flags, strict=True)
                if found
            ]
            for key, flags in zip(keys, held, strict=True)
            if any(flags)
        }
        if entries:
            await storage.add_many(entries, cls.max_length)
        return sum(len(e) for e in entries.values())

    # -- one feed --------------------------------------------------------------------
    async def add(self, activity: Activity) -> int:
        """Add one activity; 1 if it is new, 0 if the feed held it already."""
        return await self.add_many([activity])

    @metered_write("add")
    async def add_many(self, activities: Iterable[Activity], *, trim: bool = True) -> int:
        """Add activities (storing their data too); how many were new."""
        checked = self.validate_activities(activities)
        if not checked:
            return 0
        serializer = self.get_serializer()
        entries = [(a.activity_id, serializer.dumps(a)) for a in checked]
        added = await self.get_timeline_storage().add_many(
            {self.key: entries},
            self.max_length if trim else None,
            activity_storage=self.get_activity_storage(),
        )
        return added[self.key]

    async def remove(self, activity: Activity | str) -> int:
        """Remove one activity (or id); 1 if it was there."""
        return await self.remove_many([activity])

    @metered_write("remove")
    async def remove_many(self, activities: Iterable[Activity | str]) -> int:
        """Remove activities (or ids); how many were there."""
        ids = self.activity_ids(activities)
        if not ids:
            return 0
        removed = await self.get_timeline_storage().remove_many({self.key: ids})
        return removed[self.key]

    async def count(self) -> int:
        """How many activities the feed holds."""
        return await self.get_timeline_storage().count(self.key)

    async def contains(self, activity: Activity | str) -> bool:
        """Whether the feed holds this activity (or id)."""
        ids = self.activity_ids([activity])
        return (await self.get_timeline_storage().contains_many(self.key, ids))[0]

    async def index_of(self, activity: Activity | str) -> int:
        """Position counted from the newest (0); ``ValueError`` if absent."""
        activity_id = self.activity_ids([activity])[0]
        index = await self.get_timeline_storage().index_of(self.key, activity_id)
        if index is None:
            raise ValueError(f"activity {activity_id} is not in {self!r}")
        return index

    async def trim(self, length: int | None = None) -> None:
        """Keep only the newest ``length`` activities (default ``max_length``)."""
        length = self.max_length if length is None else length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"trim length must be a non-negative int, got {length!r}")
        await self.get_timeline_storage().trim(self.key, length)

    async def delete(self) -> None:
        """Remove the whole feed."""
        await self.get_timeline_storage().delete_many([self.key])

    # -- reading ---------------------------------------------------------------------
    def filter(self, **kwargs: Activity | str) -> Feed:
        """A copy limited by ``activity_id__gt/gte/lt/lte``; other keywords raise ``ValueError``."""
        unknown = set(kwargs) - set(_FILTERS)
        if unknown:
            raise ValueError(f"unsupported filter {sorted(unknown)}; use one of {sorted(_FILTERS)}")
        bounds = {f: getattr(self._bounds, f) for f in ("gt", "gte", "lt", "lte")}
        for name, value in kwargs.items():
            bounds[_FILTERS[name]] = self.activity_ids([value])[0]
        clone = copy.copy(self)
        clone._bounds = Bounds(**bounds)
        return clone

    def order_by(self, ordering: str) -> Feed:
        """A copy ordered by ``"activity_id"`` (oldest first) or ``"-activity_id"`` (newest)."""
        if ordering not in _ORDERINGS:
            raise ValueError(f"order_by takes 'activity_id' or '-activity_id', got {ordering!r}")
        clone = copy.copy(self)
        clone._newest_first = _ORDERINGS[ordering]
        return clone

    def __getitem__(self, index: int | slice) -> Awaitable[Any]:
        """``await feed[a:b]`` for a list, ``await feed[i]`` for one activity."""
        if isinstance(index, slice):
            start, stop = _check_slice(index)
            return self.get_slice(start, stop)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"feed indices must be ints or slices, not {type(index).__name__}")
        if index < 0:
            raise ValueError("negative indexes are not supported")
        return self._get_one(index)

    async def _get_one(self, index: int) -> Any:
        items = await self.get_slice(index, index + 1)
        if not items:
            raise IndexError(f"{self!r} has no item at index {index}")
        return items[0]

    @metered_read("slice")
    async def get_slice(self, start: int, stop: int | None) -> list[Any]:
        """Activities at positions ``start:stop`` in the current order, fully hydrated."""
        storage = self.get_timeline_storage()
        rows = await storage.get_slice(
            self.key,
            start,
            stop,
            self._bounds,
            self._newest_first,
            activity_storage=None if storage.stores_payload else self.get_activity_storage(),
        )
        return await self.hydrate(rows)

    async def hydrate(self, rows: Sequence[tuple[str, bytes | None]]) -> list[Activity]:
        """Decode rows, loading the data of id-only rows from the activity storage in one call."""
        missing = [activity_id for activity_id, data in rows if data is None]
        loaded: dict[str, bytes | None] = {}
        if missing:
            found = await self.get_activity_storage().get_many(missing)
            loaded = dict(zip(missing, found, strict=True))
        serializer = self.get_serializer()
        activities = []
        for activity_id, data in rows:
            payload = data if data is not None else loaded.get(activity_id)
            if payload is not None:
                activities.append(serializer.loads(payload))
        return activities


def _check_slice(index: slice) -> tuple[int, int | None]:
    start, stop, step = index.start, index.stop, index.step
    if step is not None and step != 1:
        raise ValueError("slice steps are not supported")
    start = 0 if start is None else start
    for bound in (start, stop):
        if bound is not None and (isinstance(bound, bool) or not isinstance(bound, int)):
            raise TypeError("slice bounds must be ints")
        if bound is not None and bound < 0:
            raise ValueError("negative slice bounds are not supported")
    return start, stop
