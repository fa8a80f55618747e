"""Flat timelines: one sorted set of activity ids per feed, every score 0.

With equal scores Redis orders members lexicographically, and activity ids are
fixed-width strings that sort by time, so ZRANGEBYLEX gives exact id filters
and both orderings without the precision loss of timestamps stored as doubles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ...keys import KeyFormat
from ..base import TOMBSTONE_LIMIT, Bounds, Entry
from .activities import RedisActivityStorage
from .connection import Command
from .keys import (
    ACTIVITY_SHARDS,
    TIMELINE_SUFFIXES,
    feed_key_of,
    feed_key_pattern,
    timeline_key,
    timeline_keys,
)
from .scripts import ADD_TO_TIMELINES, READ_PAGE, REMOVE_FROM_TIMELINES, TRIM_TIMELINE


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
    """Timelines of ids in sorted sets on the server of ``activities``, which holds the data."""

    def __init__(self, activities: RedisActivityStorage) -> None:
        self.activities = activities
        self.server = activities.server

    def __repr__(self) -> str:
        return f"<RedisTimelineStorage on {self.server!r}>"

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        version: int,
        *,
        store_activities: bool = False,
    ) -> dict[str, int]:
        """Add ids to many timelines and trim them, in one round trip with the activity data.

        Feeds sharing the same ids go to one script call on a single server (a
        fanout chunk of 100 feeds is one command); on a cluster, one call per feed.
        """
        commands: list[Command] = []
        if store_activities:
            items = {i: data for rows in entries.values() for i, data in rows}
            commands.extend(self.activities.add_commands(items))
        trim = -1 if max_length is None else max_length
        by_ids = self._by_ids({k: [i for i, _ in rows] for k, rows in entries.items()})
        first = len(commands)
        for ids, feed_keys in by_ids:
            keys = [key for feed_key in feed_keys for key in timeline_keys(feed_key)]
            commands.append(self.server.evalsha(ADD_TO_TIMELINES, keys, [trim, version, *ids]))
        return self._counts(entries, by_ids, (await self.server.run(commands))[first:])

    async def remove_many(
        self, entries: Mapping[str, Sequence[str]], version: int
    ) -> dict[str, int]:
        """Remove ids from many timelines, remembering the removals, in one round trip."""
        by_ids = self._by_ids(entries)
        commands = [
            self.server.evalsha(
                REMOVE_FROM_TIMELINES,
                [key for feed_key in feed_keys for key in timeline_keys(feed_key)],
                [version, TOMBSTONE_LIMIT, *ids],
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
        for feed_key, ids in entries.items():
            unique = tuple(dict.fromkeys(ids))
            if not unique:
                continue
            if single:
                groups.setdefault(unique, []).append(feed_key)
            else:
                result.append((unique, [feed_key]))
        return result + list(groups.items())

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

        On a single server one script call returns the ids with their data from
        the bound activity storage, so a page is one round trip.
        """
        if stop is not None and stop <= start:
            return []
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
            before, after = self.activities.shard_key_parts()
            script = self.server.evalsha(
                READ_PAGE, [timeline_key(key)], [before, after, ACTIVITY_SHARDS, *args]
            )
            (page,) = await self.server.run([script])
            return [(page[i].decode(), page[i + 1]) for i in range(0, len(page), 2)]
        ids = await self.server.call(args[0], timeline_key(key), *args[1:])
        return [(activity_id.decode(), None) for activity_id in ids]

    async def count(self, key: str) -> int:
        """ZCARD of the timeline."""
        return int(await self.server.call("ZCARD", timeline_key(key)))

    async def contains_many(self, key: str, activity_ids: Sequence[str]) -> list[bool]:
        """Membership of each id, in one round trip."""
        if not activity_ids:
            return []
        redis_key = timeline_key(key)
        scores = await self.server.run([("ZSCORE", redis_key, i) for i in activity_ids])
        return [score is not None for score in scores]

    async def index_of(self, key: str, activity_id: str) -> int | None:
        """ZREVRANK: 0 is the newest id."""
        rank = await self.server.call("ZREVRANK", timeline_key(key), activity_id)
        return None if rank is None else int(rank)

    async def trim(self, key: str, length: int) -> None:
        """Keep the newest ``length`` ids (and their versions)."""
        await self.server.run(
            [self.server.evalsha(TRIM_TIMELINE, timeline_keys(key)[:2], [length])]
        )

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove whole timelines."""
        await self.server.delete([k for key in keys for k in timeline_keys(key)])

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
