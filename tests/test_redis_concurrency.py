"""Concurrent adds to one aggregated group on Redis lose nothing, from tasks and from processes."""

from __future__ import annotations

import asyncio
import sys
import textwrap

import pytest
from helpers import REDIS_CLUSTER_URL, REDIS_URL, backends, make_activity

REDIS_BACKENDS = backends("redis", "redis-cluster")
pytestmark = pytest.mark.parametrize("backend", REDIS_BACKENDS, indirect=True)

WRITERS = 50
PROCESSES = 5

CHILD = textwrap.dedent(
    """
    import asyncio
    import sys
    from datetime import UTC, datetime, timedelta

    import asyncfeeds
    from asyncfeeds import Activity, RedisAggregatedFeed, Verb, register_verb

    url, key_format, activity_prefix, first, count = sys.argv[1:6]


    class Pin(Verb):
        id = 5
        infinitive = "pin"
        past_tense = "pinned"


    register_verb(Pin)


    class Feed(RedisAggregatedFeed):
        pass


    Feed.key_format = key_format
    Feed.activity_key_prefix = activity_prefix
    BASE = datetime(2024, 1, 1, tzinfo=UTC)


    async def main():
        asyncfeeds.configure(redis={"default": url})
        await Feed(1).count()  # connect before the start signal
        print("ready", flush=True)
        await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)
        numbers = range(int(first), int(first) + int(count))
        activities = [
            Activity(actor=n, verb=Pin, object=n, time=BASE + timedelta(minutes=n)) for n in numbers
        ]
        await asyncio.gather(*(Feed(1).add_many([a]) for a in activities))
        await asyncfeeds.aclose()
        print("done", flush=True)


    asyncio.run(main())
    """
)


def one_group_activities():
    """50 distinct activities of one verb, object and day: one group for either aggregator."""
    return [make_activity(n, actor=n, object=1, minutes=n) for n in range(WRITERS)]


async def assert_all_counted(feed) -> None:
    groups = await feed[:]
    assert len(groups) == 1
    assert groups[0].activity_count == WRITERS
    assert groups[0].minimized_activities == WRITERS - len(groups[0].activities)


async def test_50_concurrent_tasks_add_to_one_group(backend):
    feed_class = backend.feed("aggregated")
    results = await asyncio.gather(
        *(feed_class(1).add_many([a]) for a in one_group_activities())
    )
    assert all(len(changed) == 1 for changed in results)
    await assert_all_counted(feed_class(1))


async def test_50_concurrent_notification_adds_keep_markers_consistent(backend):
    feed_class = backend.feed("notification")
    await asyncio.gather(*(feed_class(1).add(a) for a in one_group_activities()))
    feed = feed_class(1)
    await assert_all_counted(feed)
    assert (await feed.count_unseen(), await feed.count_unread()) == (1, 1)


async def test_50_concurrent_adds_from_separate_processes(backend, tmp_path):
    feed_class = backend.feed("aggregated")
    url = REDIS_URL if backend.name == "redis" else REDIS_CLUSTER_URL
    script = tmp_path / "writer.py"
    script.write_text(CHILD)
    per_process = WRITERS // PROCESSES
    children = [
        await asyncio.create_subprocess_exec(
            sys.executable, str(script), url, feed_class.key_format,
            feed_class.activity_key_prefix, str(i * per_process), str(per_process),
            stdin=asyncio.subprocess.PIPE, stdout=asyncio.subprocess.PIPE,
        )
        for i in range(PROCESSES)
    ]
    try:
        for child in children:
            assert await asyncio.wait_for(child.stdout.readline(), 60) == b"ready\n"
        for child in children:  # all start together, so their commits race
            child.stdin.write(b"go\n")
            await child.stdin.drain()
        for child in children:
            assert await asyncio.wait_for(child.stdout.readline(), 60) == b"done\n"
            assert await child.wait() == 0
    finally:
        for child in children:
            if child.returncode is None:
                child.kill()
                await child.wait()
    await assert_all_counted(feed_class(1))

