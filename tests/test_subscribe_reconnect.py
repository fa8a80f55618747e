"""A Redis subscription whose server goes away: back after a restart, an error if it stays down.

Every test starts its own redis-server on a free port (never the shared one),
kills it, and counts connections with CLIENT LIST, which only this test uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import socket
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from helpers import Like, make_activity
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError

import asyncfeeds
from asyncfeeds import RedisNotificationFeed, StorageUnavailableError
from asyncfeeds.storage.redis.pubsub import RECONNECT_SECONDS

pytestmark = pytest.mark.redis  # each test starts its own redis-server

WAIT = 10  # seconds before a missing item or connection fails the test instead of hanging


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


class PrivateRedis:
    """A throwaway redis-server without persistence, started and killed by one test."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.directory = directory
        self.process: asyncio.subprocess.Process | None = None
        self.client = Redis(port=self.port, socket_connect_timeout=1, socket_timeout=5)

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    async def start(self) -> None:
        self.process = await asyncio.create_subprocess_exec(
            shutil.which("redis-server") or "redis-server",
            "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
            "--appendonly", "no", "--dir", str(self.directory),
            stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.DEVNULL,
        )
        async with asyncio.timeout(WAIT):
            while True:
                with contextlib.suppress(OSError, RedisConnectionError):
                    if await self.client.ping():
                        return
                await asyncio.sleep(0.05)

    async def kill(self) -> None:
        if self.process is not None and self.process.returncode is None:
            self.process.kill()
            await self.process.wait()
        await self.client.connection_pool.disconnect()

    async def connections(self, subscribed: bool = False) -> int:
        """How many clients are connected (other than ours), or subscribed to anything."""
        clients = [c for c in await self.client.client_list() if c["name"] != "probe"]
        return sum(1 for c in clients if not subscribed or int(c["sub"]) > 0)

    async def wait_for_connections(self, expected: int, subscribed: bool = False) -> None:
        async with asyncio.timeout(WAIT):
            while await self.connections(subscribed) != expected:  # noqa: ASYNC110 (a server)
                await asyncio.sleep(0.02)


@pytest.fixture
async def private_redis(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    server = PrivateRedis(tmp_path)
    await server.start()
    await server.client.client_setname("probe")
    asyncfeeds.configure(redis={"private": server.url})
    try:
        yield server
    finally:
        await asyncfeeds.aclose()
        asyncfeeds.config.reset()
        await server.kill()
        await server.client.aclose()


class PrivateFeed(RedisNotificationFeed):
    redis_server = "private"
    key_format = "private:{user_id}"


def counts(n: int) -> dict[str, int]:
    return {"unseen_count": n, "unread_count": n}


def liked(n: int):
    return make_activity(n, actor=n, verb=Like, object=n)


async def next_item(updates) -> dict[str, int]:
    return await asyncio.wait_for(anext(updates), WAIT)


async def test_a_subscription_comes_back_after_its_redis_restarts(private_redis):
    feed = PrivateFeed(1)
    async with feed.subscribe() as updates:
        assert await next_item(updates) == counts(0)
        await feed.add(liked(1))
        assert await next_item(updates) == counts(1)

        await private_redis.kill()
        await private_redis.start()  # empty again: nothing was persisted
        await private_redis.client.client_setname("probe")
        await private_redis.wait_for_connections(1, subscribed=True)
        assert await next_item(updates) == counts(0)  # read again once back: the badge catches up
        await feed.add(liked(2))
        assert await next_item(updates) == counts(1)
    await private_redis.wait_for_connections(0, subscribed=True)


async def test_a_subscription_whose_redis_stays_down_raises_naming_it(private_redis):
    feed = PrivateFeed(1)
    async with feed.subscribe() as updates:
        assert await next_item(updates) == counts(0)
        await private_redis.kill()
        async with asyncio.timeout(RECONNECT_SECONDS + WAIT):
            with pytest.raises(StorageUnavailableError, match=f"127.0.0.1:{private_redis.port}"):
                while True:  # a consumer with a one-second heartbeat
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(anext(updates), 1)
        with pytest.raises(StopAsyncIteration):
            await anext(updates)


async def test_aclose_closes_every_connection_it_opened(private_redis):
    feed = PrivateFeed(1)
    await feed.count_unseen()  # the feed's own pooled connection
    before = await private_redis.connections()
    many = [feed.subscribe() for _ in range(3)]
    for updates in many:
        await updates.__aenter__()
    assert await private_redis.connections(subscribed=True) == 3
    for updates in many:
        await updates.aclose()
    await private_redis.wait_for_connections(0, subscribed=True)
    await private_redis.wait_for_connections(before)

