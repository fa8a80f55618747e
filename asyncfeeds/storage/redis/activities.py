"""Activity storage: serialised activities in hashes by time bucket and shard.

An activity lives in the hash of its time bucket (the leading digits of its id)
and shard (a hash of it), each hash its own hash tag so a cluster spreads them.
With a TTL each hash expires when its newest possible activity does, so whole
buckets go at once. On a single server the timeline scripts also count, per
activity, the timelines holding it, and delete its data when the last one lets
go of it (trim, removal, delete).
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from collections.abc import Mapping, Sequence

from ..base import expiry_cutoff
from .connection import Command, RedisServer, get_server
from .keys import (
    ACTIVITY_SHARDS,
    activity_bucket,
    activity_key,
    activity_key_pattern,
    activity_tag,
    bucket_end,
    refcount_key,
)
from .scripts import GET_ACTIVITIES


class RedisActivityStorage:
    """Activities by id under one key prefix, kept ``ttl`` seconds after their time."""

    def __init__(self, server: RedisServer | str, prefix: str, ttl: int | None = None) -> None:
        self.server = get_server(server) if isinstance(server, str) else server
        self.prefix = prefix
        self.ttl = ttl

    def __repr__(self) -> str:
        return f"<RedisActivityStorage {self.prefix!r} on {self.server!r}>"

    @property
    def counts_references(self) -> bool:
        """Whether timelines count their references here (a single server: one script)."""
        return not self.server.is_cluster

    def script_args(self) -> list[object]:
        """What the timeline scripts need to find this storage's hashes and expiries."""
        return [activity_tag(self.prefix), ACTIVITY_SHARDS, -1 if self.ttl is None else self.ttl]

    def expires_at(self, activity_id: str) -> int | None:
        """Epoch seconds at which the hash of ``activity_id`` expires (``None``: never)."""
        end = bucket_end(activity_bucket(activity_id))
        return None if self.ttl is None or end is None else end + self.ttl

    def _by_key(self, activity_ids: Sequence[str]) -> dict[str, list[str]]:
        keys: dict[str, list[str]] = defaultdict(list)
        for activity_id in dict.fromkeys(activity_ids):
            keys[activity_key(self.prefix, activity_id)].append(activity_id)
        return keys

    def add_commands(self, items: Mapping[str, bytes]) -> list[Command]:
        """The HSETs (and expiries) storing ``items``, to send with other commands at once.

        An activity already older than the TTL is not stored at all.
        """
        now = time.time()
        cutoff = expiry_cutoff(self.ttl) or ""
        commands: list[Command] = []
        for key, ids in self._by_key([i for i in items if i >= cutoff]).items():
            expiry = self.expires_at(ids[0])
            if expiry is not None and expiry <= now:
                continue
            fields = [part for activity_id in ids for part in (activity_id, items[activity_id])]
            commands.append(("HSET", key, *fields))
            if expiry is not None:
                commands.append(("EXPIREAT", key, expiry))
        return commands

    async def add_many(self, items: Mapping[str, bytes]) -> None:
        """Store (or replace) activities in one round trip."""
        await self.server.run(self.add_commands(items))

    async def get_many(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        """Load activities in one round trip (``None`` for unknown or expired ones).

        A single server answers one script call for all ids; a cluster, which
        forbids scripts across slots, one HMGET per hash touched.
        """
        cutoff = expiry_cutoff(self.ttl)
        if cutoff is not None:
            live = [i for i in activity_ids if i >= cutoff]
            found = dict(zip(live, await self.get_many_unexpired(live), strict=True))
            return [found.get(i) for i in activity_ids]
        return await self.get_many_unexpired(activity_ids)

    async def get_many_unexpired(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        """``get_many`` without the TTL check."""
        if not activity_ids:
            return []
        if not self.server.is_cluster:
            keys = [activity_key(self.prefix, i) for i in activity_ids]
            (values,) = await self.server.run(
                [self.server.evalsha(GET_ACTIVITIES, keys, activity_ids)]
            )
            return list(values)
        by_key = self._by_key(activity_ids)
        replies = await self.server.run([("HMGET", key, *ids) for key, ids in by_key.items()])
        found: dict[str, bytes | None] = {}
        for ids, values in zip(by_key.values(), replies, strict=True):
            found.update(zip(ids, values, strict=True))
        return [found[activity_id] for activity_id in activity_ids]

    async def remove_many(self, activity_ids: Sequence[str]) -> None:
        """Forget activities (and their reference counts) in one round trip."""
        by_key = self._by_key(activity_ids)
        await self.server.run(
            [
                command
                for key, ids in by_key.items()
                for command in (("HDEL", key, *ids), ("HDEL", refcount_key(key), *ids))
            ]
        )

    async def keys(self) -> list[str]:
        """Every hash of this prefix (data and reference counts), from every node."""
        own = re.compile(re.escape(activity_tag(self.prefix)) + r"[^:{}]*:\d+\}:[ar]")
        found = await self.server.scan(activity_key_pattern(self.prefix))
        return [key for key in found if own.fullmatch(key)]

    async def count(self) -> int:
        """How many activities this prefix holds (for tests and the bench)."""
        data_keys = [key for key in await self.keys() if key.endswith(":a")]
        sizes = await self.server.run([("HLEN", key) for key in data_keys])
        return sum(int(size) for size in sizes)

    async def flush(self) -> None:
        """Drop every hash of this prefix."""
        await self.server.delete(await self.keys())
