"""Flat timelines: one sorted set of activity ids per feed, every score 0.

With equal scores Redis orders members lexicographically, and activity ids are
fixed-width strings that sort by time, so ZRANGEBYLEX gives exact id filters
and both orderings without the precision loss of timestamps stored as doubles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...keys import KeyFormat
from ..base import TOMBSTONE_LIMIT, Bounds, Entry, expiry_cutoff, within_ttl
from .activities import RedisActivityStorage
from .connection import Command
from .keys import (
    TIMELINE_SUFFIXES,
    feed_key_of,
    feed_key_pattern,
    timeline_key,
    timeline_keys,
)
from .scripts import (
    ADD_TO_TIMELINES,
    DELETE_TIMELINE,
    READ_PAGE,
    REMOVE_FROM_TIMELINES,
    TRIM_TIMELINE,
)


def _lex_range(bounds: Bounds) -> tuple[str, str]:
    """``(min, max)`` ZRANGEBYLEX arguments of the tightest bounds."""
    low = "-"
    if bounds.gt is not None and (bounds.gte is None or bounds.gt >= bounds.gte):
        low = "(" + bounds.gt
    elif bounds.gte is not None:
        low = "[" + bounds.gte
    high = "+"
    if bounds.lt is not None and (bounds.lte is None or bounds.lt <= bounds.lte):
        high = "(" + bounds.lt
    elif bounds.lte is not None:
        high = "[" + bounds.lte
    return low, high


class RedisTimelineStorage:
    """Timelines of ids in sorted sets, bound to the activity storage holding their data.

    On a single server every script that adds or drops an id also moves that
    activity's count of holders, and the data goes with the last one; with a TTL,
    ids older than it are never returned and are dropped by the next write.
    """

    def __init__(self, activities: RedisActivityStorage) -> None:
        self.activities = activities
        self.server = activities.server

    def __repr__(self) -> str:
        return f"<RedisTimelineStorage of {self.activities!r}>"

    def _refs(self) -> list[object]:
        return [*self.activities.script_args(), int(self.activities.counts_references)]

    def _cutoff(self) -> str:
        """The oldest id the TTL keeps (``""``: no TTL)."""
        return expiry_cutoff(self.activities.ttl) or ""

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        version: int,
        *,
        count: bool = True,
    ) -> dict[str, int]:
        """Add ids to many timelines and trim them, in one round trip with any activity data.

        Feeds sharing the same ids go to one script call on a single server, named
        in one argument (a fanout chunk of 100 feeds is one short command); on a
        cluster, one call per feed with its keys.
        """
        items: dict[str, bytes] = {}
        ids_of: dict[str, list[str]] = {}
        last: Sequence[Entry] | None = None
        ids: list[str] = []
        for feed_key, rows in entries.items():
            if rows is not last:  # a fanout gives every feed the same rows
                last, ids = rows, [i for i, _ in rows]
                items.update((i, data) for i, data in rows if data)
            ids_of[feed_key] = ids
        commands: list[Command] = self.activities.add_commands(items) if items else []
        trim = -1 if max_length is None else max_length
        by_ids = self._by_ids(ids_of)
        first = len(commands)
        args = [trim, version, self._cutoff(), *self._refs()]
        single = not self.server.is_cluster
        for unique, feed_keys in by_ids:
            if single:
                joined = "}".join(feed_keys)
                if joined.count("}") != len(feed_keys) - 1:
                    raise ValueError(f"a feed key holds a brace: {feed_keys!r}")
                commands.append(
                    self.server.evalsha(ADD_TO_TIMELINES, [], [*args, joined, *unique])
                )
            else:
                keys = [key for feed_key in feed_keys for key in timeline_keys(feed_key)]
                commands.append(self.server.evalsha(ADD_TO_TIMELINES, keys, [*args, "", *unique]))
        return self._counts(entries, by_ids, (await self.server.run(commands))[first:])

    async def remove_many(
        self, entries: Mapping[str, Sequence[str]], version: int, *, count: bool = True
    ) -> dict[str, int]:
        """Remove ids from many timelines, remembering the removals, in one round trip."""
        by_ids = self._by_ids(entries)
        args = [version, TOMBSTONE_LIMIT, *self._refs()]
        commands = [
            self.server.evalsha(
                REMOVE_FROM_TIMELINES,
                [key for feed_key in feed_keys for key in timeline_keys(feed_key)],
                [*args, *ids],
            )
            for ids, feed_keys in by_ids
        ]
        return self._counts(entries, by_ids, await self.server.run(commands))

    def _by_ids(
        self, entries: Mapping[str, Sequence[str]]
    ) -> list[tuple[tuple[str, ...], list[str]]]:
        """Feeds grouped by the ids they take; one feed per group on a cluster."""
        groups: dict[tuple[str, ...], list[str]] = {}
        single = not self.server.is_cluster
        result: list[tuple[tuple[str, ...], list[str]]] = []
        last: Sequence[str] | None = None
        unique: tuple[str, ...] = ()
        group: list[str] = []
        for feed_key, ids in entries.items():
            if ids is not last:  # a fanout gives every feed the same ids
                last, unique = ids, tuple(dict.fromkeys(ids))
                group = groups.setdefault(unique, []) if single else group
            if not unique:
                continue
            if single:
                group.append(feed_key)
            else:
                result.append((unique, [feed_key]))
        return result + [(ids, keys) for ids, keys in groups.items() if keys]

    @staticmethod
    def _counts(
        entries: Mapping[str, Any],
        by_ids: list[tuple[tuple[str, ...], list[str]]],
        replies: Sequence[Any],
    ) -> dict[str, int]:
        counts = dict.fromkeys(entries, 0)
        for (_, feed_keys), reply in zip(by_ids, replies, strict=True):
            counts.update(zip(feed_keys, (int(c) for c in reply), strict=True))
        return counts

    async def get_slice(
        self,
        key: str,
        start: int,
        stop: int | None,
        bounds: Bounds,
        newest_first: bool,
    ) -> list[tuple[str, bytes | None]]:
        """Ids at positions ``start:stop`` within ``bounds``, in one command.

        On a single server one script call returns the ids with their data, so a
        page is one round trip.
        """
        if stop is not None and stop <= start:
            return []
        bounds = within_ttl(bounds, self._cutoff())
        args: tuple[Any, ...]
        if bounds.unbounded:
            last = -1 if stop is None else stop - 1
            args = ("ZREVRANGE" if newest_first else "ZRANGE", start, last)
        else:
            low, high = _lex_range(bounds)
            count = -1 if stop is None else stop - start
            if newest_first:
                args = ("ZREVRANGEBYLEX", high, low, "LIMIT", start, count)
            else:
                args = ("ZRANGEBYLEX", low, high, "LIMIT", start, count)
        if not self.server.is_cluster:
            tag, shards, _ = self.activities.script_args()
            script = self.server.evalsha(READ_PAGE, [timeline_key(key)], [tag, shards, *args])
            (page,) = await self.server.run([script])
            return [(page[i].decode(), page[i + 1]) for i in range(0, len(page), 2)]
        ids = await self.server.call(args[0], timeline_key(key), *args[1:])
        return [(activity_id.decode(), None) for activity_id in ids]

    async def get_slices(
        self,
        keys: Sequence[str],
        limit: int,
        bounds: Bounds,
        with_data: bool = True,
    ) -> list[list[tuple[str, bytes | None]]]:
        """The newest ``limit`` ids of each timeline: one pipeline, so one round trip on a
        single server (one per node touched on a cluster); on a single server, with
        ``with_data``, each timeline's ids come with their data."""
        bounds = within_ttl(bounds, self._cutoff())
        if bounds.unbounded:
            args: tuple[Any, ...] = ("ZREVRANGE", 0, limit - 1)
        else:
            low, high = _lex_range(bounds)
            args = ("ZREVRANGEBYLEX", high, low, "LIMIT", 0, limit)
        if with_data and not self.server.is_cluster:
            tag, shards, _ = self.activities.script_args()
            pages = await self.server.run([
                self.server.evalsha(READ_PAGE, [timeline_key(key)], [tag, shards, *args])
                for key in keys
            ])
            return [
                [(page[i].decode(), page[i + 1]) for i in range(0, len(page), 2)]
                for page in pages
            ]
        replies = await self.server.run(
            [(args[0], timeline_key(key), *args[1:]) for key in keys]
        )
        return [[(activity_id.decode(), None) for activity_id in ids] for ids in replies]

    async def count(self, key: str) -> int:
        """How many ids the timeline holds (within the TTL)."""
        cutoff = self._cutoff()
        if cutoff:
            return int(await self.server.call("ZLEXCOUNT", timeline_key(key), f"[{cutoff}", "+"))
        return int(await self.server.call("ZCARD", timeline_key(key)))

    async def contains_many(self, key: str, activity_ids: Sequence[str]) -> list[bool]:
        """Membership of each id, in one round trip."""
        if not activity_ids:
            return []
        redis_key = timeline_key(key)
        cutoff = self._cutoff()
        scores = await self.server.run([("ZSCORE", redis_key, i) for i in activity_ids])
        return [s is not None and i >= cutoff for i, s in zip(activity_ids, scores, strict=True)]

    async def index_of(self, key: str, activity_id: str) -> int | None:
        """ZREVRANK: 0 is the newest id (expired ids are the oldest, so ranks stay right)."""
        if activity_id < self._cutoff():
            return None
        rank = await self.server.call("ZREVRANK", timeline_key(key), activity_id)
        return None if rank is None else int(rank)

    async def trim(self, key: str, length: int) -> None:
        """Keep the newest ``length`` ids (and their versions)."""
        await self.server.run(
            [
                self.server.evalsha(
                    TRIM_TIMELINE, timeline_keys(key)[:2], [length, self._cutoff(), *self._refs()]
                )
            ]
        )

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove whole timelines, letting go of every id they held."""
        refs = self._refs()
        commands = [self.server.evalsha(DELETE_TIMELINE, timeline_keys(k), refs) for k in keys]
        for start in range(0, len(commands), 500):
            await self.server.run(commands[start : start + 500])

    async def flush(self, key_format: KeyFormat) -> None:
        """Remove every timeline whose feed key has the shape of ``key_format``."""
        found = await self.server.scan(feed_key_pattern(key_format.prefix))
        await self.server.delete(
            [
                k
                for k in found
                if (feed_key := feed_key_of(k, TIMELINE_SUFFIXES)) and key_format.owns(feed_key)
            ]
        )
