"""Fanout workers: settings, foreign jobs, dead letters, redelivery, queue status,
SIGKILL and SIGTERM, in real worker processes on real Redis."""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from arq.connections import ArqRedis
from arq.worker import create_worker as arq_create_worker
from fanout_app import (
    FLAKY_KEY,
    RELEASE_KEY,
    STALLED_KEY,
    AppAggregatedFeed,
    AppFeed,
    AppManager,
    DefaultStallingManager,
    FlakyManager,
    GracefulManager,
    KilledManager,
    OneTryFlakyManager,
    SlowRetryFlakyManager,
)
from fanout_testing import (
    app_env,
    app_queue,
    drain,
    holders,
    queued,
    run_cli,
    start_cli_worker,
    stop_process,
)
from helpers import make_activity
from prometheus_client import CollectorRegistry

import asyncfeeds
import asyncfeeds.fanout
from asyncfeeds import FanoutPriority, StorageUnavailableError
from asyncfeeds.fanout import deadletters, jobs, payload
from asyncfeeds.fanout.payload import FanoutJob
from asyncfeeds.fanout.status import QueueStatus, report_queue_status
from asyncfeeds.fanout.worker import run_worker, worker_settings
from asyncfeeds.metrics import Metrics, PrometheusMetrics
from asyncfeeds.worker import create_worker

HIGH, LOW = FanoutPriority.HIGH, FanoutPriority.LOW


@pytest.fixture
async def queue() -> AsyncIterator[ArqRedis]:
    async with app_queue() as pool:
        yield pool


def start_worker(manager: str, log: Path) -> subprocess.Popen[bytes]:
    """A real worker process for ``fanout_app:<manager>``, stalling mid-chunk."""
    env = app_env(FANOUT_APP_STALL="1")
    code = f"from asyncfeeds.worker import run_worker; run_worker('fanout_app:{manager}', 'high')"
    with log.open("wb") as out:
        return subprocess.Popen([sys.executable, "-c", code], env=env, stdout=out, stderr=out)


def output_of(log: Path) -> str:
    """What the worker process printed."""
    return log.read_text()


async def wait_until_stalled(pool: ArqRedis, worker: subprocess.Popen[bytes], log: Path) -> None:
    for _ in range(1200):
        if await pool.exists(STALLED_KEY):
            return
        assert worker.poll() is None, f"worker exited early:\n{output_of(log)}"
        await asyncio.sleep(0.05)
    raise AssertionError(f"the worker never reached the middle of a chunk:\n{output_of(log)}")


async def test_worker_settings_keep_jobs_plain_and_results_unkept() -> None:
    assert asyncfeeds.worker.create_worker is asyncfeeds.fanout.create_worker
    manager = AppManager()
    worker = create_worker(manager, "low", handle_signals=False)
    assert worker.queue_name == AppManager.queue_names[FanoutPriority.LOW]
    assert list(worker.functions) == [jobs.JOB_FUNCTION]
    assert worker.job_serializer is payload.dumps and worker.job_deserializer is payload.loads
    assert worker.keep_result_s == 0 and not worker.keep_result_forever
    assert worker.max_tries == AppManager.max_tries
    # arq allows a few more tries than the manager: the job function itself keeps a job
    # whose last try was cut short as a dead letter.
    assert worker.functions[jobs.JOB_FUNCTION].max_tries > AppManager.max_tries
    assert worker.in_progress_timeout_s == AppManager.job_lease
    assert worker.ctx["asyncfeeds_manager"] is manager
    with pytest.raises(ValueError, match="high"):
        create_worker(manager, "urgent")
    with pytest.raises(TypeError, match="Manager"):
        create_worker(object(), "high")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="cannot import manager"):
        run_worker("fanout_app:NoSuchManager", "high")
    with pytest.raises(ValueError, match="not an asyncfeeds Manager"):
        run_worker("fanout_app:AppFeed", "high")


async def test_worker_settings_serve_as_arq_worker_settings(queue: ArqRedis) -> None:
    followers = list(range(1300, 1330))
    manager = AppManager(queue, followers={14: {HIGH: followers}})
    activity = make_activity(31, actor=14)
    await manager.add_user_activity(14, activity)
    settings = worker_settings(AppManager(), "high")  # what `arq myapp.WorkerSettings` reads
    worker = arq_create_worker(settings, burst=True, poll_delay=0.02, handle_signals=False)
    try:
        assert await worker.run_check() == 2
    finally:
        await worker.pool.aclose()
    assert await holders(AppFeed, followers, activity) == len(followers)


def test_a_worker_without_its_redis_fails_with_a_clear_error() -> None:
    with pytest.raises(StorageUnavailableError, match=r"127\.0\.0\.1:1\b"):
        run_worker("fanout_app:UnreachableManager", "high")


class Refusals(Metrics):
    def __init__(self) -> None:
        self.refused: list[tuple[str, str]] = []

    def on_job_refused(self, priority: str, reason: str) -> None:
        self.refused.append((priority, reason))


async def enqueue_foreign_job(pool: ArqRedis, manager_path: str, priority: Any = HIGH) -> str:
    """A well-formed job of ``AppManager``'s queue whose payload names ``manager_path``."""
    job = FanoutJob(manager_path, "flat", "add", [1, 2], [make_activity(40, actor=1)], 1)
    encoded = payload.encode(job, AppFeed)
    queued = await pool.enqueue_job(jobs.JOB_FUNCTION, encoded, _job_id=job.job_id,
                                    _queue_name=AppManager.queue_names[priority])
    assert queued is not None
    return job.job_id


async def dead_letters(pool: ArqRedis) -> list[deadletters.DeadJob]:
    return [d async for d in deadletters.dead_jobs(pool, AppManager.dead_letter_key)]


async def test_a_job_naming_another_manager_is_refused_counted_and_kept_unimported(
    queue: ArqRedis, tmp_path: Path
) -> None:
    marker = tmp_path / "imported"
    os.environ["IMPORT_RECORDER_FILE"] = str(marker)
    try:
        job_id = await enqueue_foreign_job(queue, "import_recorder:manager")
        metrics = Refusals()
        worker = await drain(AppManager(queue, metrics=metrics))
    finally:
        del os.environ["IMPORT_RECORDER_FILE"]
    assert "import_recorder" not in sys.modules and not marker.exists()
    assert metrics.refused == [("high", "foreign_manager")]
    assert worker.ctx["asyncfeeds_stats"].refused == 1
    (dead,) = await dead_letters(queue)
    assert dead.job_id == job_id and dead.manager == "import_recorder:manager"
    assert dead.payload["manager"] == "import_recorder:manager" and dead.payload["users"] == [1, 2]
    assert dead.error.startswith("refused: the job names manager 'import_recorder:manager'")
    assert await holders(AppFeed, [1, 2], make_activity(40, actor=1)) == 0


async def test_a_worker_process_never_imports_what_a_payload_names(
    queue: ArqRedis, tmp_path: Path
) -> None:
    marker, log = tmp_path / "imported", tmp_path / "worker.log"
    await enqueue_foreign_job(queue, "import_recorder:manager")
    worker = start_cli_worker("AppManager", log, "high", "--burst",
                              IMPORT_RECORDER_FILE=str(marker))
    returncode = await asyncio.to_thread(worker.wait, 60)
    output = log.read_text()
    assert returncode == 0, output
    assert not marker.exists(), "the worker imported the module a job named"
    assert "refused: the job names manager 'import_recorder:manager'" in output
    assert "0 jobs done, 0 retried, 0 dead, 1 refused" in output
    assert len(await dead_letters(queue)) == 1


async def test_worker_killed_mid_chunk_then_replaced_writes_every_feed_once(
    queue: ArqRedis, tmp_path: Path
) -> None:
    followers = list(range(900, 1020))  # chunks of 50, 50 and 20 users
    manager = KilledManager(queue, followers={11: {HIGH: followers}})
    activity = make_activity(20, actor=11)
    log = tmp_path / "worker.log"
    worker = start_worker("KilledManager", log)
    try:
        await manager.add_user_activity(11, activity)
        await wait_until_stalled(queue, worker, log)
    finally:
        worker.kill()
        worker.wait(timeout=30)
    partly = await holders(AppFeed, followers, activity)
    assert 0 < partly < len(followers), "the worker should die with a chunk half written"

    # arq re-runs the dead worker's jobs once their in-progress keys expire (seconds here).
    await drain(manager)
    counts = await asyncio.gather(*(AppFeed(u).count() for u in followers))
    assert counts == [1] * len(followers)
    assert await holders(AppFeed, followers, activity) == len(followers)
    for user_id in (900, 949, 950, 1019):
        groups = await AppAggregatedFeed(user_id)[:]
        assert [g.activity_count for g in groups] == [1]
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)


async def test_sigterm_lets_the_worker_finish_the_job_in_hand(
    queue: ArqRedis, tmp_path: Path
) -> None:
    followers = list(range(1100, 1150))  # one chunk per feed class
    manager = GracefulManager(queue, followers={12: {HIGH: followers}})
    activity = make_activity(21, actor=12)
    log = tmp_path / "worker.log"
    worker = start_worker("GracefulManager", log)
    try:
        await manager.add_user_activity(12, activity)
        await wait_until_stalled(queue, worker, log)
        worker.send_signal(signal.SIGTERM)
        await asyncio.sleep(0.5)
        assert worker.poll() is None, "the worker must wait for the job in hand"
        await queue.rpush(RELEASE_KEY, "go")
        returncode = await asyncio.to_thread(worker.wait, 60)
    finally:
        if worker.poll() is None:
            worker.kill()
            worker.wait()
    output = output_of(log)
    assert returncode == 0, output
    assert "Traceback" not in output, output
    assert await holders(AppFeed, followers, activity) == len(followers)
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)
    assert await queue.zcard(AppManager.queue_names[HIGH]) == 0



async def test_a_job_failing_every_try_is_kept_dead_then_requeued_and_exact(
    queue: ArqRedis, caplog: pytest.LogCaptureFixture
) -> None:
    followers = list(range(1400, 1520))  # chunks of 50, 50 and 20: 6 jobs
    manager = FlakyManager(queue, followers={15: {HIGH: followers}})
    activity = make_activity(41, actor=15)
    await queue.set(FLAKY_KEY, "1")
    await manager.add_user_activity(15, activity)
    foreign = await enqueue_foreign_job(queue, "fanout_app:GracefulManager")
    with caplog.at_level(logging.ERROR, logger="asyncfeeds"):
        worker = await drain(manager)

    stats = worker.ctx["asyncfeeds_stats"]
    assert (stats.done, stats.retried, stats.dead, stats.refused) == (0, 6 * 4, 6, 1)
    ours = [d for d in await dead_letters(queue) if d.manager == manager.import_path]
    assert len(ours) == 6
    assert all(d.tries == 5 and "injected failure" in d.error for d in ours)
    assert all(d.priority == "high" and d.function == jobs.JOB_FUNCTION for d in ours)
    assert sorted(u for d in ours for u in d.payload["users"]) == sorted(followers * 2)
    gave_up = [r for r in caplog.records if "gave up after 5 tries" in r.getMessage()]
    assert len(gave_up) == 6 and {r.levelno for r in gave_up} == {logging.ERROR}
    assert await queued(queue, HIGH) == 0
    assert await holders(AppFeed, followers, activity) == 0

    await queue.delete(FLAKY_KEY)
    result = await run_cli("requeue-dead", "--manager", "fanout_app:FlakyManager")
    assert result.returncode == 0, result.stderr
    assert f"requeued 6 dead jobs from {AppManager.dead_letter_key}" in result.stdout
    assert "left 1 of other managers" in result.stdout
    assert [d.job_id for d in await dead_letters(queue)] == [foreign]
    assert await queued(queue, HIGH) == 6

    await drain(manager)
    assert await asyncio.gather(*(AppFeed(u).count() for u in followers)) == [1] * len(followers)
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)
    for user_id in (1400, 1519):
        assert [g.activity_count for g in await AppAggregatedFeed(user_id)[:]] == [1]


async def test_a_killed_workers_job_runs_again_within_30_s_with_default_settings(
    queue: ArqRedis, tmp_path: Path
) -> None:
    followers = list(range(1600, 1720))
    manager = DefaultStallingManager(queue, followers={16: {HIGH: followers}})
    activity = make_activity(42, actor=16)
    first_log = tmp_path / "first.log"
    first = start_cli_worker("DefaultStallingManager", first_log, FANOUT_APP_STALL="1")
    second = None
    try:
        await manager.add_user_activity(16, activity)
        await wait_until_stalled(queue, first, first_log)
        second = start_cli_worker("DefaultStallingManager", tmp_path / "second.log")
        first.kill()
        first.wait(timeout=30)
        killed = time.monotonic()
        while await holders(AppFeed, followers, activity) < len(followers):
            assert time.monotonic() - killed < 30, (tmp_path / "second.log").read_text()
            await asyncio.sleep(0.2)
    finally:
        first.kill()
        if second is not None:
            assert stop_process(second) == 0, (tmp_path / "second.log").read_text()
    assert await asyncio.gather(*(AppFeed(u).count() for u in followers)) == [1] * len(followers)
    assert await holders(AppAggregatedFeed, followers, activity) == len(followers)
    assert "try 2: add 50 AppFeed feeds" in (tmp_path / "second.log").read_text()


def status_table(output: str) -> dict[str, tuple[int, ...]]:
    """``asyncfeeds status`` rows by queue name: queued, in progress, retrying, dead."""
    rows = {}
    for line in output.splitlines()[1:]:
        name, *numbers, _age, _unit = line.split()
        rows[name] = tuple(int(n) for n in numbers)
    return rows


async def test_status_counts_queued_running_retrying_and_dead_jobs(
    queue: ArqRedis, tmp_path: Path
) -> None:
    high, low = (AppManager.queue_names[p] for p in (HIGH, LOW))
    await queue.set(FLAKY_KEY, "1")
    one_try = OneTryFlakyManager(queue, followers={17: {LOW: range(1800, 1850)}})
    await one_try.add_user_activity(17, make_activity(43, actor=17))
    await drain(one_try, "low")  # 2 dead letters
    slow = SlowRetryFlakyManager(queue, followers={18: {LOW: range(1900, 1950)}})
    await slow.add_user_activity(18, make_activity(44, actor=18))
    await drain(slow, "low", max_burst_jobs=2)  # 2 failed once, their next try a minute away
    waiting = AppManager(queue, followers={19: {LOW: range(2000, 2050)}})
    await waiting.add_user_activity(19, make_activity(45, actor=19))  # 2 queued

    running = GracefulManager(queue, followers={20: {HIGH: range(2100, 2200)}})
    log = tmp_path / "worker.log"
    worker = start_cli_worker("GracefulManager", log, FANOUT_APP_STALL="1")
    try:
        await running.add_user_activity(20, make_activity(46, actor=20))
        registry = CollectorRegistry()
        observer = AppManager(metrics=PrometheusMetrics(registry=registry))
        for _ in range(300):  # the 2 flat chunks stall, the 2 aggregated ones finish
            statuses = await report_queue_status(observer, queue)
            if (statuses[HIGH].queued, statuses[HIGH].in_progress) == (0, 2):
                break
            assert worker.poll() is None, log.read_text()
            await asyncio.sleep(0.1)
        assert statuses[HIGH] == QueueStatus(high, 0, 2, 0, 0, statuses[HIGH].oldest_age)
        assert statuses[LOW] == QueueStatus(low, 2, 0, 2, 2, statuses[LOW].oldest_age)
        assert statuses[LOW].oldest_age > 0
        for state, value in (("queued", 2), ("in_progress", 0), ("retrying", 2), ("dead", 2)):
            labels = {"priority": "low", "state": state}
            assert registry.get_sample_value("asyncfeeds_fanout_queue_jobs", labels) == value
        assert registry.get_sample_value(
            "asyncfeeds_fanout_queue_jobs", {"priority": "high", "state": "in_progress"}) == 2
        assert registry.get_sample_value(
            "asyncfeeds_fanout_queue_oldest_job_seconds", {"priority": "low"}) > 0

        result = await run_cli("status", "--manager", "fanout_app:AppManager")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[0].split() == [
            "queue", "queued", "in", "progress", "retrying", "dead", "oldest"]
        assert status_table(result.stdout) == {high: (0, 2, 0, 0), low: (2, 0, 2, 2)}
    finally:
        await queue.rpush(RELEASE_KEY, "go", "go")
        assert stop_process(worker) == 0, log.read_text()
