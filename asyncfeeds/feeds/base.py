"""``Feed``: a flat timeline of activities with slicing, filtering and hydration.

The class holds the logic only; a backend subclass binds storages by
overriding ``get_timeline_storage`` (a timeline storage built bound to the
class's activity storage) and ``get_activity_storage``. Feeds are
generic over their items: ``class BoardFeed(RedisFeed[PinActivity])`` reads
``list[PinActivity]`` and sets ``activity_class = PinActivity``.
"""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator, Awaitable, Iterable, Mapping, Sequence
from datetime import timedelta
from typing import Any, ClassVar, Generic, NoReturn, Self, get_args, get_origin, overload

from typing_extensions import TypeVar  # PEP 696 defaults before Python 3.13

from ..activity import Activity, AggregatedActivity
from ..compat import FeedNames
from ..keys import MAX_USER_ID_LENGTH, KeyFormat, encode_user_id
from ..metrics import Metrics, metered_read, metered_write, process_metrics
from ..pages import Page, check_limit, decode_cursor, encode_cursor
from ..serializers import ActivitySerializer
from ..storage.base import ActivityStorage, Bounds, PulledStorage, TimelineStorage
from ..versions import current_version, next_version

_FILTERS = {
    "activity_id__gt": "gt",
    "activity_id__gte": "gte",
    "activity_id__lt": "lt",
    "activity_id__lte": "lte",
}
_ORDERINGS = {"activity_id": False, "-activity_id": True}
_PAGE = 100
_SHORT_INT = 10 ** (MAX_USER_ID_LENGTH - 1)
"""Ints strictly within this of 0 have at most ``MAX_USER_ID_LENGTH`` characters."""
"""Items read per round trip when a feed is walked with ``async for``."""

ItemT = TypeVar("ItemT", bound=Activity | AggregatedActivity, default=Activity)
"""What reading a feed returns: activities (flat feeds) or aggregated activities."""
ActivityT = TypeVar("ActivityT", bound=Activity, default=Activity)
"""The activity class of a flat feed (its items)."""


class Feed(FeedNames, Generic[ItemT]):
    """One user's timeline: ``await feed.add(a)``, ``await feed[:25]``."""

    key_format: ClassVar[str] = "feed:{user_id}"
    max_length: ClassVar[int] = 100
    activity_class: ClassVar[type[Activity]] = Activity
    activity_key_prefix: ClassVar[str] = "activity"
    activity_ttl: ClassVar[timedelta | None] = None
    """How long activity data and feed entries are kept after the activity's time;
    ``None`` keeps them until trims, removals and deletes let go of them."""
    metrics: ClassVar[Metrics] = process_metrics
    max_activity_bytes: ClassVar[int] = 1024 * 1024
    """The largest serialised activity this feed stores; larger ones raise ``ValueError``."""
    page_kind: ClassVar[str] = "flat"
    """What cursors of this feed say they belong to (flat, aggregated, notification)."""
    holds_copies: ClassVar[bool] = False
    """Whether the feed keeps its own copy of activity data (updates must be fanned out)."""
    _serializer: ClassVar[ActivitySerializer[Any] | None] = None

    def __init_subclass__(cls, **kwargs: Any) -> None:
        """Take the item class from the generic argument (``RedisFeed[PinActivity]``) and
        check ``key_format`` and ``activity_ttl`` when the class is defined, not when first
        used."""
        super().__init_subclass__(**kwargs)
        item_class = _item_argument(cls)
        if item_class is not None:
            cls.bind_item_class(item_class)
        cls.key_shape()
        cls.ttl_seconds()

    @classmethod
    def bind_item_class(cls, item_class: type[Any]) -> None:
        """Set ``activity_class`` from the generic argument, unless the class sets its own
        (which must then be a subclass of it); ``TypeError`` for anything else."""
        assign_item_class(cls, "activity_class", Activity, item_class)

    @classmethod
    def key_shape(cls) -> KeyFormat:
        """The checked ``key_format`` (parsed once per format)."""
        return KeyFormat.parse(cls.key_format, cls.__name__)

    def __init__(self, user_id: int | str) -> None:
        self.key = self.key_shape().key(user_id)
        self.user_id = user_id
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
    def ttl_seconds(cls) -> int | None:
        """``activity_ttl`` in whole seconds (at least 1), or ``None``."""
        ttl = cls.activity_ttl
        if ttl is None:
            return None
        if not isinstance(ttl, timedelta) or ttl <= timedelta(0):
            raise TypeError(f"{cls.__name__}.activity_ttl must be a positive timedelta or None")
        return max(1, int(ttl.total_seconds()))

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        """Equal for feed classes sharing one activity storage (the manager stores once each)."""
        raise NotImplementedError(f"{cls.__name__} is not bound to a storage backend")

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        """Where this class records pulled authors (bound by the backend subclass)."""
        raise NotImplementedError(f"{cls.__name__} is not bound to a storage backend")

    @classmethod
    def get_serializer(cls) -> ActivitySerializer[Any]:
        """The activity codec for this class's ``activity_class`` (built once per class)."""
        serializer = cls.__dict__.get("_serializer")
        if serializer is None or serializer.activity_class is not cls.activity_class:
            serializer = ActivitySerializer(cls.activity_class)
            cls._serializer = serializer
        return serializer

    @classmethod
    def key_prefix(cls) -> str:
        """The constant start of every key of this class."""
        return cls.key_shape().prefix

    @classmethod
    def feed_key(cls, user_id: int | str) -> str:
        """The storage key of one user's feed."""
        return cls.key_shape().key(user_id)

    @classmethod
    def feed_keys(cls, user_ids: Sequence[int | str]) -> list[str]:
        """The storage keys of many users' feeds (``feed_key`` of each, faster for ints)."""
        shape = cls.key_shape()
        prefix, suffix = shape.prefix, shape.suffix
        return [
            f"{prefix}{u}{suffix}" if type(u) is int and -_SHORT_INT < u < _SHORT_INT
            else shape.key(u)
            for u in user_ids
        ]

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

    @classmethod
    def serialize(cls, activities: Iterable[Activity]) -> dict[str, bytes]:
        """Encode activities by id; ``ValueError`` naming the limit for one that is too large."""
        serializer = cls.get_serializer()
        encoded = {}
        for activity in activities:
            data = serializer.dumps(activity)
            if len(data) > cls.max_activity_bytes:
                raise ValueError(
                    f"activity {activity.activity_id} takes {len(data)} bytes, more than "
                    f"{cls.__name__} stores ({cls.max_activity_bytes} bytes, max_activity_bytes)"
                )
            encoded[activity.activity_id] = data
        return encoded

    @classmethod
    def prepare(cls, activities: Iterable[Activity]) -> tuple[list[Activity], dict[str, bytes]]:
        """The one check of a write, at the edge: the activities (``TypeError`` for a wrong
        class) and their encodings by id (``ValueError`` for one too large)."""
        checked = cls.validate_activities(activities)
        return checked, cls.serialize(checked)

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
        await cls.store_encoded(cls.prepare(activities)[1])

    @classmethod
    async def store_encoded(cls, encoded: Mapping[str, bytes]) -> None:
        """Store activities ``prepare`` checked and encoded, without checking them again."""
        if encoded:
            await cls.get_activity_storage().add_many(encoded)

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
        await cls.get_timeline_storage().flush(cls.key_shape())
        await cls.get_activity_storage().flush()
        await cls.get_pulled_storage().flush(cls.key_shape().scope)

    # -- pulled authors and read-time merges (Manager.pull_threshold, read_feed) --------
    @classmethod
    async def mark_pulled(cls, user_id: int | str) -> None:
        """Record that ``user_id``'s feed of this class is read at read time, not fanned out."""
        await cls.get_pulled_storage().add(cls.key_shape().scope, encode_user_id(user_id))

    @classmethod
    async def pulled_among(cls, user_ids: Sequence[int | str]) -> list[bool]:
        """Whether each user is recorded as pulled for this class (one round trip)."""
        authors = [encode_user_id(u) for u in user_ids]
        return await cls.get_pulled_storage().contains_many(cls.key_shape().scope, authors)

    @classmethod
    async def merge_in_one_read(
        cls,
        user_id: int | str,
        author_class: type[Feed],
        authors: Sequence[str],
        limit: int,
        before: str | None,
    ) -> tuple[list[tuple[str, bytes | None]], bool] | None:
        """The newest ``limit`` rows below ``before`` of this user's feed merged with the
        ``author_class`` feeds of those ``authors`` (encoded user ids) who are pulled, and
        whether more follow, in one round trip; None where the backend cannot (the
        manager then merges from ``newest_rows``)."""
        return None

    @staticmethod
    async def newest_rows(
        feeds: Sequence[Feed], limit: int, *, with_data: bool = True
    ) -> list[list[tuple[str, bytes | None]]]:
        """The newest ``limit`` rows of each flat feed within its filter, not yet decoded.

        A row is an id and its data where the backend returns it in the same read
        (``hydrate`` loads the rest). One storage call per timeline storage, so reading
        many feeds for a merge is one round trip on a single Redis.
        """
        calls: dict[tuple[Any, ...], tuple[Feed, list[int]]] = {}
        for position, feed in enumerate(feeds):
            if not feed._newest_first:
                raise ValueError("newest_rows reads feeds newest first")
            feed_class = type(feed)
            key = (
                id(feed_class.get_timeline_storage()),
                feed._bounds,
                feed_class.activity_storage_identity() if with_data else None,
            )
            calls.setdefault(key, (feed, []))[1].append(position)
        results = await asyncio.gather(
            *(
                type(first).get_timeline_storage().get_slices(
                    [feeds[i].key for i in positions],
                    limit,
                    first._bounds,
                    with_data,
                )
                for first, positions in calls.values()
            )
        )
        found: list[list[tuple[str, bytes | None]]] = [[] for _ in feeds]
        for (_, positions), slices in zip(calls.values(), results, strict=True):
            for position, rows in zip(positions, slices, strict=True):
                found[position] = rows
        return found

    # -- batch writes for many feeds (fanout) ----------------------------------------
    @classmethod
    async def fanout_add(
        cls,
        user_ids: Sequence[int | str],
        activities: Sequence[Activity],
        version: int | None = None,
        *,
        count: bool = True,
    ) -> int:
        """Add activities to many users' feeds in one storage batch; the data is stored already.

        How many were new; with ``count=False`` a backend that would have to read for
        that (Cassandra) returns how many it wrote instead.
        """
        version = current_version() if version is None else version
        entries = [(a.activity_id, b"") for a in activities]
        added = await cls.get_timeline_storage().add_many(
            dict.fromkeys(cls.feed_keys(user_ids), entries), cls.max_length, version, count=count
        )
        return sum(added.values())

    @classmethod
    async def fanout_remove(
        cls,
        user_ids: Sequence[int | str],
        activities: Sequence[Activity | str],
        version: int | None = None,
        *,
        count: bool = True,
    ) -> int:
        """Remove activities from many users' feeds in one storage batch; how many were
        there (with ``count=False``, a backend that would read for that says what it
        deleted)."""
        version = current_version() if version is None else version
        ids = cls.activity_ids(activities)
        removed = await cls.get_timeline_storage().remove_many(
            dict.fromkeys(cls.feed_keys(user_ids), ids), version, count=count
        )
        return sum(removed.values())

    @classmethod
    async def fanout_update(
        cls,
        user_ids: Sequence[int | str],
        activities: Sequence[Activity],
        version: int | None = None,
    ) -> int:
        """Replace the copies of activities held by many users' feeds; never adds one elsewhere.

        Flat timelines hold ids only: the activity storage is the one copy to update.
        """
        return 0

    async def activity_ids_of(self, actors: Sequence[int | str]) -> list[str]:
        """Ids of the activities in this feed whose actor is one of ``actors``."""
        wanted = {str(a) for a in actors}
        found: list[str] = []
        async for activity in self:
            if isinstance(activity, Activity) and str(activity.actor) in wanted:
                found.append(activity.activity_id)
        return found

    # -- one feed --------------------------------------------------------------------
    async def add(self, activity: Activity) -> int:
        """Add one activity; 1 if it is new, 0 if the feed held it already."""
        return await self.add_many([activity])

    async def add_many(self, activities: Iterable[Activity], *, trim: bool = True) -> int:
        """Add activities (storing their data too); how many were new."""
        return await self.add_versioned(activities, next_version(), trim=trim)

    async def add_versioned(
        self, activities: Iterable[Activity], version: int, *, trim: bool = True
    ) -> int:
        """``add_many`` as part of a manager call: applied only where nothing newer was."""
        checked, encoded = self.prepare(activities)
        return await self.add_checked(checked, encoded, version, trim=trim)

    @metered_write("add")
    async def add_checked(
        self,
        checked: Sequence[Activity],
        encoded: Mapping[str, bytes],
        version: int,
        *,
        trim: bool = True,
    ) -> int:
        """``add_versioned`` of activities ``prepare`` checked and encoded already (the
        manager checks once for every feed class it writes)."""
        if not checked:
            return 0
        entries = list({a.activity_id: encoded[a.activity_id] for a in checked}.items())
        added = await self.get_timeline_storage().add_many(
            {self.key: entries},
            self.max_length if trim else None,
            version,
        )
        return added[self.key]

    async def remove(self, activity: Activity | str) -> int:
        """Remove one activity (or id); 1 if it was there."""
        return await self.remove_many([activity])

    async def remove_many(self, activities: Iterable[Activity | str]) -> int:
        """Remove activities (or ids); how many were there."""
        return await self.remove_versioned(activities, next_version())

    @metered_write("remove")
    async def remove_versioned(self, activities: Iterable[Activity | str], version: int) -> int:
        """``remove_many`` as part of a manager call: applied only where nothing newer was."""
        ids = self.activity_ids(activities)
        if not ids:
            return 0
        removed = await self.get_timeline_storage().remove_many({self.key: ids}, version)
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
    def filter(self, **kwargs: Activity | str) -> Self:
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

    def order_by(self, ordering: str) -> Self:
        """A copy ordered by ``"activity_id"`` (oldest first) or ``"-activity_id"`` (newest)."""
        if ordering not in _ORDERINGS:
            raise ValueError(f"order_by takes 'activity_id' or '-activity_id', got {ordering!r}")
        clone = copy.copy(self)
        clone._newest_first = _ORDERINGS[ordering]
        return clone

    @overload
    def __getitem__(self, index: slice) -> Awaitable[list[ItemT]]: ...

    @overload
    def __getitem__(self, index: int) -> Awaitable[ItemT]: ...

    def __getitem__(self, index: int | slice) -> Awaitable[list[ItemT]] | Awaitable[ItemT]:
        """``await feed[a:b]`` for a list, ``await feed[i]`` for one activity."""
        if isinstance(index, slice):
            start, stop = _check_slice(index)
            return self.get_slice(start, stop)
        if isinstance(index, bool) or not isinstance(index, int):
            raise TypeError(f"feed indices must be ints or slices, not {type(index).__name__}")
        if index < 0:
            raise ValueError("negative indexes are not supported")
        return self._get_one(index)

    def __iter__(self) -> NoReturn:
        """Feeds are read with ``await`` (slices) or ``async for``; plain ``for`` is a mistake."""
        raise TypeError(
            f"{type(self).__name__} is not iterable with 'for': use 'async for item in feed' "
            "or 'await feed[:n]'"
        )

    async def __aiter__(self) -> AsyncIterator[ItemT]:
        """Walk the whole feed in the current order, a page at a time."""
        cursor = None
        while True:
            page = await self.page(_PAGE, cursor)
            for item in page.items:
                yield item
            if page.next_cursor is None:
                return
            cursor = page.next_cursor

    async def page(self, limit: int = 25, cursor: str | None = None) -> Page[ItemT]:
        """``limit`` activities after ``cursor`` (from the newest without one), and the
        cursor of the next page. Walking by cursors returns every activity that stays in
        the feed exactly once, however many arrive at the top meanwhile."""
        limit = check_limit(limit)
        order = "-" if self._newest_first else "+"
        feed = self
        if cursor is not None:
            position = decode_cursor(cursor, self.page_kind, self.key)
            if len(position) != 2 or position[0] != order or not isinstance(position[1], str):
                raise ValueError("this cursor belongs to another ordering of the feed")
            beyond = "activity_id__lt" if self._newest_first else "activity_id__gt"
            feed = self.filter(**{beyond: position[1]})
        rows = await feed.get_timeline_storage().get_slice(
            feed.key,
            0,
            limit + 1,
            feed._bounds,
            feed._newest_first,
        )
        more = len(rows) > limit
        rows = rows[:limit]
        next_cursor = None
        if more:
            next_cursor = encode_cursor(self.page_kind, self.key, [order, rows[-1][0]])
        return Page(items=await self.hydrate(rows), next_cursor=next_cursor)

    async def _get_one(self, index: int) -> ItemT:
        items = await self.get_slice(index, index + 1)
        if not items:
            raise IndexError(f"{self!r} has no item at index {index}")
        return items[0]

    @metered_read("slice")
    async def get_slice(self, start: int, stop: int | None) -> list[ItemT]:
        """Activities at positions ``start:stop`` in the current order, fully hydrated."""
        rows = await self.get_timeline_storage().get_slice(
            self.key,
            start,
            stop,
            self._bounds,
            self._newest_first,
        )
        return await self.hydrate(rows)

    async def hydrate(self, rows: Sequence[tuple[str, bytes | None]]) -> list[ItemT]:
        """Decode rows, loading the data of id-only rows from the activity storage in one call."""
        missing = [activity_id for activity_id, data in rows if data is None]
        if missing:
            found = await self.get_activity_storage().get_many(missing)
            loaded = dict(zip(missing, found, strict=True))
            rows = [
                (activity_id, data if data is not None else loaded[activity_id])
                for activity_id, data in rows
            ]
        present = [(activity_id, data) for activity_id, data in rows if data is not None]
        return self.get_serializer().loads_rows(present)


def _item_argument(cls: type[Any]) -> type[Any] | None:
    """The class given as the generic argument of a feed base in ``cls``'s own bases."""
    for base in cls.__dict__.get("__orig_bases__", ()):
        origin = get_origin(base)
        if isinstance(origin, type) and issubclass(origin, Feed):
            args = get_args(base)
            if len(args) == 1 and isinstance(args[0], type):
                return args[0]
    return None


def assign_item_class(
    cls: type[Any], attr: str, root: type[Any], item_class: type[Any]
) -> None:
    """Set ``cls.<attr>`` to ``item_class`` (a ``root`` subclass) unless the class body set a
    subclass of it; ``TypeError`` naming the class otherwise."""
    if not issubclass(item_class, root):
        raise TypeError(
            f"{cls.__name__}: the item type of a feed must be a subclass of {root.__name__}, "
            f"got {item_class.__name__}"
        )
    declared = cls.__dict__.get(attr)
    if declared is None:
        setattr(cls, attr, item_class)
    elif not (isinstance(declared, type) and issubclass(declared, item_class)):
        raise TypeError(
            f"{cls.__name__}.{attr} = {getattr(declared, '__name__', declared)!r} is not a "
            f"subclass of its item type {item_class.__name__}"
        )


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
