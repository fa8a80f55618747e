"""Scripts first used concurrently on a Redis that does not know them yet (a fresh or
restarted server): every caller gets its reply, none an error from the loader."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_servers import RedisProcess

import asyncfeeds
from asyncfeeds.storage.redis import scripts
from asyncfeeds.storage.redis.connection import get_server

NAME = "script_loading"


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    asyncfeeds.configure(redis={NAME: server.url})
    try:
        yield server
    finally:
        server.stop()


async def test_scripts_registered_while_others_load(fresh_redis: RedisProcess) -> None:
    server = get_server(NAME)
    luas = [v for v in vars(scripts).values() if isinstance(v, scripts.Lua)]
    assert len(luas) > 3

    async def register_the_others() -> None:
        for lua in luas[1:]:
            server.script(lua)
            await asyncio.sleep(0)

    # the first script is unknown to the server: its caller loads it while the
    # other task registers more scripts on the same client
    command = server.evalsha(luas[0], ["k"], [])
    results = await asyncio.gather(server.run([command]), register_the_others(),
                                   return_exceptions=True)
    assert not any(isinstance(r, Exception) for r in results), results
    await asyncfeeds.aclose()
