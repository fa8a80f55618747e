"""Pulled authors on Redis: one set per user-feed class, under its own hash tag."""

from __future__ import annotations

from collections.abc import Sequence

from .connection import RedisServer, get_server
from .keys import pulled_key


class RedisPulledStorage:
    """``SADD`` to record an author, ``SMISMEMBER`` to ask about many in one command."""

    def __init__(self, server: RedisServer | str) -> None:
        self.server = get_server(server) if isinstance(server, str) else server

    def __repr__(self) -> str:
        return f"<RedisPulledStorage on {self.server!r}>"

    async def add(self, scope: str, author: str) -> None:
        await self.server.call("SADD", pulled_key(scope), author)

    async def contains_many(self, scope: str, authors: Sequence[str]) -> list[bool]:
        if not authors:
            return []
        flags = await self.server.call("SMISMEMBER", pulled_key(scope), *authors)
        return [bool(flag) for flag in flags]

    async def flush(self, scope: str) -> None:
        await self.server.delete([pulled_key(scope)])
