"""``AggregatedFeed``: activities merged into groups by an aggregator, written optimistically.

Every change is read (newest groups with a version), merged in Python, and
committed only if no other writer changed the feed since; a lost race is
simply retried, so concurrent adds from many tasks or processes lose nothing.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable, Iterable, Sequence
from typing import Any, ClassVar

from ..activity import Activity, AggregatedActivity, epoch_micros, group_of
from ..aggregators import BaseAggregator, RecentVerbAggregator
from ..compat import reject_current_activities
from ..exceptions import ConcurrentUpdateError
from ..metrics import metered_read, metered_write
from ..serializers import AggregatedSerializer
from ..storage.base import GroupSnapshot, GroupStorage, GroupWrite
from .base import Feed

MAX_ATTEMPTS = 200

Plan = Callable[[list[AggregatedActivity]], "Change"]


class Change:
    """What one feed's write does: groups to upsert and to remove, and the result to report."""

    __slots__ = ("removals", "result", "unseen", "upserts")

    def __init__(
        self,
        upserts: Sequence[AggregatedActivity] = (),
        removals: Sequence[str] = (),
        result: Any = None,
        unseen: Sequence[str] = (),
    ) -> None:
        self.upserts = upserts
        self.removals = removals
        self.result = result
        self.unseen = unseen


class AggregatedFeed(Feed):
    """A feed of ``AggregatedActivity`` groups, ranked by the aggregator."""

    aggregator_class: ClassVar[type[BaseAggregator]] = RecentVerbAggregator
    aggregated_activity_class: ClassVar[type[AggregatedActivity]] = AggregatedActivity
    merge_max_length: ClassVar[int] = 20
    max_length: ClassVar[int] = 100
    key_format: ClassVar[str] = "aggregated:{user_id}"
    tracks_markers: ClassVar[bool] = False

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
            cls._aggregated_serializer = serializer  # type: ignore[attr-defined]
        return serializer

    @classmethod
    async def flush(cls) -> None:
        await cls.get_group_storage().flush(cls.key_prefix())
        await cls.get_activity_storage().flush()

    # -- the optimistic read-merge-commit loop, for many feeds at once -----------------
    @classmethod
    async def _change(
        cls,
        keys: Sequence[str],
        limit: int | None,
        plan: Plan,
        groups: set[str] | None = None,
        *,
        trim: bool = True,
    ) -> dict[str, Any]:
        """Apply ``plan`` to each feed's groups, retrying the feeds where a writer got in first.

        With ``groups`` only the stored groups with those keys are decoded and
        given to ``plan`` (decoding is most of an add's cost). ``trim=False``
        keeps groups beyond ``max_length`` (the next trimming write drops them).
        """
        storage = cls.get_group_storage()
        serializer = cls.get_aggregated_serializer()
        results: dict[str, Any] = {}
        pending = list(dict.fromkeys(keys))
        for attempt in range(MAX_ATTEMPTS):
            snapshots = await storage.read_many(pending, limit)
            writes: list[GroupWrite] = []
            planned: dict[str, Any] = {}
            for key, snapshot in zip(pending, snapshots, strict=True):
                change = plan(_decode(serializer, snapshot, groups))
                planned[key] = change.result
                if change.upserts or change.removals:
                    writes.append(
                        GroupWrite(
                            key=key,
                            version=snapshot.version,
                            upserts=[
                                (g.aggregated_id, _score(g), serializer.dumps(g))
                                for g in change.upserts
                            ],
                            removals=change.removals,
                            max_length=cls.max_length if trim else None,
                            unseen=change.unseen,
                        )
                    )
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
    def _groups_of(cls, activities: Sequence[Activity]) -> set[str]:
        """The group keys the aggregator gives these activities."""
        aggregator = cls.get_aggregator()
        return {aggregator.get_group(a) for a in activities}

    @classmethod
    def _plan_add(cls, activities: Sequence[Activity]) -> Plan:
        aggregator = cls.get_aggregator()

        def plan(current: list[AggregatedActivity]) -> Change:
            new, changed, deleted = aggregator.merge(current, activities)
            upserts = [*new, *(after for _, after in changed)]
            removals = [g.aggregated_id for g in deleted]
            return Change(upserts, removals, upserts, [g.aggregated_id for g in upserts])

        return plan

    @classmethod
    def _plan_remove(cls, activity_ids: Sequence[str]) -> Plan:
        wanted = set(activity_ids)

        def plan(current: list[AggregatedActivity]) -> Change:
            upserts: list[AggregatedActivity] = []
            removals: list[str] = []
            removed = 0
            for group in current:
                held = [a for a in group.activities if a.activity_id in wanted]
                if not held:
                    continue
                removed += len(held)
                remaining = [a for a in group.activities if a.activity_id not in wanted]
                if remaining:
                    upserts.append(group.model_copy(update={"activities": remaining}))
                    upserts[-1].updated_at = max(a.time for a in remaining)
                else:
                    removals.append(group.aggregated_id)
            return Change(upserts, removals, removed)

        return plan

    @classmethod
    async def fanout_add(cls, user_ids: Sequence[int | str], activities: Sequence[Activity]) -> int:
        keys = [cls.feed_key(u) for u in user_ids]
        activities = list(activities)
        results = await cls._change(
            keys, cls.merge_max_length, cls._plan_add(activities), cls._groups_of(activities)
        )
        return sum(len(r) for r in results.values())

    @classmethod
    async def fanout_remove(
        cls, user_ids: Sequence[int | str], activities: Sequence[Activity | str]
    ) -> int:
        keys = [cls.feed_key(u) for u in user_ids]
        results = await cls._change(keys, None, cls._plan_remove(cls.activity_ids(activities)))
        return sum(results.values())

    @classmethod
    async def fanout_update(
        cls, user_ids: Sequence[int | str], activities: Sequence[Activity]
    ) -> int:
        """Replace activities inside the groups of many users' feeds, in place; groups changed."""
        fresh = {a.activity_id: a for a in activities}

        def plan(current: list[AggregatedActivity]) -> Change:
            upserts = [
                g.model_copy(update={"activities": [fresh.get(a.activity_id, a)
                                                    for a in g.activities]})
                for g in current
                if any(a.activity_id in fresh for a in g.activities)
            ]
            return Change(upserts, (), len(upserts))

        keys = [cls.feed_key(u) for u in user_ids]
        groups = cls._groups_of(list(fresh.values()))
        results = await cls._change(keys, None, plan, groups) if fresh else {}
        return sum(results.values())

    # -- one feed --------------------------------------------------------------------
    async def add(self, activity: Activity) -> list[AggregatedActivity]:  # type: ignore[override]
        """Add one activity; the new or changed groups."""
        return await self.add_many([activity])

    @metered_write("add")
    async def add_many(  # type: ignore[override]
        self,
        activities: Iterable[Activity],
        *,
        trim: bool = True,
        current_activities: None = None,
    ) -> list[AggregatedActivity]:
        """Merge activities into groups; one flat list of the new and changed groups."""
        reject_current_activities(current_activities)
        checked = self.validate_activities(activities)
        if not checked:
            return []
        results = await self._change(
            [self.key],
            self.merge_max_length,
            self._plan_add(checked),
            self._groups_of(checked),
            trim=trim,
        )
        return results[self.key]

    @metered_write("remove")
    async def remove_many(self, activities: Iterable[Activity | str]) -> int:
        """Take activities out of their groups, deleting emptied groups; how many were held."""
        ids = self.activity_ids(activities)
        if not ids:
            return 0
        results = await self._change([self.key], None, self._plan_remove(ids))
        return results[self.key]

    async def count(self) -> int:
        """How many groups the feed holds."""
        return await self.get_group_storage().count(self.key)

    async def contains(self, activity: Activity | str) -> bool:
        """Whether any group holds this activity (or id)."""
        activity_id = self.activity_ids([activity])[0]
        return any(g.contains(activity_id) for g in await self.get_slice(0, None))

    async def index_of(self, activity: Activity | AggregatedActivity | str) -> int:
        """Position of the group (by aggregated id, or holding the activity); ``ValueError``."""
        groups = await self.get_slice(0, None)
        for index, group in enumerate(groups):
            if isinstance(activity, AggregatedActivity):
                if group.aggregated_id == activity.aggregated_id:
                    return index
            elif group.aggregated_id == activity or group.contains(activity):
                return index
        raise ValueError(f"{activity!r} is not in {self!r}")

    async def trim(self, length: int | None = None) -> None:
        """Keep only the newest ``length`` groups (default ``max_length``)."""
        length = self.max_length if length is None else length
        if isinstance(length, bool) or not isinstance(length, int) or length < 0:
            raise ValueError(f"trim length must be a non-negative int, got {length!r}")
        storage = self.get_group_storage()
        for _ in range(MAX_ATTEMPTS):
            snapshot = (await storage.read_many([self.key], 0))[0]
            write = GroupWrite(self.key, snapshot.version, (), (), length)
            if (await storage.commit_many([write], self.tracks_markers))[0]:
                return
        raise ConcurrentUpdateError(f"could not trim {self!r}")

    async def delete(self) -> None:
        """Remove the whole feed."""
        await self.get_group_storage().delete_many([self.key])

    def filter(self, **kwargs: Any) -> Feed:
        """Aggregated feeds are ranked by the aggregator, not by id: filtering is not offered."""
        raise ValueError(f"{type(self).__name__} does not support filter(); slice it instead")

    def order_by(self, ordering: str) -> Feed:
        """Aggregated feeds are ranked by the aggregator: ordering is not offered."""
        raise ValueError(f"{type(self).__name__} does not support order_by(); it is ranked")

    @metered_read("slice")
    async def get_slice(self, start: int, stop: int | None) -> list[Any]:
        """Groups at positions ``start:stop``, ranked by the aggregator."""
        rows = await self.get_group_storage().get_slice(self.key, start, stop)
        serializer = self.get_aggregated_serializer()
        groups = [serializer.loads(data) for _, data in rows]
        return self.get_aggregator().rank(groups)


def _decode(
    serializer: AggregatedSerializer[Any], snapshot: GroupSnapshot, groups: set[str] | None
) -> list[Any]:
    return [
        serializer.loads(data)
        for aggregated_id, data in snapshot.groups
        if groups is None or group_of(aggregated_id) in groups
    ]


def _score(group: AggregatedActivity) -> int:
    """Storage order of a group: its last update, in microseconds."""
    return epoch_micros(group.updated_at) if group.updated_at is not None else 0


__all__ = ["AggregatedFeed"]
