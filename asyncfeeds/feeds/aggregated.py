"""``AggregatedFeed``: activities merged into groups by an aggregator, written optimistically.

Every change reads what it needs (the groups an activity may join, the index
entries of its activities, the groups holding them) with the feed's version,
plans the new state in Python, and commits it only if no other writer changed
the feed since; a lost race is retried, so concurrent writers lose nothing.

Membership is exact by construction: each feed keeps an index, activity id ->
the group holding it (or the removal that took it out) and the version of the
manager call that last wrote it, committed atomically with the groups. Adds,
removals and ``contains`` consult the index, so they are exact for any group,
in or out of the merge window, however large it grows.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from typing import Any, ClassVar, Self, cast

from typing_extensions import TypeVar

from ..activity import Activity, AggregatedActivity, epoch_micros, format_micros
from ..aggregators import BaseAggregator, RecentVerbAggregator
from ..compat import reject_current_activities
from ..exceptions import ConcurrentUpdateError
from ..metrics import metered_read, metered_write
from ..pages import Page, check_limit, decode_cursor, encode_cursor
from ..serializers import AggregatedSerializer, entry
from ..storage.base import (
    GroupQuery,
    GroupSnapshot,
    GroupStorage,
    GroupWrite,
    IndexEntry,
    MergeAdd,
    MergingGroupStorage,
    expiry_cutoff,
)
from ..versions import current_version, next_version
from .base import Feed, assign_item_class

MAX_ATTEMPTS = 200

AggregatedT = TypeVar("AggregatedT", bound=AggregatedActivity, default=AggregatedActivity)
"""The aggregated activity class of an aggregated feed (its items)."""

Plan = Callable[[list[AggregatedActivity], dict[str, IndexEntry]], "Change"]
PlanFactory = Callable[[], Awaitable[Plan]]


class Change:
    """What one feed's write does: groups to upsert and remove, index entries, and the result."""

    __slots__ = ("index", "removals", "result", "touch", "unseen", "upserts")

    def __init__(
        self,
        upserts: Sequence[AggregatedActivity] = (),
        removals: Sequence[str] = (),
        result: Any = None,
        unseen: Sequence[str] = (),
        index: dict[str, IndexEntry] | None = None,
        touch: bool = False,
    ) -> None:
        self.upserts = upserts
        self.removals = removals
        self.result = result
        self.unseen = unseen
        self.index = index or {}
        self.touch = touch
        """Commit even when nothing changes, so the feed's version moves on."""

    @property
    def writes(self) -> bool:
        """Whether this change needs a commit."""
        return bool(self.upserts or self.removals or self.index or self.touch)


class AggregatedFeed(Feed[AggregatedT]):
    """A feed of ``AggregatedActivity`` groups, ranked by the aggregator.

    ``class MyFeed(RedisAggregatedFeed[MyAggregated])`` sets ``aggregated_activity_class``.
    """

    aggregator_class: ClassVar[type[BaseAggregator]] = RecentVerbAggregator
    aggregated_activity_class: ClassVar[type[AggregatedActivity]] = AggregatedActivity
    merge_max_length: ClassVar[int] = 20
    max_length: ClassVar[int] = 100
    key_format: ClassVar[str] = "aggregated:{user_id}"
    tracks_markers: ClassVar[bool] = False
    holds_copies: ClassVar[bool] = True
    page_kind: ClassVar[str] = "aggregated"
    _aggregated_serializer: ClassVar[AggregatedSerializer[Any] | None] = None
    _merging: ClassVar[tuple[Any, MergingGroupStorage | None] | None] = None

    @classmethod
    def bind_item_class(cls, item_class: type[Any]) -> None:
        """Set ``aggregated_activity_class`` from the generic argument (see ``Feed``)."""
        assign_item_class(cls, "aggregated_activity_class", AggregatedActivity, item_class)

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        """The group storage of this feed class (bound by the backend subclass)."""
        raise NotImplementedError(f"{cls.__name__} is not bound to a storage backend")

    @classmethod
    def get_aggregator(cls) -> BaseAggregator:
        """A fresh aggregator building this class's aggregated activities."""
        return cls.aggregator_class(cls.aggregated_activity_class)

    @classmethod
    def get_aggregated_serializer(cls) -> AggregatedSerializer[Any]:
        """The group codec (built once per class)."""
        serializer = cls.__dict__.get("_aggregated_serializer")
        if (
            serializer is None
            or serializer.aggregated_class is not cls.aggregated_activity_class
            or serializer.activities is not cls.get_serializer()
        ):
            serializer = AggregatedSerializer(cls.aggregated_activity_class, cls.get_serializer())
            cls._aggregated_serializer = serializer
        return serializer

    @classmethod
    async def flush(cls) -> None:
        await cls.get_group_storage().flush(cls.key_shape())
        await cls.get_activity_storage().flush()

    @classmethod
    def _merging_storage(cls) -> MergingGroupStorage | None:
        """The group storage if it can merge adds itself: the default merge rules only."""
        storage = cls.get_group_storage()
        cached = cls.__dict__.get("_merging")
        if cached is not None and cached[0] is storage:
            return cast(MergingGroupStorage | None, cached[1])
        group_class = cls.aggregated_activity_class
        merging = (
            storage
            if isinstance(storage, MergingGroupStorage)
            and cls.aggregator_class.merge is BaseAggregator.merge
            and group_class.append is AggregatedActivity.append
            and group_class.contains is AggregatedActivity.contains
            and type(cls.get_aggregated_serializer()) is AggregatedSerializer
            else None
        )
        cls._merging = (storage, merging)
        return merging

    @classmethod
    def _merge_add(
        cls,
        activities: Sequence[Activity],
        encoded: Mapping[str, bytes],
        version: int,
        trim: bool,
    ) -> MergeAdd | None:
        """What a merging storage needs to add ``activities`` (those older than the TTL
        are left out, as ``_plan_add`` does); ``None`` if the compact form cannot hold one."""
        cutoff = expiry_cutoff(cls.ttl_seconds()) or ""
        unique = {a.activity_id: a for a in activities if a.activity_id >= cutoff}
        aggregator = cls.get_aggregator()
        serializer = cls.get_serializer()
        items = []
        for activity_id in sorted(unique):
            activity = unique[activity_id]
            item = entry(activity_id, encoded.get(activity_id) or serializer.dumps(activity))
            if item is None:
                return None
            items.append(
                (
                    activity_id,
                    format_micros(epoch_micros(activity.time)),
                    aggregator.get_group(activity),
                    str(activity.actor),
                    item,
                )
            )
        return MergeAdd(
            items=items,
            version=version,
            window=cls.merge_max_length,
            kept=cls.aggregated_activity_class.max_aggregated_activities_length,
            max_length=cls.max_length if trim else None,
        )

    # -- the optimistic read-plan-commit loop, for many feeds at once ------------------
    @classmethod
    async def _change(
        cls,
        keys: Sequence[str],
        query: GroupQuery,
        plan_factory: PlanFactory,
        *,
        trim: bool = True,
    ) -> dict[str, Any]:
        """Apply a plan to each feed, retrying the feeds where a writer got in first.

        ``plan_factory`` runs once per attempt, so a plan may read fresh data
        (say the newest stored copy of an activity) before each try. ``trim=False``
        keeps groups beyond ``max_length`` (the next trimming write drops them).
        """
        storage = cls.get_group_storage()
        serializer = cls.get_aggregated_serializer()
        results: dict[str, Any] = {}
        pending = list(dict.fromkeys(keys))
        for attempt in range(MAX_ATTEMPTS):
            plan = await plan_factory()
            snapshots = await storage.read_many(pending, query)
            writes: list[GroupWrite] = []
            planned: dict[str, Any] = {}
            for key, snapshot in zip(pending, snapshots, strict=True):
                change = plan(_decode(serializer, snapshot), dict(snapshot.index))
                planned[key] = change.result
                if change.writes:
                    writes.append(cls._write(key, snapshot, change, trim))
                else:
                    results[key] = change.result
            committed = await storage.commit_many(writes, cls.tracks_markers) if writes else []
            pending = []
            for write, ok in zip(writes, committed, strict=True):
                if ok:
                    results[write.key] = planned[write.key]
                else:
                    pending.append(write.key)
            if not pending:
                return results
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise ConcurrentUpdateError(
            f"gave up on {len(pending)} aggregated feeds of {cls.__name__} after "
            f"{MAX_ATTEMPTS} attempts"
        )

    @classmethod
    def _write(
        cls, key: str, snapshot: GroupSnapshot, change: Change, trim: bool
    ) -> GroupWrite:
        serializer = cls.get_aggregated_serializer()
        return GroupWrite(
            key=key,
            version=snapshot.version,
            upserts=[(g.aggregated_id, _score(g), serializer.dumps(g)) for g in change.upserts],
            removals=change.removals,
            max_length=cls.max_length if trim else None,
            unseen=change.unseen,
            index=change.index,
        )

    @classmethod
    def _add_query(cls, activities: Sequence[Activity]) -> GroupQuery:
        """The merge window's groups the activities can join, and their index entries."""
        aggregator = cls.get_aggregator()
        return GroupQuery(
            limit=cls.merge_max_length,
            group_keys=frozenset(aggregator.get_group(a) for a in activities),
            activity_ids=[a.activity_id for a in activities],
        )

    @staticmethod
    def _holding_query(activity_ids: Sequence[str]) -> GroupQuery:
        """The index entries of the ids and the groups holding them, wherever they are."""
        return GroupQuery(limit=0, activity_ids=list(activity_ids), holding=True)

    @classmethod
    def _plan_add(cls, activities: Sequence[Activity], version: int) -> Plan:
        aggregator = cls.get_aggregator()
        cutoff = expiry_cutoff(cls.ttl_seconds()) or ""  # older than the TTL: never added
        ordered = sorted(
            {a.activity_id: a for a in activities if a.activity_id >= cutoff}.values(),
            key=_activity_id,
        )

        def plan(current: list[AggregatedActivity], index: dict[str, IndexEntry]) -> Change:
            fresh: list[Activity] = []
            entries: dict[str, IndexEntry] = {}
            for activity in ordered:
                entry = index.get(activity.activity_id)
                if entry is not None and entry.version >= version:
                    continue  # this call, or a later one, was applied already
                if entry is not None and entry.held:
                    entries[activity.activity_id] = IndexEntry(
                        version, entry.aggregated_id, entry.actor
                    )  # held already: only the newer call is remembered
                    continue
                fresh.append(activity)
            if not fresh:
                return Change((), (), [], index=entries)
            new, changed, deleted = aggregator.merge(current, fresh)
            upserts = [*new, *(after for _, after in changed)]
            holder = {g.group: g for g in sorted(upserts, key=_score)}
            for activity in fresh:
                group = holder.get(aggregator.get_group(activity))
                if group is not None:
                    entries[activity.activity_id] = IndexEntry(
                        version, group.aggregated_id, str(activity.actor)
                    )
            return Change(
                upserts,
                [g.aggregated_id for g in deleted],
                upserts,
                [g.aggregated_id for g in upserts],
                entries,
            )

        return plan

    @classmethod
    def _plan_remove(cls, activity_ids: Sequence[str], version: int) -> Plan:
        wanted = list(dict.fromkeys(activity_ids))

        def plan(current: list[AggregatedActivity], index: dict[str, IndexEntry]) -> Change:
            groups = {g.aggregated_id: g for g in current}
            touched: dict[str, AggregatedActivity] = {}
            entries: dict[str, IndexEntry] = {}
            removed = 0
            for activity_id in wanted:
                entry = index.get(activity_id)
                if entry is not None and entry.version >= version:
                    continue
                entries[activity_id] = IndexEntry(version)
                if entry is None or entry.aggregated_id is None:
                    continue
                group = touched.get(entry.aggregated_id)
                if group is None:
                    stored = groups.get(entry.aggregated_id)
                    if stored is None:
                        continue
                    group = touched[entry.aggregated_id] = _copy(stored)
                removed += 1
                kept = [a for a in group.activities if a.activity_id != activity_id]
                if len(kept) < len(group.activities):
                    group.activities = kept
                elif group.minimized_activities > 0:
                    group.minimized_activities -= 1
            upserts = [g for g in touched.values() if g.activity_count > 0]
            for group in upserts:
                if group.activities:
                    group.updated_at = max(a.time for a in group.activities)
            removals = [i for i, g in touched.items() if g.activity_count == 0]
            return Change(upserts, removals, removed, index=entries)

        return plan

    @classmethod
    def _plan_update(cls, activities: Sequence[Activity], version: int) -> Plan:
        fresh = {a.activity_id: a for a in activities}

        def plan(current: list[AggregatedActivity], index: dict[str, IndexEntry]) -> Change:
            replace = {
                i: a
                for i, a in fresh.items()
                if (entry := index.get(i)) is not None and entry.held and entry.version < version
            }
            upserts = [
                g.model_copy(
                    update={"activities": [replace.get(a.activity_id, a) for a in g.activities]}
                )
                for g in current
                if any(a.activity_id in replace for a in g.activities)
            ]
            # Always commit: an add of these activities planned from older data must retry.
            return Change(upserts, (), len(upserts), touch=True)

        return plan

    @classmethod
    async def _latest_encoded(
        cls, activities: Sequence[Activity]
    ) -> tuple[list[Activity], dict[str, bytes]]:
        """``_latest`` with the stored encodings by id (where stored)."""
        ids = [a.activity_id for a in activities]
        stored = await cls.get_activity_storage().get_many(ids)
        serializer = cls.get_serializer()
        latest = []
        encoded = {}
        for activity, data in zip(activities, stored, strict=True):
            if data is None:
                latest.append(activity)
            else:
                latest.append(serializer.loads(data))
                encoded[activity.activity_id] = data
        return latest, encoded

    @classmethod
    async def _latest(cls, activities: Sequence[Activity]) -> list[Activity]:
        """The newest stored copy of each activity (the manager stores every call's data)."""
        ids = [a.activity_id for a in activities]
        stored = await cls.get_activity_storage().get_many(ids)
        serializer = cls.get_serializer()
        return [
            serializer.loads(data) if data is not None else activity
            for activity, data in zip(activities, stored, strict=True)
        ]

    @classmethod
    async def fanout_add(
        cls,
        user_ids: Sequence[int | str],
        activities: Sequence[Activity],
        version: int | None = None,
        *,
        count: bool = True,
    ) -> int:
        """Add activities to many users' feeds, each from its newest stored copy (the
        commit tells what was new, so ``count`` changes nothing here)."""
        version = current_version() if version is None else version

        async def plan_factory() -> Plan:
            return cls._plan_add(await cls._latest(activities), version)

        keys = list(dict.fromkeys(cls.feed_key(u) for u in user_ids))
        added = 0
        merging = cls._merging_storage()
        if merging is not None and activities:
            latest, encoded = await cls._latest_encoded(activities)
            add = cls._merge_add(latest, encoded, version, True)
            if add is not None and not add.items:
                return 0
            replies = (
                [None] * len(keys)
                if add is None
                else await merging.merge_add(keys, add, cls.tracks_markers, False)
            )
            added = sum(r for r in replies if isinstance(r, int))
            keys = [k for k, r in zip(keys, replies, strict=True) if r is None]
            if not keys:
                return added
        results = await cls._change(keys, cls._add_query(activities), plan_factory)
        return added + sum(len(r) for r in results.values())

    @classmethod
    async def fanout_remove(
        cls,
        user_ids: Sequence[int | str],
        activities: Sequence[Activity | str],
        version: int | None = None,
        *,
        count: bool = True,
    ) -> int:
        """Take activities out of many users' feeds, wherever their groups are (``count``
        changes nothing here)."""
        version = current_version() if version is None else version
        ids = cls.activity_ids(activities)
        keys = [cls.feed_key(u) for u in user_ids]
        plan = cls._plan_remove(ids, version)
        results = await cls._change(keys, cls._holding_query(ids), _fixed(plan))
        return sum(results.values())

    @classmethod
    async def fanout_update(
        cls,
        user_ids: Sequence[int | str],
        activities: Sequence[Activity],
        version: int | None = None,
    ) -> int:
        """Replace activities inside the groups of many users' feeds, in place; groups changed."""
        version = current_version() if version is None else version
        if not activities:
            return 0

        async def plan_factory() -> Plan:
            return cls._plan_update(await cls._latest(activities), version)

        keys = [cls.feed_key(u) for u in user_ids]
        ids = [a.activity_id for a in activities]
        results = await cls._change(keys, cls._holding_query(ids), plan_factory)
        return sum(results.values())

    async def activity_ids_of(self, actors: Sequence[int | str]) -> list[str]:
        """Ids of every activity the feed holds whose actor is one of ``actors``."""
        wanted = {str(a) for a in actors}
        entries = await self.get_group_storage().index_entries(self.key)
        return sorted(i for i, e in entries.items() if e.held and e.actor in wanted)

    # -- one feed --------------------------------------------------------------------
    async def add(self, activity: Activity) -> list[AggregatedT]:  # type: ignore[override]
        """Add one activity; the new or changed groups."""
        return await self.add_many([activity])

    async def add_many(  # type: ignore[override]
        self,
        activities: Iterable[Activity],
        *,
        trim: bool = True,
        current_activities: None = None,
    ) -> list[AggregatedT]:
        """Merge activities into groups; one flat list of the new and changed groups."""
        reject_current_activities(current_activities)
        return await self.add_versioned(activities, next_version(), trim=trim)

    async def add_versioned(  # type: ignore[override]
        self, activities: Iterable[Activity], version: int, *, trim: bool = True
    ) -> list[AggregatedT]:
        """``add_many`` as part of a manager call: applied only where nothing newer was."""
        checked, encoded = self.prepare(activities)
        return await self.add_checked(checked, encoded, version, trim=trim)

    @metered_write("add")
    async def add_checked(  # type: ignore[override]
        self,
        checked: Sequence[Activity],
        encoded: Mapping[str, bytes],
        version: int,
        *,
        trim: bool = True,
    ) -> list[AggregatedT]:
        """``add_versioned`` of activities ``prepare`` checked already (groups keep their own
        copies, so ``encoded`` only vouches for the size check)."""
        if not checked:
            return []
        merging = self._merging_storage()
        if merging is not None:
            add = self._merge_add(checked, encoded, version, trim)
            if add is not None and not add.items:
                return []
            replies = [] if add is None else await merging.merge_add(
                [self.key], add, self.tracks_markers, True
            )
            reply = replies[0] if replies else None
            if isinstance(reply, list):
                serializer = self.get_aggregated_serializer()
                for activity in checked:
                    data = encoded.get(activity.activity_id)
                    if data is not None:
                        serializer.remember(data, activity)
                return [serializer.loads(data) for data in reply]
        plan = self._plan_add(checked, version)
        results = await self._change(
            [self.key], self._add_query(checked), _fixed(plan), trim=trim
        )
        changed: list[AggregatedT] = results[self.key]
        return changed

    @metered_write("remove")
    async def remove_versioned(self, activities: Iterable[Activity | str], version: int) -> int:
        """Take activities out of their groups, deleting emptied groups; how many were held."""
        ids = self.activity_ids(activities)
        if not ids:
            return 0
        plan = self._plan_remove(ids, version)
        results = await self._change([self.key], self._holding_query(ids), _fixed(plan))
        removed: int = results[self.key]
        return removed

    async def count(self) -> int:
        """How many groups the feed holds."""
        return await self.get_group_storage().count(self.key)

    async def contains(self, activity: Activity | str) -> bool:
        """Whether any group holds this activity (or id)."""
        entry = await self._entry(self.activity_ids([activity])[0])
        return entry is not None and entry.held

    async def _entry(self, activity_id: str) -> IndexEntry | None:
        query = GroupQuery(limit=0, activity_ids=[activity_id])
        (snapshot,) = await self.get_group_storage().read_many([self.key], query)
        return snapshot.index.get(activity_id)

    async def index_of(self, activity: Activity | AggregatedActivity | str) -> int:
        """Position of the group (by aggregated id, or holding the activity); ``ValueError``."""
        if isinstance(activity, AggregatedActivity):
            wanted: str | None = activity.aggregated_id
        else:
            entry = await self._entry(self.activity_ids([activity])[0])
            if entry is not None and entry.held:
                wanted = entry.aggregated_id
            else:  # a string that is no held activity's id may be an aggregated id
                wanted = activity if isinstance(activity, str) else None
        for index, group in enumerate(await self.get_slice(0, None)):
            if group.aggregated_id == wanted:
                return index
        raise ValueError(f"{activity!r} is not in {self!r}")

    async def trim(self, length: int | None = None) -> None:
        """Keep only the newest ``length`` groups (default ``max_length``)."""
        length = self.max_length if length is None else length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"trim length must be a non-negative int, got {length!r}")
        storage = self.get_group_storage()
        for _ in range(MAX_ATTEMPTS):
            snapshot = (await storage.read_many([self.key], GroupQuery(limit=0)))[0]
            write = GroupWrite(self.key, snapshot.version, (), (), length)
            if (await storage.commit_many([write], self.tracks_markers))[0]:
                return
        raise ConcurrentUpdateError(f"could not trim {self!r}")

    async def delete(self) -> None:
        """Remove the whole feed."""
        await self.get_group_storage().delete_many([self.key])

    def filter(self, **kwargs: Any) -> Self:
        """Aggregated feeds are ranked by the aggregator, not by id: filtering is not offered."""
        raise ValueError(f"{type(self).__name__} does not support filter(); use page()")

    def order_by(self, ordering: str) -> Self:
        """Aggregated feeds are ranked by the aggregator: ordering is not offered."""
        raise ValueError(f"{type(self).__name__} does not support order_by(); it is ranked")

    async def page(self, limit: int = 25, cursor: str | None = None) -> Page[AggregatedT]:
        """``limit`` groups after ``cursor`` in ranking order, and the next page's cursor.

        Groups page by their position (last update, then id): a walk returns every
        group that stays unchanged exactly once; a group that changes meanwhile
        moves to the top and is not repeated.
        """
        limit = check_limit(limit)
        before = None
        if cursor is not None:
            position = decode_cursor(cursor, self.page_kind, self.key)
            if (
                len(position) != 2
                or isinstance(position[0], bool)
                or not isinstance(position[0], int)
                or not isinstance(position[1], str)
            ):
                raise ValueError("malformed cursor position")
            before = (position[0], position[1])
        rows = await self.get_group_storage().get_page(self.key, before, limit + 1)
        more = len(rows) > limit
        groups = await self._decorate(self._decode_rows(rows[:limit]))
        next_cursor = None
        if more:
            last = groups[-1]
            next_cursor = encode_cursor(
                self.page_kind, self.key, [_score(last), last.aggregated_id]
            )
        return Page(items=groups, next_cursor=next_cursor)

    def _decode_rows(self, rows: Sequence[tuple[str, bytes]]) -> list[AggregatedT]:
        serializer = self.get_aggregated_serializer()
        return [serializer.loads(data) for _, data in rows]

    async def _decorate(self, groups: list[AggregatedT]) -> list[AggregatedT]:
        """Per-feed state of the groups read (notification feeds fill in seen and read)."""
        return groups

    @metered_read("slice")
    async def get_slice(self, start: int, stop: int | None) -> list[AggregatedT]:
        """Groups at positions ``start:stop``, ranked by the aggregator."""
        rows = await self.get_group_storage().get_slice(self.key, start, stop)
        decoded: list[AggregatedActivity] = list(self._decode_rows(rows))
        # The aggregator ranks the groups it is given: they stay this feed's class.
        groups = cast(list[AggregatedT], self.get_aggregator().rank(decoded))
        return await self._decorate(groups)


def _fixed(plan: Plan) -> PlanFactory:
    """A plan factory that returns the same plan on every attempt."""

    async def factory() -> Plan:
        return plan

    return factory


def _decode(serializer: AggregatedSerializer[Any], snapshot: GroupSnapshot) -> list[Any]:
    return [serializer.loads(data) for _, data in snapshot.groups]


def _copy(group: AggregatedActivity) -> AggregatedActivity:
    return group.model_copy(update={"activities": list(group.activities)})


def _activity_id(activity: Activity) -> str:
    return activity.activity_id


def _score(group: AggregatedActivity) -> int:
    """Storage order of a group: its last update, in microseconds."""
    return epoch_micros(group.updated_at) if group.updated_at is not None else 0


__all__ = ["AggregatedFeed"]
