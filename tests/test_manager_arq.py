"""The fanout Manager in arq mode: real Redis, real arq workers (in-process, burst)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from typing import Any

import fanout_app
import orjson
import pytest
from arq.connections import ArqRedis
from fanout_app import AppAggregatedFeed, AppFeed, AppManager, AppUserFeed
from fanout_testing import app_queue, drain, holders, queued
from helpers import make_activity

import asyncfeeds
from asyncfeeds import FanoutPriority, StorageUnavailableError
from asyncfeeds.fanout import create_queue
from asyncfeeds.fanout.deadletters import dead_jobs
from asyncfeeds.fanout.payload import JOB_FUNCTION, FanoutJob, decode, encode
from asyncfeeds.metrics import Metrics

HIGH, LOW = FanoutPriority.HIGH, FanoutPriority.LOW


@pytest.fixture
async def queue() -> AsyncIterator[ArqRedis]:
    async with app_queue() as pool:
        yield pool


class Recorder(Metrics):
    def __init__(self) -> None:
        self.enqueued: list[tuple[str, int, int]] = []
        self.retries: list[tuple[str, str, int]] = []

    def on_jobs_enqueued(self, priority: str, enqueued: int, duplicates: int) -> None:
        self.enqueued.append((priority, enqueued, duplicates))

    def on_job_retry(self, feed_class: type, operation: str, attempt: int) -> None:
        self.retries.append((feed_class.__name__, operation, attempt))


async def test_fanout_by_priority_to_thousands_of_followers(queue: ArqRedis) -> None:
    high, low = list(range(10_000, 12_000)), list(range(20_000, 21_000))
    manager = AppManager(queue, followers={1: {HIGH: high, LOW: iter(low)}})
    activity = make_activity(1, actor=1)
    await manager.add_user_activity(1, activity)

    # Returned: the user's feed and the activity data are written, followers wait for jobs.
    assert await AppUserFeed(1)[:] == [activity]
    assert await holders(AppFeed, high[:50] + low[:50], activity) == 0
    assert await queued(queue, HIGH) == 2 * len(high) // 50
    assert await queued(queue, LOW) == 2 * len(low) // 50

    job_id = (await queue.zrange(AppManager.queue_names[HIGH], 0, 0))[0].decode()
    stored = orjson.loads(await queue.get(f"arq:job:{job_id}"))  # plain JSON, not pickle
    assert stored["f"] == JOB_FUNCTION
    payload = stored["a"][0]
    assert payload["manager"] == "fanout_app:AppManager" and payload["op"] == "add"
    assert payload["feed"] in ("flat", "aggregated") and len(payload["users"]) == 50

    await drain(manager, "high")
    assert await holders(AppFeed, high, activity) == len(high)
    assert await holders(AppAggregatedFeed, high, activity) == len(high)
    assert await holders(AppFeed, low, activity) == 0
    await drain(manager, "low")
    assert await holders(AppFeed, low, activity) == len(low)
    assert await holders(AppAggregatedFeed, low, activity) == len(low)
    assert await AppFeed(10_500)[:] == [activity]


class ChunkyManager(AppManager):
    """Jobs of four chunks; records every chunk the worker writes."""

    fanout_chunks_per_job = 4
    fanout_concurrency = 3

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, import_path="test_manager_arq:ChunkyManager", **kwargs)
        self.chunks: list[tuple[str, int]] = []

    async def fanout(self, feed_class: Any, user_ids: Sequence[Any], operation: Any,
                     activities: Sequence[Any]) -> int:
        self.chunks.append((feed_class.__name__, len(user_ids)))
        await asyncio.sleep(0)
        return await super().fanout(feed_class, user_ids, operation, activities)


async def test_a_job_carries_several_chunks_each_written_as_its_own_batch(
    queue: ArqRedis,
) -> None:
    followers = list(range(30_000, 30_430))  # 8 full chunks of 50 and one of 30
    manager = ChunkyManager(queue, followers={1: {HIGH: followers}})
    activity = make_activity(5, actor=1)
    await manager.add_user_activity(1, activity)
    assert await queued(queue, HIGH) == 2 * 3  # 200, 200 and 30 users, for each feed class
    job_id = (await queue.zrange(AppManager.queue_names[HIGH], 0, 0))[0].decode()
    payload = orjson.loads(await queue.get(f"arq:job:{job_id}"))["a"][0]
    assert len(payload["users"]) in (200, 30)

    await drain(manager, "high")
    assert sorted(manager.chunks) == sorted(
        [(name, 50) for name in ("AppFeed", "AppAggregatedFeed") for _ in range(8)]
        + [("AppFeed", 30), ("AppAggregatedFeed", 30)]
    )
    assert await holders(AppFeed, followers, activity) == len(followers)
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)

    manager.chunks.clear()
    await manager.remove_user_activity(1, activity)
    await drain(manager, "high")
    assert len(manager.chunks) == 18
    assert await holders(AppFeed, followers, activity) == 0
    assert await holders(AppAggregatedFeed, followers, activity) == 0


async def test_payload_round_trip_is_plain_json() -> None:
    activity = make_activity(3, actor=2, extra_context={"tags": ["a", 1]})
    manager = AppManager()
    job = FanoutJob(manager.import_path, "flat", "add", [1, "u2"], [activity], 17)
    payload = orjson.loads(orjson.dumps(encode(job, AppFeed)))
    decoded, feed_class = decode(payload, manager.feed_classes)
    assert feed_class is AppFeed
    assert decoded == job and decoded.job_id == job.job_id
    assert decoded.activities[0].extra_context == {"tags": ["a", 1]}
    removal = FanoutJob(manager.import_path, "flat", "remove", [1], [activity.activity_id], 17)
    assert removal.job_id != job.job_id
    later = FanoutJob(manager.import_path, "flat", "add", [1, "u2"], [activity], 18)
    assert later.job_id != job.job_id  # a later call's job is never taken for an earlier one
    assert encode(removal, AppFeed)["activities"] == [activity.activity_id]
    broken_payloads = (
        {**payload, "feed": "nope"}, {**payload, "op": "drop"}, {"v": 1},
        {**payload, "version": "x"}, {k: v for k, v in payload.items() if k != "version"},
    )
    for broken in broken_payloads:
        with pytest.raises(ValueError):
            decode(broken, manager.feed_classes)


async def test_duplicate_enqueue_while_queued_or_running_runs_once(queue: ArqRedis) -> None:
    followers = list(range(300, 400))
    activity = make_activity(5, actor=2)
    jobs_per_publish = 2 * len(followers) // 50
    recorder = Recorder()
    queued_jobs: list[tuple[str, Any]] = []

    async def enqueue_again() -> list[Any]:
        name = AppManager.queue_names[HIGH]
        return [
            await queue.enqueue_job(JOB_FUNCTION, payload, _job_id=job_id, _queue_name=name)
            for job_id, payload in queued_jobs
        ]

    class Republishing(AppManager):
        republished = False

        async def fanout(self, feed_class: type, user_ids: Sequence[Any], operation: str,
                         activities: Sequence[Any]) -> int:
            if not self.republished:  # the same jobs again while this one is running
                type(self).republished = True
                assert await enqueue_again() == [None] * jobs_per_publish
            return await super().fanout(feed_class, user_ids, operation, activities)

    manager = Republishing(queue, followers={2: {HIGH: followers}}, metrics=recorder)
    await manager.add_user_activity(2, activity)
    for raw in await queue.zrange(AppManager.queue_names[HIGH], 0, -1):
        stored = orjson.loads(await queue.get(f"arq:job:{raw.decode()}"))
        queued_jobs.append((raw.decode(), stored["a"][0]))
    assert await enqueue_again() == [None] * jobs_per_publish  # queued: not again
    assert await queued(queue, HIGH) == jobs_per_publish
    await manager.add_user_activity(2, activity)  # a later call: its own jobs
    assert await queued(queue, HIGH) == 2 * jobs_per_publish
    worker = await drain(manager, "high", max_jobs=1)

    assert worker.jobs_complete == 2 * jobs_per_publish
    assert recorder.enqueued == [("high", jobs_per_publish, 0), ("high", jobs_per_publish, 0)]
    assert await holders(AppFeed, followers, activity) == len(followers)
    for user_id in (300, 399):
        assert await AppFeed(user_id).count() == 1
        groups = await AppAggregatedFeed(user_id)[:]
        assert [g.activity_count for g in groups] == [1]


async def test_finished_work_can_be_enqueued_again(queue: ArqRedis) -> None:
    followers = list(range(500, 560))
    manager = AppManager(queue, followers={3: {HIGH: followers}})
    activity = make_activity(7, actor=3)

    for operation, present in (("add", True), ("remove", False), ("add", True)):
        if operation == "add":
            await manager.add_user_activity(3, activity)
        else:
            await manager.remove_user_activity(3, activity)
        await drain(manager)
        expected = len(followers) if present else 0
        assert await holders(AppFeed, followers, activity) == expected
        assert await holders(AppAggregatedFeed, followers, activity) == expected


async def test_racing_add_and_remove_jobs_end_as_the_user_asked_last(queue: ArqRedis) -> None:
    followers = list(range(600, 660))
    manager = AppManager(queue, followers={4: {HIGH: followers}})
    activity = make_activity(8, actor=4)

    # add -> remove -> add, no worker in between: each call has its own jobs and version,
    # and the remove job must not win whatever the order jobs run in.
    await manager.add_user_activity(4, activity)
    await manager.remove_user_activity(4, activity)
    await manager.add_user_activity(4, activity)
    await drain(manager)
    assert await holders(AppFeed, followers, activity) == len(followers)
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)

    await manager.add_user_activity(4, activity)
    await manager.remove_user_activity(4, activity)
    await drain(manager)
    assert await holders(AppFeed, followers, activity) == 0
    assert await holders(AppAggregatedFeed, followers, activity) == 0
    assert await AppUserFeed(4).count() == 0


async def test_failed_job_is_retried_and_the_result_is_exact(queue: ArqRedis) -> None:
    followers = list(range(700, 800))
    failed: set[tuple[str, Any]] = set()
    recorder = Recorder()

    class Flaky(AppManager):
        async def fanout(self, feed_class: type, user_ids: Sequence[Any], operation: str,
                         activities: Sequence[Any]) -> int:
            written = await super().fanout(feed_class, user_ids[:10], operation, activities)
            if (feed_class.__name__, user_ids[0]) not in failed:
                failed.add((feed_class.__name__, user_ids[0]))
                raise ConnectionError("injected failure after a partial write")
            return written + await super().fanout(feed_class, user_ids[10:], operation,
                                                  activities)

    manager = Flaky(queue, followers={5: {LOW: followers}}, metrics=recorder)
    activity = make_activity(9, actor=5)
    await manager.add_user_activity(5, activity)
    worker = await drain(manager, "low")

    jobs = 2 * len(followers) // 50
    assert worker.jobs_retried == jobs and worker.jobs_complete == jobs
    assert sorted(r[2] for r in recorder.retries) == [1] * jobs
    for user_id in followers:
        assert await AppFeed(user_id).count() == 1
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)
    assert {g.activity_count for u in (700, 799) for g in await AppAggregatedFeed(u)[:]} == {1}


async def test_a_job_failing_every_try_gives_up_into_the_dead_letters(queue: ArqRedis) -> None:
    class Broken(AppManager):
        max_tries = 2

        async def fanout(self, *args: Any) -> int:
            raise ConnectionError("always down")

    manager = Broken(queue, followers={6: {HIGH: [1, 2]}})
    await manager.add_user_activity(6, make_activity(10, actor=6))
    worker = await drain(manager)
    assert await queued(queue, HIGH) == 0
    assert worker.ctx["asyncfeeds_stats"].dead == 2
    dead = [d async for d in dead_jobs(queue, manager.dead_letter_key)]
    assert sorted(d.payload["feed"] for d in dead) == ["aggregated", "flat"]
    assert {(d.tries, d.error) for d in dead} == {(2, "ConnectionError('always down')")}


async def test_the_queue_can_be_set_after_construction(queue: ArqRedis) -> None:
    followers = list(range(2300, 2310))
    manager = AppManager(followers={21: {HIGH: followers}})
    assert repr(manager) == "<AppManager eager>"
    with pytest.raises(TypeError, match="arq pool"):
        manager.queue = "redis://127.0.0.1:6390/0"
    assert manager.queue is None and manager.job_queue is None

    manager.queue = queue  # as a FastAPI lifespan does
    assert manager.queue is queue and manager.job_queue is not None
    assert repr(manager) == "<AppManager arq queue at 127.0.0.1:6390/0>"
    queued_first = make_activity(12, actor=21)
    await manager.add_user_activity(21, queued_first)
    assert await queued(queue, HIGH) == 2
    assert await holders(AppFeed, followers, queued_first) == 0

    manager.queue = None  # back to eager: written before the call returns
    assert repr(manager) == "<AppManager eager>"
    inline = make_activity(13, actor=21)
    await manager.add_user_activity(21, inline)
    assert await holders(AppFeed, followers, inline) == len(followers)
    assert await queued(queue, HIGH) == 2
    await drain(AppManager(queue))
    assert await holders(AppFeed, followers, queued_first) == len(followers)


async def test_progress_counts_feeds_queued_and_activities_imported(queue: ArqRedis) -> None:
    followers = {HIGH: list(range(2400, 2460)), LOW: list(range(2500, 2520))}
    manager = AppManager(queue, followers={22: followers})
    counted: list[int] = []
    await manager.add_user_activity(22, make_activity(14, actor=22), progress=counted.append)
    assert sum(counted) == 2 * 80  # every follower feed of both classes, once queued
    imported: list[int] = []
    activities = [make_activity(n, actor=22) for n in range(15, 22)]
    await manager.batch_import(22, activities, chunk_size=3, progress=imported.append)
    assert imported == [3, 3, 1]


async def test_update_and_batch_import_in_arq_mode(queue: ArqRedis) -> None:
    followers = list(range(800, 870))
    manager = AppManager(queue, followers={7: {HIGH: followers}})
    activities = [make_activity(n, actor=7, extra_context={"v": 1}) for n in range(40)]
    await manager.batch_import(7, activities, chunk_size=15)
    assert await AppUserFeed(7).count() == 40
    await drain(manager)
    newest_first = sorted(activities, key=lambda a: a.activity_id, reverse=True)
    for user_id in (800, 835, 869):
        assert await AppFeed(user_id)[:] == newest_first
        assert sum(g.activity_count for g in await AppAggregatedFeed(user_id)[:]) == 40

    changed = activities[35].model_copy(update={"extra_context": {"v": 2}})
    await manager.update_user_activities([changed])
    assert (await AppFeed(800)[4]).extra_context == {"v": 2}  # the activity storage
    await drain(manager)
    for user_id in (800, 869):
        groups = await AppAggregatedFeed(user_id)[:]
        held = {a.activity_id: a.extra_context for g in groups for a in g.activities}
        assert held[changed.activity_id] == {"v": 2}
        assert sum(g.activity_count for g in groups) == 40


async def test_follow_and_unfollow_write_inline_in_arq_mode(queue: ArqRedis) -> None:
    manager = AppManager(queue)
    activities = [make_activity(n, actor=8) for n in range(6)]
    await manager.batch_import(8, activities, fanout=False)
    await manager.follow_user(9, 8)
    assert await AppFeed(9).count() == 6 and await AppAggregatedFeed(9).count() == 1
    await manager.unfollow_user(9, 8)
    assert await AppFeed(9).count() == 0 and await AppAggregatedFeed(9).count() == 0
    assert await queued(queue, HIGH) == 0


async def test_unreachable_queue_is_a_clear_error() -> None:
    async with asyncio.timeout(15):
        with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1\b"):
            await create_queue("redis://127.0.0.1:1/0")
        fanout_app.configure()
        dead = ArqRedis(host="127.0.0.1", port=1, socket_connect_timeout=1)
        manager = AppManager(dead, followers={1: {HIGH: [2]}})
        try:
            with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1\b"):
                await manager.add_user_activity(1, make_activity(11, actor=1))
        finally:
            await AppUserFeed.flush()
            await asyncfeeds.aclose()
    with pytest.raises(ValueError, match="standalone Redis"):
        await create_queue("redis+cluster://127.0.0.1:7101")
