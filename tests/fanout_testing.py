"""Helpers shared by the arq-mode manager and worker tests (real Redis, real workers)."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import fanout_app
from arq.connections import ArqRedis
from arq.worker import Worker
from fanout_app import AppAggregatedFeed, AppFeed, AppManager, AppUserFeed

import asyncfeeds
from asyncfeeds import Activity
from asyncfeeds.fanout import create_queue
from asyncfeeds.worker import create_worker


@asynccontextmanager
async def app_queue() -> AsyncIterator[ArqRedis]:
    """A JSON arq pool on the test Redis; the app's feeds, queues and flags are dropped after."""
    fanout_app.configure()
    pool = await create_queue(fanout_app.REDIS_URL)
    try:
        yield pool
    finally:
        await drop_queues(pool)
        for feed_class in (AppFeed, AppAggregatedFeed, AppUserFeed):
            await feed_class.flush()
        await pool.delete(fanout_app.STALLED_KEY, fanout_app.RELEASE_KEY, fanout_app.FLAKY_KEY,
                          AppManager.dead_letter_key)
        await pool.aclose()
        await asyncfeeds.aclose()


async def drop_queues(pool: ArqRedis) -> None:
    """Forget the app's queued jobs (a failed test may leave some behind)."""
    for name in AppManager.queue_names.values():
        for raw in await pool.zrange(name, 0, -1):
            job_id = raw.decode()
            await pool.delete(f"arq:job:{job_id}", f"arq:in-progress:{job_id}",
                              f"arq:retry:{job_id}")
        await pool.delete(name, f"{name}:health-check")


async def drain(manager: AppManager, priority: str = "high", **kwargs: Any) -> Worker:
    """Run an in-process burst worker until the queue is empty; raise if a job failed."""
    worker = create_worker(manager, priority, burst=True, poll_delay=0.02,
                           handle_signals=False, **kwargs)
    await worker.run_check()
    return worker


async def holders(feed_class: type, user_ids: Sequence[Any], activity: Activity) -> int:
    """How many of the users' feeds hold the activity."""
    found = 0
    for start in range(0, len(user_ids), 250):
        batch = user_ids[start : start + 250]
        found += sum(await asyncio.gather(*(feed_class(u).contains(activity) for u in batch)))
    return found


async def queued(pool: ArqRedis, priority: Any) -> int:
    """How many jobs wait on the app's queue of ``priority``."""
    return await pool.zcard(AppManager.queue_names[priority])


TESTS = Path(__file__).parent
SCRIPT = Path(sys.executable).parent / "asyncfeeds"


def app_env(**extra: str) -> dict[str, str]:
    """The environment of a process that imports ``fanout_app`` with this run's keys."""
    return {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(TESTS), os.environ.get("PYTHONPATH")])),
        "FANOUT_APP_RUN": fanout_app.RUN,
        **extra,
    }


def start_cli_worker(
    manager: str, log: Path, priority: str = "high", *args: str, **env: str
) -> subprocess.Popen[bytes]:
    """``asyncfeeds worker --manager fanout_app:<manager>`` in a process of its own."""
    with log.open("ab") as out:
        return subprocess.Popen(
            [str(SCRIPT), "worker", "--manager", f"fanout_app:{manager}", "--priority", priority,
             *args],
            env=app_env(**env), stdout=out, stderr=out, cwd=TESTS,
        )


def stop_process(process: subprocess.Popen[bytes], timeout: float = 60) -> int:
    """SIGTERM a process and wait for it (kill it if it will not stop); its exit code."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
    return process.returncode


async def run_cli(*args: str, **env: str) -> subprocess.CompletedProcess[str]:
    """Run ``asyncfeeds <args>`` with ``fanout_app`` importable; the finished process."""
    return await asyncio.to_thread(
        subprocess.run, [str(SCRIPT), *args], env=app_env(**env), cwd=TESTS,
        capture_output=True, text=True, timeout=120,
    )
