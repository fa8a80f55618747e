"""Aggregated and notification feeds: groups in a hash, ordered by a sorted set.

Reads and writes of one feed run as Lua scripts on that feed's keys, so an
optimistic commit (compare the version, upsert, remove, trim, update the
unseen/unread markers, bump the version, publish the counts) is one atomic
step, and a whole fanout chunk of feeds is one pipeline.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...keys import KeyFormat
from ...types import Subscription
from ..base import (
    TOMBSTONE_LIMIT,
    Counts,
    GroupQuery,
    GroupSnapshot,
    GroupWrite,
    IndexEntry,
    MergeAdd,
    base36,
    oldest_score,
)
from .connection import Command, RedisServer, get_server
from .keys import GROUP_SUFFIXES, counts_channel, feed_key_of, feed_key_pattern, group_keys
from .pubsub import CountsSubscription
from .scripts import (
    ADD_TO_GROUPS,
    COMMIT_GROUPS,
    DELETE_GROUPS,
    MARK,
    MARKER_COUNTS,
    READ_GROUP_PAGE,
    READ_GROUPS,
)

DELETED_VERSION_TTL = 3600
"""Seconds a deleted feed's version outlives it, far beyond any writer's read-to-commit gap."""

SCORES, GROUPS, VERSION, UNSEEN, UNREAD, INDEX, REMOVED = range(7)


def _snapshot(reply: Sequence[Any], activity_ids: Sequence[str]) -> GroupSnapshot:
    """Split a ``READ_GROUPS`` reply into the version, ``(id, data)`` pairs and entries."""
    version = reply[0].decode() if isinstance(reply[0], bytes) else str(reply[0])
    count = int(reply[1])
    groups = [(reply[i].decode(), reply[i + 1]) for i in range(2, 2 + 2 * count, 2)]
    entries = reply[2 + 2 * count :]
    index = {
        activity_id: IndexEntry.decode(entry)
        for activity_id, entry in zip(activity_ids, entries, strict=True)
        if entry is not None
    }
    return GroupSnapshot(version, groups, index)


def _read_args(first: int, count: int | None, query: GroupQuery, oldest: str) -> list[Any]:
    group_keys = sorted(query.group_keys or ())
    return [
        first,
        -1 if count is None else count,
        oldest,
        len(group_keys),
        *group_keys,
        len(query.activity_ids),
        *query.activity_ids,
        int(query.holding),
    ]


def _commit_args(write: GroupWrite, markers: bool, channel: str, oldest: str) -> list[Any]:
    args: list[Any] = [
        write.version,
        -1 if write.max_length is None else write.max_length,
        1 if markers else 0,
        channel,
        TOMBSTONE_LIMIT,
        oldest,
        len(write.removals),
        *write.removals,
        len(write.upserts),
    ]
    for aggregated_id, score, data in write.upserts:
        args.extend((aggregated_id, int(score), data))
    args.append(len(write.unseen))
    args.extend(write.unseen)
    args.append(len(write.index))
    for activity_id, entry in write.index.items():
        args.extend((activity_id, entry.encode()))
    return args


class RedisGroupStorage:
    """Groups of many aggregated feeds; markers and pub/sub for notification feeds."""

    def __init__(self, server: RedisServer | str, ttl: int | None = None) -> None:
        self.server = get_server(server) if isinstance(server, str) else server
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"<RedisGroupStorage on {self.server!r}>"

    def _oldest(self) -> str:
        """The oldest group score the TTL keeps, as a Redis score bound."""
        oldest = oldest_score(self.ttl)
        return "-inf" if oldest is None else str(oldest)

    def _read(self, key: str, first: int, count: int | None, query: GroupQuery) -> Command:
        keys = group_keys(key)
        read_keys = [keys[SCORES], keys[GROUPS], keys[VERSION], keys[INDEX]]
        args = _read_args(first, count, query, self._oldest())
        return self.server.evalsha(READ_GROUPS, read_keys, args)

    async def read_many(self, keys: Sequence[str], query: GroupQuery) -> list[GroupSnapshot]:
        """What ``query`` asks of each feed with its version, in one round trip."""
        replies = await self.server.run([self._read(key, 0, query.limit, query) for key in keys])
        return [_snapshot(reply, query.activity_ids) for reply in replies]

    async def commit_many(self, writes: Sequence[GroupWrite], markers: bool) -> list[bool]:
        """Compare-and-set each feed's write, all feeds in one round trip."""
        commands = [
            self.server.evalsha(
                COMMIT_GROUPS,
                group_keys(w.key),
                _commit_args(w, markers, counts_channel(w.key), self._oldest()),
            )
            for w in writes
        ]
        return [bool(int(reply)) for reply in await self.server.run(commands)]

    async def merge_add(
        self, keys: Sequence[str], add: MergeAdd, markers: bool, with_data: bool
    ) -> list[list[bytes] | int | None]:
        """Merge the activities into each feed's groups in one script call per feed,
        all feeds in one round trip (see ``MergingGroupStorage``)."""
        settings = " ".join(
            str(value)
            for value in (
                add.version,
                -1 if add.max_length is None else add.max_length,
                1 if markers else 0,
                TOMBSTONE_LIMIT,
                self._oldest(),
                -1 if add.window is None else add.window,
                add.kept,
                1 if with_data else 0,
                base36(add.version),
            )
        )
        tail: list[Any] = []
        for item in add.items:
            tail.extend(item)
        commands = [
            self.server.evalsha(
                ADD_TO_GROUPS, group_keys(key), [settings, counts_channel(key), *tail]
            )
            for key in keys
        ]
        results: list[list[bytes] | int | None] = []
        for reply in await self.server.run(commands):
            count = int(reply[0])
            if count < 0:
                results.append(None)
            elif with_data:
                results.append(list(reply[1:]))
            else:
                results.append(count)
        return results

    async def index_entries(self, key: str) -> dict[str, IndexEntry]:
        """The whole index of one feed, in one round trip."""
        raw = await self.server.call("HGETALL", group_keys(key)[INDEX])
        return {k.decode(): IndexEntry.decode(v) for k, v in raw.items()}

    async def get_slice(self, key: str, start: int, stop: int | None) -> list[tuple[str, bytes]]:
        """Groups at positions ``start:stop``, highest score first, in one round trip."""
        if stop is not None and stop <= start:
            return []
        count = None if stop is None else stop - start
        (reply,) = await self.server.run([self._read(key, start, count, GroupQuery())])
        return _snapshot(reply, ()).groups

    async def get_page(
        self, key: str, before: tuple[int, str] | None, limit: int
    ) -> list[tuple[str, bytes]]:
        """Groups strictly after ``before`` in (score, id) order, in one round trip."""
        keys = group_keys(key)
        args = ["+inf", ""] if before is None else [before[0], before[1]]
        (reply,) = await self.server.run(
            [self.server.evalsha(READ_GROUP_PAGE, keys[:2], [*args, limit, self._oldest()])]
        )
        return [(reply[i].decode(), reply[i + 1]) for i in range(0, len(reply), 2)]

    async def count(self, key: str) -> int:
        """How many groups the feed holds."""
        scores = group_keys(key)[SCORES]
        return int(await self.server.call("ZCOUNT", scores, self._oldest(), "+inf"))

    async def marker_state(self, key: str, ids: Sequence[str]) -> list[tuple[bool, bool]]:
        """``(is_seen, is_read)`` of each group, in one round trip."""
        if not ids:
            return []
        keys = group_keys(key)
        unseen, unread = await self.server.run(
            [("SMISMEMBER", keys[UNSEEN], *ids), ("SMISMEMBER", keys[UNREAD], *ids)]
        )
        return [(not a, not b) for a, b in zip(unseen, unread, strict=True)]

    async def marker_counts(self, key: str) -> Counts:
        """How many groups are unseen and unread, in one round trip."""
        keys = group_keys(key)
        if self.ttl is None:
            unseen, unread = await self.server.run(
                [("SCARD", keys[UNSEEN]), ("SCARD", keys[UNREAD])]
            )
        else:
            (reply,) = await self.server.run(
                [
                    self.server.evalsha(
                        MARKER_COUNTS, [keys[SCORES], keys[UNSEEN], keys[UNREAD]], [self._oldest()]
                    )
                ]
            )
            unseen, unread = reply
        return {"unseen_count": int(unseen), "unread_count": int(unread)}

    async def mark(self, key: str, ids: Sequence[str] | None, seen: bool, read: bool) -> Counts:
        """Mark groups (all if ``ids`` is None) atomically; publishes the counts if they changed."""
        keys = group_keys(key)
        args = [int(seen), int(read), int(ids is None), counts_channel(key), *(ids or ())]
        (reply,) = await self.server.run(
            [self.server.evalsha(MARK, [keys[UNSEEN], keys[UNREAD], keys[VERSION]], args)]
        )
        return {"unseen_count": int(reply[0]), "unread_count": int(reply[1])}

    def subscribe(self, key: str) -> Subscription:
        """The counts, then those published after each change; cleans up when dropped."""
        keys = group_keys(key)
        return CountsSubscription(self.server, counts_channel(key), keys[UNSEEN], keys[UNREAD])

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove whole feeds with their markers, publishing zero counts, in one round trip."""
        await self.server.run(
            [
                self.server.evalsha(
                    DELETE_GROUPS, group_keys(key), (counts_channel(key), DELETED_VERSION_TTL)
                )
                for key in keys
            ]
        )

    async def flush(self, key_format: KeyFormat) -> None:
        """Remove every feed whose key has the shape of ``key_format``, versions included."""
        found = await self.server.scan(feed_key_pattern(key_format.prefix))
        await self.server.delete(
            [
                k
                for k in found
                if (feed_key := feed_key_of(k, GROUP_SUFFIXES)) and key_format.owns(feed_key)
            ]
        )
