"""Helpers shared by the arq-mode manager and worker tests (real Redis, real workers)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
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
        await pool.delete(fanout_app.STALLED_KEY, fanout_app.RELEASE_KEY)
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
