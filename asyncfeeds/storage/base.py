"""The async, batch-first storage protocols every backend implements.

Feeds hold the logic and serialise; storages hold the I/O and deal in keys, ids
and bytes. Every write takes many items (often for many feeds at once) so a
fanout chunk is one round trip.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..activity import ID_TIME_DIGITS, format_micros
from ..keys import KeyFormat
from ..types import Counts as Counts
from ..types import Subscription

Entry = tuple[str, bytes]
"""An activity id with its serialised activity."""

TOMBSTONE_LIMIT = 1000
"""Removals one feed remembers (the oldest versions are forgotten first), so an add job
older than a removal, arriving late, stays out; bounded so storage does not grow forever."""


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


def expiry_cutoff(ttl: int | None) -> str | None:
    """The oldest activity id a TTL of ``ttl`` seconds keeps now (``None``: no TTL).

    Ids start with their time, so every id older than the TTL sorts below it.
    """
    if ttl is None:
        return None
    oldest = max(time.time_ns() // 1000 - ttl * 1_000_000, 0)
    return format_micros(oldest)


def oldest_score(ttl: int | None) -> int | None:
    """The oldest group score (last update, in µs) a TTL of ``ttl`` seconds keeps now."""
    return None if ttl is None else time.time_ns() // 1000 - ttl * 1_000_000


def within_ttl(bounds: Bounds, cutoff: str | None) -> Bounds:
    """``bounds`` narrowed to ids at or above ``cutoff``."""
    if not cutoff or (bounds.gte is not None and bounds.gte >= cutoff):
        return bounds
    return Bounds(gt=bounds.gt, gte=cutoff, lt=bounds.lt, lte=bounds.lte)


@dataclass(frozen=True, slots=True)
class IndexEntry:
    """Where an aggregated feed holds an activity (or that it was removed), and since which call.

    ``aggregated_id`` is ``None`` for a removal (a tombstone), which keeps its
    version so an older add that arrives late cannot bring the activity back.
    """

    version: int
    aggregated_id: str | None = None
    actor: str = ""
    """The activity's actor as a string, so feeds can drop a followee's activities exactly."""

    @property
    def held(self) -> bool:
        """Whether the feed holds the activity (as opposed to remembering its removal)."""
        return self.aggregated_id is not None

    def encode(self) -> str:
        """Compact text form: ``"+<version> <created> <group length> <group><actor>"``
        (version and the aggregated id's creation time in base 36), ``"<version> <id
        length> <aggregated id><actor>"`` for an aggregated id of another shape, or
        ``"-<version>"`` for a removal."""
        aggregated_id = self.aggregated_id
        if aggregated_id is None:
            return f"-{self.version}"
        created, colon, group = aggregated_id.partition(":")
        if (
            colon
            and len(created) == ID_TIME_DIGITS
            and created.isascii()
            and created.isdigit()
            and int(created) < EXACT_IN_LUA
        ):
            return (
                f"+{base36(self.version)} {base36(int(created))} {len(group)} "
                f"{group}{self.actor}"
            )
        return f"{self.version} {len(aggregated_id)} {aggregated_id}{self.actor}"

    @classmethod
    def decode(cls, text: str | bytes) -> IndexEntry:
        """Read what ``encode`` wrote (any of its forms)."""
        if isinstance(text, bytes):
            text = text.decode()
        if text.startswith("-"):
            return cls(int(text[1:]))
        if text.startswith("+"):
            version, created, length, rest = text[1:].split(" ", 3)
            size = int(length)
            aggregated_id = f"{format_micros(int(created, 36))}:{rest[:size]}"
            return cls(int(version, 36), aggregated_id, rest[size:])
        version, length, rest = text.split(" ", 2)
        size = int(length)
        return cls(int(version), rest[:size], rest[size:])


EXACT_IN_LUA = 2**53
"""Integers from here on are not exact as Lua numbers (creation times from the year 2255)."""


def base36(number: int) -> str:
    """A non-negative integer in base 36 (lower case), as Lua's ``tonumber(s, 36)`` reads."""
    digits = []
    while True:
        number, digit = divmod(number, 36)
        digits.append(_BASE36[digit])
        if not number:
            return "".join(reversed(digits))


_BASE36 = "0123456789abcdefghijklmnopqrstuvwxyz"


@dataclass(frozen=True, slots=True)
class GroupWrite:
    """One aggregated feed's optimistic write: upsert and remove groups if ``version`` holds.

    The storage applies it atomically: groups, index entries, markers and the trim
    to ``max_length`` change together or not at all. Index entries that point at a
    group the write removes or trims are dropped with it.
    """

    key: str
    version: Any
    upserts: Sequence[tuple[str, int, bytes]]
    """``(aggregated_id, score, data)``; the score orders groups (newest = highest)."""
    removals: Sequence[str]
    max_length: int | None
    unseen: Sequence[str] = ()
    """Group ids that become unseen and unread (new or changed groups of a notification feed)."""
    index: Mapping[str, IndexEntry] = field(default_factory=dict)
    """Index entries to set, by activity id (held activities and removals)."""


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    """Groups of one aggregated feed and index entries, with the version they were read at."""

    version: Any
    groups: list[tuple[str, bytes]]
    index: dict[str, IndexEntry] = field(default_factory=dict)
    """The entries of the activity ids asked for (absent: never seen, or forgotten)."""


@dataclass(frozen=True, slots=True)
class GroupQuery:
    """What ``read_many`` returns of each feed.

    ``limit`` newest groups (all if ``None``) whose group key is in ``group_keys``
    (any key if ``None``), the index entries of ``activity_ids``, and with
    ``holding`` also every group that holds one of those activities.
    """

    limit: int | None = None
    group_keys: frozenset[str] | None = None
    activity_ids: Sequence[str] = ()
    holding: bool = False


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
    """Flat timelines: per-feed sets of activity ids ordered by id, newest first.

    A timeline storage is bound, when built, to the activity storage holding the
    data of its ids (and that storage's TTL: ids older than it are never read).

    Writes carry a version (see ``asyncfeeds.versions``): an add or remove of an
    id applies only if its version is newer than the last one applied for that
    id in that timeline, checked in the same atomic step as the write. Removals
    are remembered (a bounded number per timeline) so a late, older add stays out.
    """

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        version: int,
        *,
        count: bool = True,
    ) -> dict[str, int]:
        """Add ids to many timelines and trim each to ``max_length``; new ids per key.

        Entries with data store it in the bound activity storage first (in the same
        round trip where the backend can), so no timeline holds a dangling id;
        fanout passes empty data (the manager stored it once). With ``count=False`` a
        backend that would have to read first to count (Cassandra) does not, and returns
        the ids it wrote per key instead.
        """

    async def remove_many(
        self, entries: Mapping[str, Sequence[str]], version: int, *, count: bool = True
    ) -> dict[str, int]:
        """Remove ids from many timelines; removed ids per key (with ``count=False``, as
        ``add_many``: the ids deleted, where counting would need a read)."""

    async def get_slice(
        self,
        key: str,
        start: int,
        stop: int | None,
        bounds: Bounds,
        newest_first: bool,
    ) -> list[tuple[str, bytes | None]]:
        """Ids of positions ``start:stop`` within ``bounds``, with their data where known.

        A backend may return the data from its bound activity storage in the same
        round trip; rows it leaves at ``None`` are hydrated by the feed.
        """

    async def get_slices(
        self,
        keys: Sequence[str],
        limit: int,
        bounds: Bounds,
        with_data: bool = True,
    ) -> list[list[tuple[str, bytes | None]]]:
        """The newest ``limit`` ids within ``bounds`` of each timeline, in one round trip
        where the backend can (a read-time merge of many feeds); with ``with_data``, their
        data as ``get_slice`` returns it."""

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

    async def flush(self, key_format: KeyFormat) -> None:
        """Remove every timeline whose key has the shape of ``key_format``."""


@dataclass(frozen=True, slots=True)
class MergeAdd:
    """An add a storage merges itself (the default aggregator's rules), for many feeds.

    ``items``: per activity, in id order, ``(id, 18-digit time, group key, actor,
    compact entry)``. ``window``: the newest groups an activity may join (``None``:
    all); ``kept``: activities a group keeps; ``max_length``: ``None`` keeps all.
    """

    items: Sequence[tuple[str, str, str, str, bytes]]
    version: int
    window: int | None
    kept: int
    max_length: int | None


@runtime_checkable
class MergingGroupStorage(Protocol):
    """A group storage that can merge adds in one atomic step, without a read first."""

    async def merge_add(
        self, keys: Sequence[str], add: MergeAdd, markers: bool, with_data: bool
    ) -> list[list[bytes] | int | None]:
        """Per feed: the new and changed groups' data (with ``with_data``) or their
        count, or ``None`` where the feed holds a group it cannot merge (nothing
        written: take the read-plan-commit path)."""


@runtime_checkable
class GroupStorage(Protocol):
    """Aggregated timelines: per-feed groups ordered by score, written optimistically.

    Each feed also keeps an exact index, activity id -> ``IndexEntry``, changed in
    the same atomic step as the groups. With ``markers`` enabled (notification
    feeds) the storage keeps the unseen and unread group ids too, and publishes
    the counts to subscribers after every change.
    """

    async def read_many(self, keys: Sequence[str], query: GroupQuery) -> list[GroupSnapshot]:
        """What ``query`` asks of each feed, with the version it was read at."""

    async def commit_many(self, writes: Sequence[GroupWrite], markers: bool) -> list[bool]:
        """Apply each write if its version still holds; False where a writer got in first."""

    async def index_entries(self, key: str) -> dict[str, IndexEntry]:
        """The whole index of one feed (for removals by actor)."""

    async def get_slice(self, key: str, start: int, stop: int | None) -> list[tuple[str, bytes]]:
        """Groups at positions ``start:stop``, highest score first."""

    async def get_page(
        self, key: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[str, bytes]]:
        """Up to ``limit`` groups ordered by (score, id), highest first, strictly after
        ``before`` (from the top if ``None``)."""

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
        """Remove whole feeds with their markers and index."""

    async def flush(self, key_format: KeyFormat) -> None:
        """Remove every feed whose key has the shape of ``key_format``."""


@runtime_checkable
class PulledStorage(Protocol):
    """Which authors of a user-feed class are pulled: read at read time, never fanned out.

    ``scope`` names the user-feed class (``KeyFormat.scope``); ``author`` is an
    encoded user id. The set only grows while ``pull_threshold`` is set.
    """

    async def add(self, scope: str, author: str) -> None:
        """Record ``author`` as pulled (idempotent)."""

    async def contains_many(self, scope: str, authors: Sequence[str]) -> list[bool]:
        """Whether each author is pulled, in one round trip where the backend can."""

    async def flush(self, scope: str) -> None:
        """Forget every pulled author of ``scope``."""
