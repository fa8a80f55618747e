"""Workers and queues when the queue's Redis dies or hangs: a private redis-server of the
test's own is killed, restarted and SIGSTOPped (never the shared servers)."""

from __future__ import annotations

import asyncio
import signal
import time
from collections.abc import AsyncIterator, Callable, Coroutine
from pathlib import Path
from typing import Any

import fanout_app
import pytest
from fanout_app import AppAggregatedFeed, AppFeed, AppManager, AppUserFeed
from fanout_testing import holders, run_cli, start_cli_worker, stop_process
from helpers import make_activity
from private_redis import PrivateRedis

import asyncfeeds
from asyncfeeds import Activity, FanoutPriority, StorageUnavailableError
from asyncfeeds.fanout import create_queue

HIGH = FanoutPriority.HIGH


@pytest.fixture
async def server(tmp_path: Path) -> AsyncIterator[PrivateRedis]:
    """A private Redis for this test only (the test decides what lives on it)."""
    redis = PrivateRedis(tmp_path / "redis")
    redis.start()
    try:
        yield redis
    finally:
        redis.close()
        await asyncfeeds.aclose()
        fanout_app.configure()


async def publish(manager: AppManager, user_id: int, activity: Activity) -> int:
    """Publish as a caller would: retry what failed while the servers were away."""
    failures = 0
    while True:
        try:
            await manager.add_user_activity(user_id, activity)
            return failures
        except StorageUnavailableError:
            failures += 1
            await asyncio.sleep(0.2)


async def exact(followers: list[int], activities: list[Activity]) -> bool:
    """Every follower's flat feed holds exactly the activities; every aggregated feed too."""
    for start in range(0, len(followers), 250):
        batch = followers[start : start + 250]
        counts = await asyncio.gather(*(AppFeed(u).count() for u in batch))
        if counts != [len(activities)] * len(batch):
            return False
    for activity in activities:
        if await holders(AppAggregatedFeed, followers, activity) != len(followers):
            return False
    for user_id in followers[:: len(followers) // 5]:
        groups = await AppAggregatedFeed(user_id)[:]
        if sum(g.activity_count for g in groups) != len(activities):
            return False
    return True


async def test_workers_survive_their_redis_restarting_mid_fanout(
    server: PrivateRedis, tmp_path: Path
) -> None:
    asyncfeeds.configure(redis={fanout_app.SERVER: server.url})  # feeds and queue on it
    followers = list(range(30_000, 33_000))
    pool = await create_queue(server.url)
    manager = AppManager(pool, followers={21: {HIGH: followers}})
    activities = [make_activity(60 + n, actor=21) for n in range(4)]
    logs = [tmp_path / f"worker{n}.log" for n in range(2)]
    workers = [start_cli_worker("AppManager", log, "high", ASYNCFEEDS_TEST_REDIS_URL=server.url)
               for log in logs]
    try:
        await publish(manager, 21, activities[0])
        await publish(manager, 21, activities[1])
        jobs = await pool.zcard(AppManager.queue_names[HIGH])
        assert jobs == 2 * 2 * len(followers) // 50
        while await pool.zcard(AppManager.queue_names[HIGH]) > jobs * 2 // 3:  # noqa: ASYNC110
            await asyncio.sleep(0.02)
        later = asyncio.gather(*(publish(manager, 21, a) for a in activities[2:]))
        server.kill()  # mid-fanout, with the later publications on their way
        await asyncio.sleep(2)
        server.start()
        assert sum(await later) > 0, "the outage should have failed some publication"

        deadline = time.monotonic() + 120
        while not (await pool.zcard(AppManager.queue_names[HIGH]) == 0
                   and await exact(followers, activities)):
            for worker, log in zip(workers, logs, strict=True):
                assert worker.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "the fanout never completed"
            await asyncio.sleep(0.5)
        assert all(worker.poll() is None for worker in workers), "a worker died"
    finally:
        codes = [stop_process(worker) for worker in workers]
        await pool.aclose()
    for code, log in zip(codes, logs, strict=True):
        output = log.read_text()
        assert code == 0, output
        assert "lost the queue's Redis at 127.0.0.1:" in output, output
        assert "reconnected to the queue's Redis" in output, output
        assert "0 Redis outages" not in output and "Traceback" not in output, output
    assert await AppUserFeed(21).count() == len(activities)


async def test_a_hung_queue_redis_errors_within_seconds_and_workers_wait_for_it(
    server: PrivateRedis, tmp_path: Path
) -> None:
    fanout_app.configure()  # the feeds stay on the shared Redis, the queue is the private one
    pool = await create_queue(server.url)
    manager = AppManager(pool, followers={22: {HIGH: [1, 2, 3]}})
    log = tmp_path / "worker.log"
    worker = start_cli_worker("AppManager", log, "high", FANOUT_APP_QUEUE_URL=server.url)
    address = f"127.0.0.1:{server.port}"
    await asyncio.sleep(2)  # the worker is up and polling
    server.stop_signal(signal.SIGSTOP)
    try:
        calls: list[Callable[[], Coroutine[Any, Any, Any]]] = [
            lambda: create_queue(server.url),
            lambda: manager.add_user_activity(22, make_activity(71, actor=22)),
        ]
        for call in calls:
            started = time.monotonic()
            with pytest.raises(StorageUnavailableError, match=address):
                await asyncio.wait_for(call(), 15)
            assert time.monotonic() - started < 10
        result = await run_cli("status", "--manager", "fanout_app:AppManager",
                               FANOUT_APP_QUEUE_URL=server.url)
        assert result.returncode == 1
        assert result.stderr.count("\n") == 1 and address in result.stderr, result.stderr
        assert worker.poll() is None, log.read_text()
    finally:
        server.stop_signal(signal.SIGCONT)

    activity = make_activity(70, actor=22)
    await publish(manager, 22, activity)
    deadline = time.monotonic() + 60
    while await holders(AppFeed, [1, 2, 3], activity) < 3:
        assert worker.poll() is None, log.read_text()
        assert time.monotonic() < deadline, log.read_text()
        await asyncio.sleep(0.2)
    assert stop_process(worker) == 0
    await pool.aclose()
    for feed_class in (AppFeed, AppAggregatedFeed, AppUserFeed):
        await feed_class.flush()
    output = log.read_text()
    assert "lost the queue's Redis" in output and "reconnected" in output, output
