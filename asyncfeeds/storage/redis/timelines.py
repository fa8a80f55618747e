"""Flat timelines: one sorted set of activity ids per feed, every score 0.

With equal scores Redis orders members lexicographically, and activity ids are
fixed-width strings that sort by time, so ZRANGEBYLEX gives exact id filters
and both orderings without the precision loss of timestamps stored as doubles.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ..base import ActivityStorage, Bounds, Entry
from .activities import RedisActivityStorage
from .connection import Command, RedisServer, get_server
from .keys import feed_key_pattern, timeline_key
from .scripts import ADD_TO_TIMELINES, READ_PAGE


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


def _trim_command(key: str, length: int) -> Command:
    return ("ZREMRANGEBYRANK", key, 0, -(length + 1))


class RedisTimelineStorage:
    """Timelines of ids in sorted sets; the data lives in a ``RedisActivityStorage``."""

    stores_payload = False

    def __init__(self, server: RedisServer | str) -> None:
        self.server = get_server(server) if isinstance(server, str) else server

    def __repr__(self) -> str:
        return f"<RedisTimelineStorage on {self.server!r}>"

    async def add_many(
        self,
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
        activity_storage: ActivityStorage | None = None,
    ) -> dict[str, int]:
        """Add ids to many timelines and trim them, in one pipeline with the activity data."""
        commands: list[Command] = []
        if activity_storage is not None:
            items = {i: data for rows in entries.values() for i, data in rows}
            if (
                isinstance(activity_storage, RedisActivityStorage)
                and activity_storage.server is self.server
            ):
                commands.extend(activity_storage.add_commands(items))
            elif items:
                await activity_storage.add_many(items)
        if not self.server.is_cluster:
            return await self._add_by_script(commands, entries, max_length)
        first = len(commands)
        layout: list[tuple[str, bool]] = []
        for feed_key, rows in entries.items():
            key = timeline_key(feed_key)
            members = [part for activity_id, _ in rows for part in (0, activity_id)]
            if members:
                commands.append(("ZADD", key, *members))
            if max_length is not None:
                commands.append(_trim_command(key, max_length))
            layout.append((feed_key, bool(members)))
        replies = iter((await self.server.run(commands))[first:])
        added: dict[str, int] = {}
        for feed_key, has_members in layout:
            added[feed_key] = int(next(replies)) if has_members else 0
            if max_length is not None:
                next(replies)
        return added

    async def _add_by_script(
        self,
        commands: list[Command],
        entries: Mapping[str, Sequence[Entry]],
        max_length: int | None,
    ) -> dict[str, int]:
        """On a single server: one script call per group of timelines sharing the same ids.

        A fanout chunk (100 feeds, same activity) becomes one command instead of
        two per feed, which is most of the client-side cost of a fanout.
        """
        by_ids: dict[tuple[str, ...], list[str]] = {}
        for feed_key, rows in entries.items():
            by_ids.setdefault(tuple(dict.fromkeys(i for i, _ in rows)), []).append(feed_key)
        first = len(commands)
        trim = -1 if max_length is None else max_length
        for ids, feed_keys in by_ids.items():
            keys = [timeline_key(k) for k in feed_keys]
            commands.append(self.server.evalsha(ADD_TO_TIMELINES, keys, [trim, *ids]))
        replies = (await self.server.run(commands))[first:]
        added: dict[str, int] = {}
        for feed_keys, counts in zip(by_ids.values(), replies, strict=True):
            added.update(zip(feed_keys, (int(c) for c in counts), strict=True))
        return added

    async def remove_many(self, entries: Mapping[str, Sequence[str]]) -> dict[str, int]:
        """Remove ids from many timelines in one pipeline."""
        keys = [feed_key for feed_key, ids in entries.items() if ids]
        replies = await self.server.run(
            [("ZREM", timeline_key(k), *dict.fromkeys(entries[k])) for k in keys]
        )
        removed = dict.fromkeys(entries, 0)
        removed.update(zip(keys, (int(r) for r in replies), strict=True))
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
        """Ids at positions ``start:stop`` within ``bounds``, in one command.

        On a single server with a Redis ``activity_storage`` one script call
        returns the ids with their data, so a page is one round trip.
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
        if (
            isinstance(activity_storage, RedisActivityStorage)
            and activity_storage.server is self.server
            and not self.server.is_cluster
        ):
            before, after = activity_storage.shard_key_parts()
            script = self.server.evalsha(READ_PAGE, [timeline_key(key)], [before, after, *args])
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
        """Keep the newest ``length`` ids."""
        await self.server.call(*_trim_command(timeline_key(key), length))

    async def delete_many(self, keys: Sequence[str]) -> None:
        """Remove whole timelines."""
        await self.server.delete([timeline_key(k) for k in keys])

    async def flush(self, key_prefix: str) -> None:
        """Remove every timeline whose feed key starts with ``key_prefix``."""
        found = await self.server.scan(feed_key_pattern(key_prefix))
        await self.server.delete([k for k in found if k.endswith("}:tl")])
