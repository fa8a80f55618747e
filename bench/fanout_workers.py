"""Fanout throughput to N followers: eager, and through arq workers in separate processes.

    .venv/bin/python bench/fanout_workers.py [--followers 10000] [--workers 2] [--chunk 100]
        [--chunks-per-job N] (default: the Manager's)

Needs a Redis (``ASYNCFEEDS_REDIS_URL``, default redis://127.0.0.1:6390/0: the test
Redis of ``services/redis.sh``). The clock runs from the publish call until every
follower feed is written (workers count what they wrote in a Redis key), so the
arq numbers include queueing. Each run uses fresh keys and removes them after.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import subprocess
import sys
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio

import asyncfeeds
from asyncfeeds import Activity, FanoutPriority, Manager, RedisFeed
from asyncfeeds.fanout import create_queue

RUN = os.environ.setdefault("FANOUT_BENCH_RUN", uuid.uuid4().hex[:8])
URL = os.environ.get("ASYNCFEEDS_REDIS_URL", "redis://127.0.0.1:6390/0")
FOLLOWERS = int(os.environ.get("FANOUT_BENCH_FOLLOWERS", "10000"))
DONE = f"fb{RUN}:done"


class FollowerFeed(RedisFeed):
    key_format = f"fb{RUN}:feed:{{user_id}}"
    activity_key_prefix = f"fb{RUN}:activity"


class UserFeed(RedisFeed):
    key_format = f"fb{RUN}:user:{{user_id}}"
    activity_key_prefix = f"fb{RUN}:activity"


class BenchManager(Manager):
    """Fans out to FOLLOWERS followers and counts the feeds it wrote."""

    feed_classes = {"normal": FollowerFeed}
    user_feed_class = UserFeed
    queue_names = {FanoutPriority.HIGH: f"fb{RUN}:high", FanoutPriority.LOW: f"fb{RUN}:low"}
    queue_url = URL
    fanout_chunk_size = int(os.environ.get("FANOUT_BENCH_CHUNK", "100"))
    fanout_chunks_per_job = int(
        os.environ.get("FANOUT_BENCH_CHUNKS_PER_JOB", Manager.fanout_chunks_per_job)
    )

    async def get_user_follower_ids(self, user_id: Any) -> dict[FanoutPriority, range]:
        return {FanoutPriority.HIGH: range(100_000, 100_000 + FOLLOWERS)}

    async def fanout(self, feed_class: Any, user_ids: Any, operation: str, activities: Any) -> Any:
        written = await super().fanout(feed_class, user_ids, operation, activities)
        if getattr(self, "_counter", None) is None:
            self._counter = redis_asyncio.from_url(URL)
        await self._counter.incrby(DONE, len(user_ids))
        return written


def activity(n: int) -> Activity:
    return Activity(actor=1, verb=1, object=n, time=datetime(2024, 1, 1, tzinfo=UTC) + timedelta(n))


async def run_once(manager: BenchManager, n: int) -> float:
    counter = redis_asyncio.from_url(URL)
    await counter.delete(DONE)
    start = time.perf_counter()
    await manager.add_user_activity(1, activity(n))
    while int(await counter.get(DONE) or 0) < FOLLOWERS:  # noqa: ASYNC110 (other processes)
        await asyncio.sleep(0.002)
    elapsed = time.perf_counter() - start
    await counter.aclose()
    assert await FollowerFeed(100_000 + FOLLOWERS - 1).contains(activity(n))
    return elapsed


async def main(workers: int, repeat: int) -> None:
    asyncfeeds.configure(redis={"default": URL})
    try:
        for n in range(repeat):
            seconds = await run_once(BenchManager(), n)
            print(f"eager: {FOLLOWERS} feeds in {seconds:.3f} s = {FOLLOWERS / seconds:,.0f}/s")
        env = {**os.environ, "FANOUT_BENCH_RUN": RUN, "ASYNCFEEDS_REDIS_URL": URL}
        command = [sys.executable, "-m", "asyncfeeds.cli", "worker", "--manager",
                   "fanout_workers:BenchManager", "--priority", "high"]
        procs = [
            await asyncio.create_subprocess_exec(
                *command, cwd=Path(__file__).parent, env=env,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            await asyncio.sleep(2)
            queue = await create_queue(URL)
            for n in range(repeat, 2 * repeat):
                manager = BenchManager(queue, import_path="fanout_workers:BenchManager")
                seconds = await run_once(manager, n)
                print(f"arq, {workers} workers: {FOLLOWERS} feeds in {seconds:.3f} s "
                      f"= {FOLLOWERS / seconds:,.0f}/s")
            await queue.aclose()
        finally:
            for proc in procs:
                proc.terminate()
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in procs)), timeout=30)
    finally:
        await FollowerFeed.flush()
        await UserFeed.flush()
        await asyncfeeds.aclose()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--followers", type=int, default=FOLLOWERS)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--chunk", type=int, default=BenchManager.fanout_chunk_size)
    parser.add_argument("--chunks-per-job", type=int, default=BenchManager.fanout_chunks_per_job)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    wanted = (args.followers, args.chunk, args.chunks_per_job)
    if wanted != (FOLLOWERS, BenchManager.fanout_chunk_size, BenchManager.fanout_chunks_per_job):
        os.environ["FANOUT_BENCH_FOLLOWERS"] = str(args.followers)
        os.environ["FANOUT_BENCH_CHUNK"] = str(args.chunk)
        os.environ["FANOUT_BENCH_CHUNKS_PER_JOB"] = str(args.chunks_per_job)
        os.execv(sys.executable, [sys.executable, *sys.argv])
    asyncio.run(main(args.workers, args.repeat))
