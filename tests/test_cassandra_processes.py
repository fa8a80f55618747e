"""Cassandra feeds shared by several processes: no lost update, counts heard across processes.

The writers are real Python processes running asyncfeeds against the same
Cassandra, so the lightweight transactions, not in-process locks, keep them apart.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from helpers import (
    CASSANDRA_KEYSPACE,
    CASSANDRA_PORT,
    REDIS_URL,
    Backend,
    Like,
    backends,
    make_activity,
)

import asyncfeeds
from asyncfeeds.storage.redis import get_server
from asyncfeeds.storage.redis.notifier import channel

pytestmark = pytest.mark.parametrize("backend", backends("cassandra"), indirect=True)

WAIT = 30  # seconds before a stuck process or a missing message fails the test

WRITER = """
import asyncio, json, sys
import asyncfeeds
from helpers import Like, make_activity

spec = json.loads(sys.argv[1])

async def main():
    asyncfeeds.configure(
        cassandra={"default": {"port": spec["port"], "keyspace": spec["keyspace"],
                               "consistency": "ONE"}},
        redis={"default": spec["redis"]} if spec["redis"] else None,
    )
    base = getattr(asyncfeeds, spec["base"])
    feed_class = type("Remote", (base,), spec["attrs"])
    feed = feed_class(1)
    activities = [make_activity(n, actor=n, verb=Like, object=spec["object"])
                  for n in spec["numbers"]]
    await asyncio.gather(*(feed.add(a) for a in activities))
    await asyncfeeds.aclose()

asyncio.run(main())
"""


async def run_writers(
    feed_class: type, batches: list[list[int]], object: int = 100, redis: str | None = None
) -> None:
    """Add activities ``batches[i]`` (concurrently) in process ``i``, all processes at once."""
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parent)}
    processes = []
    for numbers in batches:
        spec = {
            "port": CASSANDRA_PORT,
            "keyspace": CASSANDRA_KEYSPACE,
            "redis": redis,
            "base": feed_class.__mro__[1].__name__,
            "attrs": {"key_format": feed_class.key_format,
                      "activity_key_prefix": feed_class.activity_key_prefix},
            "numbers": numbers,
            "object": object,
        }
        processes.append(
            await asyncio.create_subprocess_exec(
                sys.executable, "-c", WRITER, json.dumps(spec), env=env,
                stderr=asyncio.subprocess.PIPE,
            )
        )
    for process in processes:
        _, err = await asyncio.wait_for(process.communicate(), WAIT)
        assert process.returncode == 0, err.decode()


@contextlib.asynccontextmanager
async def consumed(feed) -> AsyncIterator[asyncio.Queue[dict[str, int]]]:
    """Iterate ``feed.subscribe()`` (live on entry) in a task; yields the queue of what it got."""
    received: asyncio.Queue[dict[str, int]] = asyncio.Queue()
    async with feed.subscribe() as stream:

        async def consume() -> None:
            async for counts in stream:
                received.put_nowait(counts)

        task = asyncio.create_task(consume())
        try:
            yield received
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


def counts(n: int) -> dict[str, Any]:
    return {"unseen_count": n, "unread_count": n}


async def test_concurrent_adds_from_several_processes_lose_nothing(backend: Backend):
    feed_class = backend.feed("aggregated")
    batches = [list(range(i, 36, 3)) for i in range(3)]  # 3 processes x 12 concurrent adds
    await run_writers(feed_class, batches)
    (group,) = await feed_class(1)[:]
    assert group.activity_count == 36
    expected = [make_activity(n, actor=n, verb=Like, object=100) for n in range(21, 36)]
    assert [a.activity_id for a in group.activities] == [a.activity_id for a in expected]


async def test_subscribe_hears_other_processes_through_redis(backend: Backend):
    asyncfeeds.configure(redis={"default": REDIS_URL})
    feed_class = backend.feed("notification")
    feed = feed_class(1)
    async with consumed(feed) as received:
        (_, listeners) = await get_server("default").call("PUBSUB", "NUMSUB", channel(feed.key))
        assert listeners == 1  # live on entry
        assert await asyncio.wait_for(received.get(), WAIT) == counts(0)
        await run_writers(feed_class, [[1]], object=100, redis=REDIS_URL)
        assert await asyncio.wait_for(received.get(), WAIT) == counts(1)
        await run_writers(feed_class, [[2]], object=200, redis=REDIS_URL)
        assert await asyncio.wait_for(received.get(), WAIT) == counts(2)


async def test_subscribe_without_redis_polls_for_other_processes_changes(backend: Backend):
    feed_class = backend.feed("notification", subscribe_poll_interval=0.1)
    feed = feed_class(1)
    async with consumed(feed) as received:
        assert await asyncio.wait_for(received.get(), WAIT) == counts(0)
        await feed.add(make_activity(1, actor=1, verb=Like, object=100))
        assert await asyncio.wait_for(received.get(), WAIT) == counts(1)  # heard in-process
        await run_writers(feed_class, [[2]], object=200)
        assert await asyncio.wait_for(received.get(), WAIT) == counts(2)  # found by polling
        await feed.mark_all(seen=True, read=True)
        assert await asyncio.wait_for(received.get(), WAIT) == counts(0)
        assert received.empty()
