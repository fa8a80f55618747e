"""The embedded memory backend: one process, no server; the reference for the protocols."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from ..types import Subscription
from .base import ActivityStorage, Bounds, Counts, Entry, GroupSnapshot, GroupWrite
from .subscription import Item, QueueSubscription


@dataclass
class _GroupFeed:
    version: int = 0
    scores: dict[str, int] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    unseen: set[str] = field(default_factory=set)
    unread: set[str] = field(default_factory=set)

    def ordered_ids(self) -> list[str]:
        return sorted(self.scores, key=lambda i: (self.scores[i], i), reverse=True)

    def counts(self) -> Counts:
        return {"unseen_count": len(self.unseen), "unread_count": len(self.unread)}


_activities: dict[str, dict[str, bytes]] = {}
_timelines: dict[str, list[str]] = {}
_groups: dict[str, _GroupFeed] = {}
_subscribers: dict[str, set[asyncio.Queue[Item]]] = {}


def reset() -> None:
    """Forget everything the memory backend holds (tests)."""
    _activities.clear()
    _timelines.clear()
    _groups.clear()


class MemoryActivityStorage:
    """Activities by id in a process-wide dict, one namespace per prefix."""

    def __init__(self, prefix: str) -> None:
        self._items = _activities.setdefault(prefix, {})

    async def add_many(self, items: Mapping[str, bytes]) -> None:
        self._items.update(items)

    async def get_many(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        return [self._items.get(i) for i in activity_ids]

    async def remove_many(self, activity_ids: Sequence[str]) -> None:
        for activity_id in activity_ids:
            self._items.pop(activity_id, None)

    async def flush(self) -> None:
        self._items.clear()


class MemoryTimelineStorage:
    """Timelines as sorted lists of ids (ascending; newest is last)."""

    stores_payload = False

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        activity_storage: ActivityStorage | None = None,
    ) -> dict[str, int]:
        if activity_storage is not None:
            await activity_storage.add_many(
                {i: data for items in entries.values() for i, data in items}
            )
        added: dict[str, int] = {}
        for key, items in entries.items():
            timeline = _timelines.setdefault(key, [])
            new = 0
            for activity_id, _ in items:
                position = bisect.bisect_left(timeline, activity_id)
                if position == len(timeline) or timeline[position] != activity_id:
                    timeline.insert(position, activity_id)
                    new += 1
            if max_length is not None and len(timeline) > max_length:
                del timeline[: len(timeline) - max_length]
            added[key] = new
        return added

    async def remove_many(self, entries: Mapping[str, Sequence[str]]) -> dict[str, int]:
        removed: dict[str, int] = {}
        for key, ids in entries.items():
            timeline = _timelines.get(key, [])
            count = 0
            for activity_id in set(ids):
                position = bisect.bisect_left(timeline, activity_id)
                if position < len(timeline) and timeline[position] == activity_id:
                    del timeline[position]
                    count += 1
            removed[key] = count
        return removed

    async def get_slice(
        self,
        key: str,
        start: int,
        stop: int | None,
        bounds: Bounds,
        newest_first: bool,
        activity_storage: ActivityStorage | None = None,
    ) -> list[tuple[str, bytes | None]]:
        ids = [i for i in _timelines.get(key, []) if bounds.admits(i)]
        if newest_first:
            ids.reverse()
        return [(i, None) for i in ids[start:stop]]

    async def count(self, key: str) -> int:
        return len(_timelines.get(key, []))

    async def contains_many(self, key: str, activity_ids: Sequence[str]) -> list[bool]:
        timeline = _timelines.get(key, [])
        found = []
        for activity_id in activity_ids:
            position = bisect.bisect_left(timeline, activity_id)
            found.append(position < len(timeline) and timeline[position] == activity_id)
        return found

    async def index_of(self, key: str, activity_id: str) -> int | None:
        timeline = _timelines.get(key, [])
        position = bisect.bisect_left(timeline, activity_id)
        if position < len(timeline) and timeline[position] == activity_id:
            return len(timeline) - 1 - position
        return None

    async def trim(self, key: str, length: int) -> None:
        timeline = _timelines.get(key)
        if timeline and len(timeline) > length:
            del timeline[: len(timeline) - length]

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            _timelines.pop(key, None)

    async def flush(self, key_prefix: str) -> None:
        for key in [k for k in _timelines if k.startswith(key_prefix)]:
            del _timelines[key]


class MemoryGroupStorage:
    """Aggregated feeds as dicts of groups with a version counter for optimistic writes."""

    async def read_many(self, keys: Sequence[str], limit: int | None) -> list[GroupSnapshot]:
        snapshots = []
        for key in keys:
            feed = _groups.get(key) or _GroupFeed()
            ids = feed.ordered_ids()[:limit]
            snapshots.append(GroupSnapshot(feed.version, [(i, feed.data[i]) for i in ids]))
        return snapshots

    async def commit_many(self, writes: Sequence[GroupWrite], markers: bool) -> list[bool]:
        results = []
        for write in writes:
            feed = _groups.setdefault(write.key, _GroupFeed())
            if feed.version != write.version:
                results.append(False)
                continue
            for aggregated_id in write.removals:
                self._drop(feed, aggregated_id)
            for aggregated_id, score, data in write.upserts:
                feed.scores[aggregated_id] = score
                feed.data[aggregated_id] = data
            if markers:
                feed.unseen.update(write.unseen)
                feed.unread.update(write.unseen)
            if write.max_length is not None:
                for aggregated_id in feed.ordered_ids()[write.max_length :]:
                    self._drop(feed, aggregated_id)
            feed.version += 1
            results.append(True)
            if markers:
                _publish(write.key, feed.counts())
        return results

    @staticmethod
    def _drop(feed: _GroupFeed, aggregated_id: str) -> None:
        feed.scores.pop(aggregated_id, None)
        feed.data.pop(aggregated_id, None)
        feed.unseen.discard(aggregated_id)
        feed.unread.discard(aggregated_id)

    async def get_slice(self, key: str, start: int, stop: int | None) -> list[tuple[str, bytes]]:
        feed = _groups.get(key)
        if feed is None:
            return []
        return [(i, feed.data[i]) for i in feed.ordered_ids()[start:stop]]

    async def count(self, key: str) -> int:
        feed = _groups.get(key)
        return len(feed.scores) if feed else 0

    async def marker_state(self, key: str, ids: Sequence[str]) -> list[tuple[bool, bool]]:
        feed = _groups.get(key) or _GroupFeed()
        return [(i not in feed.unseen, i not in feed.unread) for i in ids]

    async def marker_counts(self, key: str) -> Counts:
        feed = _groups.get(key) or _GroupFeed()
        return feed.counts()

    async def mark(self, key: str, ids: Sequence[str] | None, seen: bool, read: bool) -> Counts:
        feed = _groups.get(key)
        if feed is None:
            return _GroupFeed().counts()
        before = feed.counts()
        targets = set(feed.scores) if ids is None else set(ids)
        if seen:
            feed.unseen -= targets
        if read:
            feed.unread -= targets
        counts = feed.counts()
        if counts != before:
            feed.version += 1
            _publish(key, counts)
        return counts

    def subscribe(self, key: str) -> Subscription:
        return _Subscription(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            if _groups.pop(key, None) is not None:
                _publish(key, _GroupFeed().counts())

    async def flush(self, key_prefix: str) -> None:
        for key in [k for k in _groups if k.startswith(key_prefix)]:
            del _groups[key]


class _Subscription(QueueSubscription):
    """Registers its queue and reads the counts in one step: nothing is missed or repeated."""

    def __init__(self, key: str) -> None:
        super().__init__()
        self._key = key

    async def _go_live(self) -> Counts:
        _subscribers.setdefault(self._key, set()).add(self._queue)
        return (_groups.get(self._key) or _GroupFeed()).counts()

    async def _release(self) -> None:
        self._release_soon()

    def _release_soon(self) -> None:
        listeners = _subscribers.get(self._key)
        if listeners is not None:
            listeners.discard(self._queue)
            if not listeners:
                del _subscribers[self._key]


def _publish(key: str, counts: Counts) -> None:
    for queue in _subscribers.get(key, ()):
        queue.put_nowait(("change", counts.copy()))
