"""The embedded memory backend: one process, no server; the reference for the protocols."""

from __future__ import annotations

import asyncio
import bisect
from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from ..activity import group_of
from ..keys import KeyFormat
from ..types import Subscription
from .base import (
    TOMBSTONE_LIMIT,
    Bounds,
    Counts,
    Entry,
    GroupQuery,
    GroupSnapshot,
    GroupWrite,
    IndexEntry,
    expiry_cutoff,
    oldest_score,
)
from .subscription import Item, QueueSubscription


@dataclass
class _Timeline:
    ids: list[str] = field(default_factory=list)
    """Ascending; the newest id is last."""
    versions: dict[str, int] = field(default_factory=dict)
    """Last version applied per id: held ids and remembered removals."""
    removed: dict[str, int] = field(default_factory=dict)
    """Remembered removals, id -> version."""

    def applies(self, activity_id: str, version: int) -> bool:
        return self.versions.get(activity_id, -1) < version

    def remember_removal(self, activity_id: str, version: int) -> None:
        self.versions[activity_id] = version
        self.removed.pop(activity_id, None)  # re-recorded removals move to the end
        self.removed[activity_id] = version
        _forget_oldest(self.removed, self.versions)


@dataclass
class _GroupFeed:
    version: int = 0
    scores: dict[str, int] = field(default_factory=dict)
    data: dict[str, bytes] = field(default_factory=dict)
    unseen: set[str] = field(default_factory=set)
    unread: set[str] = field(default_factory=set)
    index: dict[str, IndexEntry] = field(default_factory=dict)
    removed: dict[str, int] = field(default_factory=dict)
    """Removals in ``index``, id -> version, to forget the oldest first."""

    def ordered_ids(self, oldest: int | None = None) -> list[str]:
        """Group ids by (score, id), highest first, none older than ``oldest``."""
        ids = sorted(self.scores, key=lambda i: (self.scores[i], i), reverse=True)
        if oldest is None:
            return ids
        return [i for i in ids if self.scores[i] >= oldest]

    def counts(self, oldest: int | None = None) -> Counts:
        live = set(self.ordered_ids(oldest))
        return {
            "unseen_count": len(self.unseen & live),
            "unread_count": len(self.unread & live),
        }


def _forget_oldest(removed: dict[str, int], versions: MutableMapping[str, Any]) -> None:
    """Keep at most ``TOMBSTONE_LIMIT`` removals, forgetting the earliest recorded first."""
    while len(removed) > TOMBSTONE_LIMIT:
        activity_id = next(iter(removed))
        del removed[activity_id]
        versions.pop(activity_id, None)


_activities: dict[str, dict[str, bytes]] = {}
_references: dict[str, dict[str, int]] = {}
_timelines: dict[str, _Timeline] = {}
_groups: dict[str, _GroupFeed] = {}
_subscribers: dict[str, set[asyncio.Queue[Item]]] = {}
_pulled: dict[str, set[str]] = {}


def reset() -> None:
    """Forget everything the memory backend holds (tests)."""
    for items in _activities.values():  # in place: the cached storages hold these dicts
        items.clear()
    for references in _references.values():
        references.clear()
    _timelines.clear()
    _groups.clear()
    _pulled.clear()


class MemoryActivityStorage:
    """Activities by id in a process-wide dict, one namespace per prefix.

    Timelines count their references here; an activity's data goes with the last
    timeline that lets go of it, or when it is older than the TTL.
    """

    def __init__(self, prefix: str, ttl: int | None = None) -> None:
        self.prefix = prefix
        self.ttl = ttl
        self._items = _activities.setdefault(prefix, {})
        self._references = _references.setdefault(prefix, {})

    def _expire(self) -> None:
        cutoff = expiry_cutoff(self.ttl)
        if cutoff is not None:
            for activity_id in [i for i in self._items if i < cutoff]:
                del self._items[activity_id]
                self._references.pop(activity_id, None)

    async def add_many(self, items: Mapping[str, bytes]) -> None:
        self._items.update(items)
        self._expire()

    async def get_many(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        self._expire()
        return [self._items.get(i) for i in activity_ids]

    async def remove_many(self, activity_ids: Sequence[str]) -> None:
        for activity_id in activity_ids:
            self._items.pop(activity_id, None)
            self._references.pop(activity_id, None)

    def hold(self, activity_id: str) -> None:
        """One more timeline holds ``activity_id``."""
        self._references[activity_id] = self._references.get(activity_id, 0) + 1

    def release(self, activity_id: str) -> None:
        """A timeline let go of ``activity_id``; the last one takes its data along."""
        left = self._references.get(activity_id, 0) - 1
        if left > 0:
            self._references[activity_id] = left
        else:
            self._references.pop(activity_id, None)
            self._items.pop(activity_id, None)

    async def count(self) -> int:
        """How many activities this prefix holds (for tests and the bench)."""
        self._expire()
        return len(self._items)

    async def flush(self) -> None:
        self._items.clear()
        self._references.clear()


class MemoryTimelineStorage:
    """Timelines as sorted lists of ids with the version last applied per id."""

    def __init__(self, activities: MemoryActivityStorage) -> None:
        self.activities = activities

    def _cutoff(self) -> str:
        return expiry_cutoff(self.activities.ttl) or ""

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        version: int,
        *,
        count: bool = True,
    ) -> dict[str, int]:
        items = {i: data for rows in entries.values() for i, data in rows if data}
        if items:
            await self.activities.add_many(items)
        cutoff = self._cutoff()
        added: dict[str, int] = {}
        for key, rows in entries.items():
            timeline = _timelines.setdefault(key, _Timeline())
            ids = timeline.ids
            new = 0
            for activity_id, _ in rows:
                if activity_id < cutoff or not timeline.applies(activity_id, version):
                    continue
                timeline.versions[activity_id] = version
                timeline.removed.pop(activity_id, None)
                position = bisect.bisect_left(ids, activity_id)
                if position == len(ids) or ids[position] != activity_id:
                    ids.insert(position, activity_id)
                    self.activities.hold(activity_id)
                    new += 1
            added[key] = new
        # every feed holds what it took before any trims: an activity one full feed drops
        # at once keeps its data for the others of the batch
        for key in added:
            self._trim(_timelines[key], max_length)
        return added

    def _trim(self, timeline: _Timeline, length: int | None) -> None:
        """Drop ids older than the TTL, then all but the newest ``length``."""
        expired = bisect.bisect_left(timeline.ids, self._cutoff())
        excess = max(expired, 0 if length is None else len(timeline.ids) - length)
        if excess > 0:
            for activity_id in timeline.ids[:excess]:
                timeline.versions.pop(activity_id, None)
                self.activities.release(activity_id)
            del timeline.ids[:excess]

    async def remove_many(
        self, entries: Mapping[str, Sequence[str]], version: int, *, count: bool = True
    ) -> dict[str, int]:
        removed: dict[str, int] = {}
        for key, ids in entries.items():
            timeline = _timelines.setdefault(key, _Timeline())
            gone = 0
            for activity_id in dict.fromkeys(ids):
                if not timeline.applies(activity_id, version):
                    continue
                timeline.remember_removal(activity_id, version)
                position = bisect.bisect_left(timeline.ids, activity_id)
                if position < len(timeline.ids) and timeline.ids[position] == activity_id:
                    del timeline.ids[position]
                    self.activities.release(activity_id)
                    gone += 1
            removed[key] = gone
        return removed

    def _ids(self, key: str) -> list[str]:
        """The ids within the TTL, ascending."""
        timeline = _timelines.get(key)
        if timeline is None:
            return []
        return timeline.ids[bisect.bisect_left(timeline.ids, self._cutoff()) :]

    async def get_slice(
        self,
        key: str,
        start: int,
        stop: int | None,
        bounds: Bounds,
        newest_first: bool,
    ) -> list[tuple[str, bytes | None]]:
        ids = [i for i in self._ids(key) if bounds.admits(i)]
        if newest_first:
            ids.reverse()
        return [(i, None) for i in ids[start:stop]]

    async def get_slices(
        self,
        keys: Sequence[str],
        limit: int,
        bounds: Bounds,
        with_data: bool = True,
    ) -> list[list[tuple[str, bytes | None]]]:
        return [await self.get_slice(key, 0, limit, bounds, True) for key in keys]

    async def count(self, key: str) -> int:
        return len(self._ids(key))

    async def contains_many(self, key: str, activity_ids: Sequence[str]) -> list[bool]:
        ids = self._ids(key)
        found = []
        for activity_id in activity_ids:
            position = bisect.bisect_left(ids, activity_id)
            found.append(position < len(ids) and ids[position] == activity_id)
        return found

    async def index_of(self, key: str, activity_id: str) -> int | None:
        ids = self._ids(key)
        position = bisect.bisect_left(ids, activity_id)
        if position < len(ids) and ids[position] == activity_id:
            return len(ids) - 1 - position
        return None

    async def trim(self, key: str, length: int) -> None:
        timeline = _timelines.get(key)
        if timeline is not None:
            self._trim(timeline, length)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            timeline = _timelines.pop(key, None)
            if timeline is not None:
                for activity_id in timeline.ids:
                    self.activities.release(activity_id)

    async def flush(self, key_format: KeyFormat) -> None:
        for key in [k for k in _timelines if key_format.owns(k)]:
            del _timelines[key]


class MemoryGroupStorage:
    """Aggregated feeds as dicts of groups with a version counter for optimistic writes.

    With a TTL, groups last updated before it are never read and go with the next write.
    """

    def __init__(self, ttl: int | None = None) -> None:
        self.ttl = ttl

    def _oldest(self) -> int | None:
        return oldest_score(self.ttl)

    async def read_many(self, keys: Sequence[str], query: GroupQuery) -> list[GroupSnapshot]:
        snapshots = []
        oldest = self._oldest()
        for key in keys:
            feed = _groups.get(key) or _GroupFeed()
            live = feed.ordered_ids(oldest)
            wanted = [
                i
                for i in live[: query.limit]
                if query.group_keys is None or group_of(i) in query.group_keys
            ]
            index = {
                i: feed.index[i]
                for i in query.activity_ids
                if i in feed.index
                and (not feed.index[i].held or feed.index[i].aggregated_id in live)
            }
            if query.holding:
                holding = {e.aggregated_id for e in index.values() if e.aggregated_id}
                wanted.extend(i for i in live if i in holding and i not in wanted)
            snapshots.append(
                GroupSnapshot(feed.version, [(i, feed.data[i]) for i in wanted], index)
            )
        return snapshots

    async def commit_many(self, writes: Sequence[GroupWrite], markers: bool) -> list[bool]:
        results = []
        for write in writes:
            feed = _groups.setdefault(write.key, _GroupFeed())
            if feed.version != write.version:
                results.append(False)
                continue
            expired = set(feed.scores) - set(feed.ordered_ids(self._oldest()))
            dropped = set(write.removals) | expired
            for aggregated_id in dropped:
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
                    dropped.add(aggregated_id)
            self._index(feed, write.index, dropped)
            feed.version += 1
            results.append(True)
            if markers:
                _publish(write.key, feed.counts(self._oldest()))
        return results

    @staticmethod
    def _index(feed: _GroupFeed, entries: Mapping[str, IndexEntry], dropped: set[str]) -> None:
        for activity_id, entry in entries.items():
            feed.index[activity_id] = entry
            feed.removed.pop(activity_id, None)
            if not entry.held:
                feed.removed[activity_id] = entry.version
        if dropped:
            for activity_id in [
                i for i, e in feed.index.items() if e.aggregated_id in dropped
            ]:
                del feed.index[activity_id]
        _forget_oldest(feed.removed, feed.index)

    @staticmethod
    def _drop(feed: _GroupFeed, aggregated_id: str) -> None:
        feed.scores.pop(aggregated_id, None)
        feed.data.pop(aggregated_id, None)
        feed.unseen.discard(aggregated_id)
        feed.unread.discard(aggregated_id)

    async def index_entries(self, key: str) -> dict[str, IndexEntry]:
        feed = _groups.get(key)
        return dict(feed.index) if feed else {}

    async def get_slice(self, key: str, start: int, stop: int | None) -> list[tuple[str, bytes]]:
        feed = _groups.get(key)
        if feed is None:
            return []
        return [(i, feed.data[i]) for i in feed.ordered_ids(self._oldest())[start:stop]]

    async def get_page(
        self, key: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[str, bytes]]:
        feed = _groups.get(key)
        if feed is None:
            return []
        ids = [
            i
            for i in feed.ordered_ids(self._oldest())
            if before is None or (feed.scores[i], i) < before
        ]
        return [(i, feed.data[i]) for i in ids[:limit]]

    async def count(self, key: str) -> int:
        feed = _groups.get(key)
        return len(feed.ordered_ids(self._oldest())) if feed else 0

    async def marker_state(self, key: str, ids: Sequence[str]) -> list[tuple[bool, bool]]:
        feed = _groups.get(key) or _GroupFeed()
        return [(i not in feed.unseen, i not in feed.unread) for i in ids]

    async def marker_counts(self, key: str) -> Counts:
        feed = _groups.get(key) or _GroupFeed()
        return feed.counts(self._oldest())

    async def mark(self, key: str, ids: Sequence[str] | None, seen: bool, read: bool) -> Counts:
        feed = _groups.get(key)
        if feed is None:
            return _GroupFeed().counts()
        before = feed.counts(self._oldest())
        targets = set(feed.scores) if ids is None else set(ids)
        if seen:
            feed.unseen -= targets
        if read:
            feed.unread -= targets
        counts = feed.counts(self._oldest())
        if counts != before:
            feed.version += 1
            _publish(key, counts)
        return counts

    def subscribe(self, key: str) -> Subscription:
        return _Subscription(key)

    async def delete_many(self, keys: Sequence[str]) -> None:
        for key in keys:
            feed = _groups.pop(key, None)
            if feed is not None:
                # A writer that read the deleted feed must not commit onto a new one.
                _groups[key] = _GroupFeed(version=feed.version + 1)
                _publish(key, _GroupFeed().counts())

    async def flush(self, key_format: KeyFormat) -> None:
        for key in [k for k in _groups if key_format.owns(k)]:
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


class MemoryPulledStorage:
    """Pulled authors as one process-wide set per scope."""

    async def add(self, scope: str, author: str) -> None:
        _pulled.setdefault(scope, set()).add(author)

    async def contains_many(self, scope: str, authors: Sequence[str]) -> list[bool]:
        pulled = _pulled.get(scope, set())
        return [author in pulled for author in authors]

    async def flush(self, scope: str) -> None:
        _pulled.pop(scope, None)
