"""Aggregated and notification feeds: each feed's whole group state in ONE row.

The row holds ``groups`` (id -> serialised group), ``scores``, the ``unseen``
and ``unread`` markers, the activity index ``members`` (activity id -> encoded
``IndexEntry``), the ``removed`` activity ids by version (to forget the oldest
removals) and a ``version`` token. A commit is one lightweight transaction,
``UPDATE ... IF version = <read token>``, so groups, index, trim and markers
change together or not at all, and a concurrent writer simply retries. Writers
read at the serial consistency, so the token they compare against cannot come
from a stale replica.
Tokens are random, never reused, so a deleted and re-created feed cannot be
mistaken for the one a slow writer read.

Two things keep many concurrent writers in one process cheap: commits to the
same feed queue behind an in-process lock (no Paxos contention with
ourselves), and a write whose token this process already saw replaced fails
at once, without a round trip.
"""

from __future__ import annotations

import asyncio
import random
import secrets
import weakref
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ...activity import group_of
from ...exceptions import ConcurrentUpdateError
from ...keys import KeyFormat
from ...types import Subscription
from ..base import (
    TOMBSTONE_LIMIT,
    Counts,
    GroupQuery,
    GroupSnapshot,
    GroupWrite,
    IndexEntry,
    oldest_score,
)
from ..notifier import CountsNotifier
from . import registry
from .connection import CassandraClient, OutcomeUnknownError, acsylla, get_client

MAX_MARK_ATTEMPTS = 200
_ELEMENT_READS = 16
"""Index entries read one by one as map elements; more than this reads the whole index."""
_MAX_SUPERSEDED = 100_000
_superseded: set[int] = set()
_locks: weakref.WeakValueDictionary[tuple[int, str], asyncio.Lock] = weakref.WeakValueDictionary()


@dataclass(frozen=True, slots=True)
class FeedState:
    """The version a snapshot was read at: the token and the feed's small per-group data."""

    token: int | None
    scores: dict[str, int] = field(default_factory=dict)
    unseen: frozenset[str] = frozenset()
    unread: frozenset[str] = frozenset()

    def counts(self) -> Counts:
        """Unseen and unread counts at this version."""
        return {"unseen_count": len(self.unseen), "unread_count": len(self.unread)}


_EMPTY = FeedState(None)


def _ordered(scores: dict[str, int]) -> list[str]:
    """Group ids by score, highest first (ties by id, as on every backend)."""
    return sorted(scores, key=lambda i: (scores[i], i), reverse=True)


def _lock(key: str) -> asyncio.Lock:
    lock_key = (id(asyncio.get_running_loop()), key)
    lock = _locks.get(lock_key)
    if lock is None:
        lock = _locks[lock_key] = asyncio.Lock()
    return lock


def _supersede(token: int | None) -> None:
    if token is not None:
        if len(_superseded) > _MAX_SUPERSEDED:
            _superseded.clear()
        _superseded.add(token)


class CassandraGroupStorage:
    """Aggregated feeds of one key prefix in a shared ``groups`` table."""

    def __init__(
        self,
        cluster: str,
        table: str,
        key_prefix: str,
        notifier: CountsNotifier | None,
        ttl: int | None = None,
    ) -> None:
        self.cluster = cluster
        self.table = table
        self.key_prefix = key_prefix
        self.notifier = notifier
        self.ttl = ttl

    def _live(self, state: FeedState) -> FeedState:
        """``state`` without the groups older than the TTL."""
        oldest = oldest_score(self.ttl)
        if oldest is None:
            return state
        scores = {i: score for i, score in state.scores.items() if score >= oldest}
        live = frozenset(scores)
        return FeedState(state.token, scores, state.unseen & live, state.unread & live)

    def _client(self) -> tuple[CassandraClient, str]:
        client = get_client(self.cluster)
        return client, client.table(self.table)

    async def _read(
        self,
        client: CassandraClient,
        table: str,
        key: str,
        with_groups: bool = True,
        consistency: acsylla.Consistency | None = None,
        activity_ids: Sequence[str] = (),
    ) -> tuple[FeedState, dict[str, bytes], dict[str, IndexEntry]]:
        """The row's state, its groups, and the index entries of ``activity_ids``.

        A few ids are read as map elements; many, by reading the whole index.
        """
        columns = "version, scores, unseen, unread" + (", groups" if with_groups else "")
        ids = list(dict.fromkeys(activity_ids))
        whole_index = len(ids) > _ELEMENT_READS
        if whole_index:
            columns += ", members"
        else:
            columns += "".join(f", members[?] AS m{i}" for i in range(len(ids)))
        params: list[Any] = [] if whole_index else list(ids)
        result = await client.execute(
            f"SELECT {columns} FROM {table} WHERE feed_key = ?",
            [*params, key],
            consistency=consistency,
        )
        row = result.first()
        if row is None or row["version"] is None:
            return _EMPTY, {}, {}
        state = FeedState(
            row["version"],
            dict(row["scores"] or {}),
            frozenset(row["unseen"] or ()),
            frozenset(row["unread"] or ()),
        )
        if whole_index:
            members = row["members"] or {}
            found = {i: members[i] for i in ids if i in members}
        else:
            found = {i: row[f"m{n}"] for n, i in enumerate(ids) if row[f"m{n}"] is not None}
        index = {i: IndexEntry.decode(v) for i, v in found.items()}
        return state, dict(row["groups"] or {}) if with_groups else {}, index

    # -- the optimistic protocol -------------------------------------------------------
    async def read_many(self, keys: Sequence[str], query: GroupQuery) -> list[GroupSnapshot]:
        client, table = self._client()
        reads = await asyncio.gather(
            *(
                self._read(
                    client,
                    table,
                    key,
                    consistency=client.serial_consistency,
                    activity_ids=query.activity_ids,
                )
                for key in keys
            )
        )
        snapshots = []
        for state, groups, index in reads:
            ordered = _ordered(self._live(state).scores)
            live = set(ordered)
            index = {i: e for i, e in index.items() if not e.held or e.aggregated_id in live}
            ids = [
                i
                for i in ordered[: query.limit]
                if query.group_keys is None or group_of(i) in query.group_keys
            ]
            if query.holding:
                holding = {e.aggregated_id for e in index.values() if e.aggregated_id}
                ids.extend(i for i in ordered if i in holding and i not in ids)
            snapshots.append(
                GroupSnapshot(state, [(i, groups[i]) for i in ids if i in groups], index)
            )
        return snapshots

    async def commit_many(self, writes: Sequence[GroupWrite], markers: bool) -> list[bool]:
        client, table = self._client()
        commits = asyncio.gather(*(self._commit(client, table, w, markers) for w in writes))
        _, results = await asyncio.gather(
            registry.register(client, self.table, self.key_prefix, [w.key for w in writes]),
            commits,
        )
        return list(results)

    async def _commit(
        self, client: CassandraClient, table: str, write: GroupWrite, markers: bool
    ) -> bool:
        state = write.version
        if not isinstance(state, FeedState):
            raise TypeError(f"{write.key}: a version read from this storage is needed")
        scores = dict(state.scores)
        expired = set(scores) - set(self._live(state).scores)
        for aggregated_id in (*write.removals, *expired):
            scores.pop(aggregated_id, None)
        upserts = {aggregated_id: (score, data) for aggregated_id, score, data in write.upserts}
        for aggregated_id, (score, _) in upserts.items():
            scores[aggregated_id] = score
        trimmed = set() if write.max_length is None else set(_ordered(scores)[write.max_length :])
        dropped = ((set(write.removals) | expired) - set(upserts)) | trimmed
        kept = {i: v for i, v in upserts.items() if i not in trimmed}
        unseen = (set(write.unseen) - dropped) if markers else set()
        index_set, index_drop, removed_set, removed_drop = await self._index_changes(
            client, table, write, dropped
        )
        token = secrets.randbits(63)
        params = [
            {i: data for i, (_, data) in kept.items()},
            dropped,
            {i: score for i, (score, _) in kept.items()},
            dropped,
            unseen,
            dropped,
            unseen,
            dropped,
            index_set,
            index_drop,
            removed_set,
            removed_drop,
            token,
            write.key,
            state.token,
        ]
        cql = (
            f"UPDATE {table} SET groups = groups + ?, groups = groups - ?, "
            f"scores = scores + ?, scores = scores - ?, unseen = unseen + ?, unseen = unseen - ?, "
            f"unread = unread + ?, unread = unread - ?, members = members + ?, "
            f"members = members - ?, removed = removed + ?, removed = removed - ?, version = ? "
            f"WHERE feed_key = ? IF version = ?"
        )
        async with _lock(write.key):
            if state.token in _superseded:
                return False
            applied = await self._conditional(client, table, write.key, cql, params, token)
            _supersede(state.token)
        if applied and markers and self.notifier is not None:
            after = FeedState(
                token, {}, (state.unseen | unseen) - dropped, (state.unread | unseen) - dropped
            )
            await self.notifier.publish(write.key, after.counts())
        return applied

    async def _index_changes(
        self, client: CassandraClient, table: str, write: GroupWrite, dropped: set[str]
    ) -> tuple[dict[str, str], set[str], dict[str, int], set[str]]:
        """The index and removal-map changes of a write.

        Entries of dropped groups and the oldest removals beyond the limit need
        the whole index; it is read (at the serial consistency) only then. A
        newer commit in between makes this write's condition fail, so what is
        read here is never older than the version the write is checked against.
        """
        index_set = {i: e.encode() for i, e in write.index.items()}
        removed_set = {i: e.version for i, e in write.index.items() if not e.held}
        removed_drop = {i for i, e in write.index.items() if e.held}
        index_drop: set[str] = set()
        if not dropped and not removed_set:
            return index_set, index_drop, removed_set, removed_drop
        result = await client.execute(
            f"SELECT members, removed FROM {table} WHERE feed_key = ?",
            [write.key],
            consistency=client.serial_consistency,
        )
        row = result.first()
        members = dict(row["members"] or {}) if row is not None else {}
        removed = dict(row["removed"] or {}) if row is not None else {}
        members.update(index_set)
        if dropped:
            for activity_id, text in members.items():
                if IndexEntry.decode(text).aggregated_id in dropped:
                    index_drop.add(activity_id)
        removed.update(removed_set)
        for activity_id in removed_drop:
            removed.pop(activity_id, None)
        excess = len(removed) - TOMBSTONE_LIMIT
        if excess > 0:
            forgotten = sorted(removed, key=removed.__getitem__)[:excess]
            index_drop.update(forgotten)
            removed_drop.update(forgotten)
        for activity_id in index_drop:
            index_set.pop(activity_id, None)
            removed_set.pop(activity_id, None)
        return index_set, index_drop, removed_set, removed_drop

    async def index_entries(self, key: str) -> dict[str, IndexEntry]:
        client, table = self._client()
        result = await client.execute(f"SELECT members FROM {table} WHERE feed_key = ?", [key])
        row = result.first()
        members = (row["members"] or {}) if row is not None else {}
        return {i: IndexEntry.decode(v) for i, v in members.items()}

    async def _conditional(
        self,
        client: CassandraClient,
        table: str,
        key: str,
        cql: str,
        params: list[Any],
        token: int,
    ) -> bool:
        """Run one ``IF version = ?`` update; after a timeout, a serial read tells the outcome.

        The read waits for the unfinished Paxos round to complete, so it shows this
        write's token exactly when the write was applied; if it fails too, the
        caller gets ``StorageUnavailableError`` (a retry of the same call is exact).
        """
        try:
            result = await client.execute(cql, params)
        except OutcomeUnknownError:
            state, _, _ = await self._read(
                client, table, key, with_groups=False, consistency=client.serial_consistency
            )
            return state.token == token
        return bool(result.first()["[applied]"])

    # -- reads -------------------------------------------------------------------------
    async def get_slice(self, key: str, start: int, stop: int | None) -> list[tuple[str, bytes]]:
        client, table = self._client()
        state, groups, _ = await self._read(client, table, key)
        live = self._live(state)
        return [(i, groups[i]) for i in _ordered(live.scores)[start:stop] if i in groups]

    async def get_page(
        self, key: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[str, bytes]]:
        client, table = self._client()
        state, groups, _ = await self._read(client, table, key)
        ids = [
            i
            for i in _ordered(self._live(state).scores)
            if i in groups and (before is None or (state.scores[i], i) < before)
        ]
        return [(i, groups[i]) for i in ids[:limit]]

    async def count(self, key: str) -> int:
        client, table = self._client()
        state, _, _ = await self._read(client, table, key, with_groups=False)
        return len(self._live(state).scores)

    # -- markers -----------------------------------------------------------------------
    async def marker_state(self, key: str, ids: Sequence[str]) -> list[tuple[bool, bool]]:
        client, table = self._client()
        state, _, _ = await self._read(client, table, key, with_groups=False)
        return [(i not in state.unseen, i not in state.unread) for i in ids]

    async def marker_counts(self, key: str) -> Counts:
        client, table = self._client()
        state, _, _ = await self._read(client, table, key, with_groups=False)
        return self._live(state).counts()

    async def mark(self, key: str, ids: Sequence[str] | None, seen: bool, read: bool) -> Counts:
        client, table = self._client()
        cql = (
            f"UPDATE {table} SET unseen = unseen - ?, unread = unread - ?, version = ? "
            f"WHERE feed_key = ? IF version = ?"
        )
        for attempt in range(MAX_MARK_ATTEMPTS):
            state, _, _ = await self._read(
                client, table, key, with_groups=False, consistency=client.serial_consistency
            )
            targets = set(state.scores) if ids is None else set(ids)
            unseen = state.unseen & targets if seen else frozenset()
            unread = state.unread & targets if read else frozenset()
            if not unseen and not unread:
                return state.counts()
            token = secrets.randbits(63)
            async with _lock(key):
                applied = state.token not in _superseded and await self._conditional(
                    client, table, key, cql, [set(unseen), set(unread), token, key, state.token],
                    token,
                )
                _supersede(state.token)
            if applied:
                counts = FeedState(token, {}, state.unseen - unseen, state.unread - unread).counts()
                if self.notifier is not None:
                    await self.notifier.publish(key, counts)
                return counts
            await asyncio.sleep(random.uniform(0, min(0.05, 0.001 * 2**attempt)))
        raise ConcurrentUpdateError(f"could not mark groups of {key} in {MAX_MARK_ATTEMPTS} tries")

    def subscribe(self, key: str) -> Subscription:
        if self.notifier is None:
            raise TypeError("only notification feeds publish unseen and unread counts")
        return self.notifier.subscribe(key, lambda: self.marker_counts(key))

    # -- removal -----------------------------------------------------------------------
    async def delete_many(self, keys: Sequence[str]) -> None:
        await self._delete(keys, publish=True)

    async def flush(self, key_format: KeyFormat) -> None:
        client, _ = self._client()
        keys = await registry.partitions(client, self.table, key_format.prefix)
        await self._delete([k for k in keys if key_format.owns(k)], publish=False)
        await registry.forget(client, self.table, key_format.prefix, key_format.owns)

    async def _delete(self, keys: Sequence[str], publish: bool) -> None:
        """Delete rows conditionally, so the delete is ordered with the conditional commits."""
        client, table = self._client()
        delete = f"DELETE FROM {table} WHERE feed_key = ? IF EXISTS"

        async def delete_one(key: str) -> None:
            async with _lock(key):
                result = await client.execute(delete, [key])
            if publish and result.first()["[applied]"] and self.notifier is not None:
                await self.notifier.publish(key, _EMPTY.counts())

        await asyncio.gather(*(delete_one(key) for key in dict.fromkeys(keys)))
