"""The async, batch-first storage protocols every backend implements.

Feeds hold the logic and serialise; storages hold the I/O and deal in keys, ids
and bytes. Every write takes many items (often for many feeds at once) so a
fanout chunk is one round trip.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, runtime_checkable

from ..types import Counts as Counts
from ..types import Subscription

Entry = tuple[str, bytes]
"""An activity id with its serialised activity."""


@dataclass(frozen=True, slots=True)
class Bounds:
    """Activity-id range of a filtered read; ``None`` means unbounded."""

    gt: str | None = None
    gte: str | None = None
    lt: str | None = None
    lte: str | None = None

    def admits(self, activity_id: str) -> bool:
        """Whether an id lies inside the range."""
        return not (
            (self.gt is not None and activity_id <= self.gt)
            or (self.gte is not None and activity_id < self.gte)
            or (self.lt is not None and activity_id >= self.lt)
            or (self.lte is not None and activity_id > self.lte)
        )

    @property
    def unbounded(self) -> bool:
        """True when no bound is set."""
        return self.gt is None and self.gte is None and self.lt is None and self.lte is None


@dataclass(frozen=True, slots=True)
class GroupWrite:
    """One aggregated feed's optimistic write: upsert and remove groups if ``version`` holds."""

    key: str
    version: Any
    upserts: Sequence[tuple[str, int, bytes]]
    """``(aggregated_id, score, data)``; the score orders groups (newest = highest)."""
    removals: Sequence[str]
    max_length: int | None
    unseen: Sequence[str] = ()
    """Group ids that become unseen and unread (new or changed groups of a notification feed)."""


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """The newest groups of one aggregated feed with the version they were read at."""

    version: Any
    groups: list[tuple[str, bytes]]


@runtime_checkable
class ActivityStorage(Protocol):
    """Activities stored once by id, so timelines can hold only ids."""

    async def add_many(self, items: Mapping[str, bytes]) -> None:
        """Store (or replace) serialised activities by id."""

    async def get_many(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        """Load serialised activities; ``None`` where an id is unknown."""

    async def remove_many(self, activity_ids: Sequence[str]) -> None:
        """Forget activities by id."""

    async def flush(self) -> None:
        """Drop every activity this storage holds."""


@runtime_checkable
class TimelineStorage(Protocol):
    """Flat timelines: per-feed sets of activity ids ordered by id, newest first."""

    stores_payload: bool
    """True if slices return the activity data; False if they return ids only (hydrate)."""

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        activity_storage: ActivityStorage | None = None,
    ) -> dict[str, int]:
        """Add entries to many timelines and trim each to ``max_length``; new ids per key.

        With ``activity_storage`` the entries' data is stored there first (in the
        same round trip where the backend can), so no timeline holds a dangling id.
        """

    async def remove_many(self, entries: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """Remove ids from many timelines; removed ids per key."""

    async def get_slice(
        self,
        key: str,
        start: int,
        stop: int | None,
        bounds: Bounds,
        newest_first: bool,
        activity_storage: ActivityStorage | None = None,
    ) -> list[tuple[str, bytes | None]]:
        """Ids (and data, if stored) of positions ``start:stop`` within ``bounds``.

        A backend may use ``activity_storage`` to return the data of an id-only
        timeline in the same round trip; rows it leaves at ``None`` are hydrated.
        """

    async def count(self, key: str) -> int:
        """How many ids the timeline holds."""

    async def contains_many(self, key: str, activity_ids: Sequence[str]) -> list[bool]:
        """Membership of each id."""

    async def index_of(self, key: str, activity_id: str) -> int | None:
        """Position of an id counted from the newest, or ``None``."""

    async def trim(self, key: str, length: int) -> None:
        """Keep only the newest ``length`` ids."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove whole timelines."""

    async def flush(self, key_prefix: str) -> None:
        """Remove every timeline whose key starts with ``key_prefix``."""


@runtime_checkable
class GroupStorage(Protocol):
    """Aggregated timelines: per-feed groups ordered by score, written optimistically.

    With ``markers`` enabled (notification feeds) the storage also keeps the
    unseen and unread group ids, changed in the same atomic step as the groups,
    and publishes the counts to subscribers after every change.
    """

    async def read_many(self, keys: Sequence[str], limit: int | None) -> list[GroupSnapshot]:
        """The newest ``limit`` groups (all if ``None``) of each feed, with its version."""

    async def commit_many(self, writes: Sequence[GroupWrite], markers: bool) -> list[bool]:
        """Apply each write if its version still holds; False where a writer got in first."""

    async def get_slice(self, key: str, start: int, stop: int | None) -> list[tuple[str, bytes]]:
        """Groups at positions ``start:stop``, highest score first."""

    async def count(self, key: str) -> int:
        """How many groups the feed holds."""

    async def marker_state(self, key: str, ids: Sequence[str]) -> list[tuple[bool, bool]]:
        """``(is_seen, is_read)`` of each group id."""

    async def marker_counts(self, key: str) -> Counts:
        """How many groups are unseen and unread."""

    async def mark(self, key: str, ids: Sequence[str] | None, seen: bool, read: bool) -> Counts:
        """Mark groups (all if ``ids`` is None) seen and/or read; returns the new counts."""

    def subscribe(self, key: str) -> Subscription:
        """Counts now, then after each change of this feed (see ``asyncfeeds.types``)."""

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove whole feeds with their markers."""

    async def flush(self, key_prefix: str) -> None:
        """Remove every feed whose key starts with ``key_prefix``."""
