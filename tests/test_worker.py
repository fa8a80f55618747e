"""Fanout workers: settings, foreign jobs, dead letters, redelivery, queue status,
SIGKILL and SIGTERM, in real worker processes on real Redis."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import fanout_app
import pytest
from arq.connections import ArqRedis
from arq.worker import create_worker as arq_create_worker
from conftest import make_activity
from fanout_app import (
    RELEASE_KEY,
    STALLED_KEY,
    AppAggregatedFeed,
    AppFeed,
    AppManager,
    GracefulManager,
    KilledManager,
)
from fanout_testing import app_queue, drain, holders, start_cli_worker

import asyncfeeds
import asyncfeeds.fanout
from asyncfeeds import FanoutPriority, StorageUnavailableError
from asyncfeeds.fanout import deadletters, jobs
from asyncfeeds.fanout.jobs import FanoutJob
from asyncfeeds.fanout.worker import run_worker, worker_settings
from asyncfeeds.metrics import Metrics
from asyncfeeds.worker import create_worker

HIGH = FanoutPriority.HIGH
TESTS = Path(__file__).parent


@pytest.fixture
async def queue() -> AsyncIterator[ArqRedis]:
    async with app_queue() as pool:
        yield pool


def start_worker(manager: str, log: Path) -> subprocess.Popen[bytes]:
    """A real worker process for ``fanout_app:<manager>``, stalling mid-chunk."""
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        "FANOUT_APP_RUN": fanout_app.RUN,
        "FANOUT_APP_STALL": "1",
    }
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
    assert worker.job_serializer is jobs.dumps and worker.job_deserializer is jobs.loads
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
    job = FanoutJob(manager_path, "flat", "add", [1, 2], [make_activity(40, actor=1)])
    payload = jobs.encode(job, AppFeed)
    queued = await pool.enqueue_job(jobs.JOB_FUNCTION, payload, _job_id=job.job_id,
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

