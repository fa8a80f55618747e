"""Pulled authors on Redis: one set per user-feed class, under its own hash tag."""

from __future__ import annotations

from collections.abc import Sequence

from .connection import RedisServer, get_server
from .keys import pulled_key
from .scripts import Lua

PULLED_AMONG = Lua(
    "pulled_among",
    """
-- KEYS: the set of pulled authors. ARGV[1]: authors joined by ',' (encoded user ids
-- never hold one). Returns the 1-based positions of the authors in the set.
local found = {}
local position = 0
for author in string.gmatch(ARGV[1], '[^,]+') do
  position = position + 1
  if redis.call('SISMEMBER', KEYS[1], author) == 1 then
    found[#found + 1] = position
  end
end
return found
""",
)


class RedisPulledStorage:
    """``SADD`` records an author; one script call asks about many authors at once.

    The authors travel as one joined argument: a reader following thousands costs
    one short command to pack, not thousands of arguments.
    """

    def __init__(self, server: RedisServer | str) -> None:
        self.server = get_server(server) if isinstance(server, str) else server

    def __repr__(self) -> str:
        return f"<RedisPulledStorage on {self.server!r}>"

    async def add(self, scope: str, author: str) -> None:
        await self.server.call("SADD", pulled_key(scope), author)

    async def contains_many(self, scope: str, authors: Sequence[str]) -> list[bool]:
        if not authors:
            return []
        script = self.server.evalsha(PULLED_AMONG, [pulled_key(scope)], [",".join(authors)])
        (positions,) = await self.server.run([script])
        flags = [False] * len(authors)
        for position in positions:
            flags[int(position) - 1] = True
        return flags

    async def flush(self, scope: str) -> None:
        await self.server.delete([pulled_key(scope)])
