"""Activity storage: serialised activities in hashes sharded by a hash of the id."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Mapping, Sequence

from .connection import Command, RedisServer, get_server
from .keys import ACTIVITY_SHARDS, activity_key, activity_shard
from .scripts import GET_ACTIVITIES


class RedisActivityStorage:
    """Activities by id under one key prefix, spread over ``ACTIVITY_SHARDS`` hashes."""

    def __init__(self, server: RedisServer | str, prefix: str) -> None:
        self.server = get_server(server) if isinstance(server, str) else server
        self.prefix = prefix

    def __repr__(self) -> str:
        return f"<RedisActivityStorage {self.prefix!r} on {self.server!r}>"

    def shard_key_parts(self) -> tuple[str, str]:
        """The hash name of a shard split around its number, for Lua to rebuild it."""
        marker = "\x00"
        before, after = activity_key(self.prefix, marker).split(marker)  # type: ignore[arg-type]
        return before, after

    def _by_shard(self, activity_ids: Sequence[str]) -> dict[str, list[str]]:
        shards: dict[str, list[str]] = defaultdict(list)
        for activity_id in dict.fromkeys(activity_ids):
            shards[activity_key(self.prefix, activity_shard(activity_id))].append(activity_id)
        return shards

    def add_commands(self, items: Mapping[str, bytes]) -> list[Command]:
        """The HSETs storing ``items``, to send with other commands in one pipeline."""
        commands: list[Command] = []
        for key, ids in self._by_shard(list(items)).items():
            fields = [part for activity_id in ids for part in (activity_id, items[activity_id])]
            commands.append(("HSET", key, *fields))
        return commands

    async def add_many(self, items: Mapping[str, bytes]) -> None:
        """Store (or replace) activities in one round trip."""
        await self.server.run(self.add_commands(items))

    async def get_many(self, activity_ids: Sequence[str]) -> list[bytes | None]:
        """Load activities in one round trip.

        A single server answers one script call for all ids; a cluster, which
        forbids scripts across slots, one HMGET per shard touched.
        """
        if not activity_ids:
            return []
        if not self.server.is_cluster:
            keys = [activity_key(self.prefix, activity_shard(i)) for i in activity_ids]
            (values,) = await self.server.run(
                [self.server.evalsha(GET_ACTIVITIES, keys, activity_ids)]
            )
            return list(values)
        shards = self._by_shard(activity_ids)
        replies = await self.server.run([("HMGET", key, *ids) for key, ids in shards.items()])
        found: dict[str, bytes | None] = {}
        for ids, values in zip(shards.values(), replies, strict=True):
            found.update(zip(ids, values, strict=True))
        return [found[activity_id] for activity_id in activity_ids]

    async def remove_many(self, activity_ids: Sequence[str]) -> None:
        """Forget activities in one round trip."""
        shards = self._by_shard(activity_ids)
        await self.server.run([("HDEL", key, *ids) for key, ids in shards.items()])

    async def flush(self) -> None:
        """Drop every shard of this prefix."""
        await self.server.delete([activity_key(self.prefix, s) for s in range(ACTIVITY_SHARDS)])
