"""Scripts on a Redis that does not know them: a fresh server learns every script with a
client's first commands; one whose scripts were flushed since is taught them again on use,
and every concurrent caller gets its reply, none an error from the loader."""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
from pathlib import Path

import pytest
from private_servers import RedisProcess

import asyncfeeds
from asyncfeeds.storage.redis.connection import get_server
from asyncfeeds.storage.redis.scripts import GET_ACTIVITIES, REGISTRY

NAME = "script_loading"


@pytest.fixture
def fresh_redis(tmp_path: Path) -> Iterator[RedisProcess]:
    server = RedisProcess(tmp_path / "redis")
    asyncfeeds.configure(redis={NAME: server.url})
    try:
        yield server
    finally:
        server.stop()


async def test_a_new_client_loads_every_script_with_its_first_commands(
    fresh_redis: RedisProcess,
) -> None:
    server = get_server(NAME)
    shas = list(REGISTRY)
    assert len(shas) > 3
    assert await server.run([("SCRIPT", "EXISTS", *shas)]) == [[1] * len(shas)]
    await server.call("SCRIPT", "FLUSH")
    await asyncfeeds.aclose()  # as after a restart: the next client loads them again
    assert await server.run([("SCRIPT", "EXISTS", *shas)]) == [[1] * len(shas)]
    await asyncfeeds.aclose()


async def test_scripts_flushed_since_are_loaded_on_use_by_concurrent_callers(
    fresh_redis: RedisProcess,
) -> None:
    server = get_server(NAME)
    await asyncio.gather(*(server.run([("PING",)]) for _ in range(20)))  # primed, connected
    await server.call("SCRIPT", "FLUSH")
    luas = list(REGISTRY.values())
    calls = [server.run([server.evalsha(GET_ACTIVITIES, ["k"], ["i"])]) for _ in range(5)]
    calls += [server.run([server.evalsha(lua, [], [])]) for lua in luas if lua != GET_ACTIVITIES]
    results = await asyncio.gather(*calls, return_exceptions=True)
    replies = results[:5]
    assert replies == [[[None]]] * 5
    # the other scripts run without arguments and may refuse them, but never as unknown
    assert not any("NOSCRIPT" in str(r) for r in results)
    await asyncfeeds.aclose()
