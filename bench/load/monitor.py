"""Watching a load run: the fanout queues every second, their drain, and a killed worker's jobs.

The queue figures are those of ``asyncfeeds status`` (``asyncfeeds.fanout.status``):
per priority queue, jobs queued, in progress, waiting for a retry, dead, and
the oldest job's age. A sample taken while Redis is down is recorded as such.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

from asyncfeeds.fanout.status import QueueStatus, queue_status


@dataclass(frozen=True, slots=True)
class Sample:
    """The queues at ``at`` seconds into the run; ``queues`` is None if Redis did not answer."""

    at: float
    queues: dict[str, QueueStatus] | None

    @property
    def backlog(self) -> int | None:
        """Jobs not finished yet (queued, running or waiting for a retry), all queues."""
        if self.queues is None:
            return None
        return sum(q.queued + q.in_progress + q.retrying for q in self.queues.values())

    def as_dict(self) -> dict[str, Any]:
        queues = None if self.queues is None else {
            name: {"queued": q.queued, "in_progress": q.in_progress, "retrying": q.retrying,
                   "dead": q.dead, "oldest_age": q.oldest_age}
            for name, q in self.queues.items()
        }
        return {"at": round(self.at, 2), "queues": queues}


async def sample(manager: Any, redis: Any, at: float) -> Sample:
    """One reading of every queue of ``manager``."""
    try:
        statuses = await queue_status(manager, redis)
    except (RedisError, OSError):
        return Sample(at, None)
    return Sample(at, {p.value: s for p, s in statuses.items()})


def describe(s: Sample) -> str:
    """One line: ``12.0 s  high 0+1  low 345+10 (2 retrying)  dead 0  oldest 2.1 s``."""
    if s.queues is None:
        return f"{s.at:6.1f} s  Redis not answering"
    parts = []
    for name, q in s.queues.items():
        text = f"{name} {q.queued}+{q.in_progress}"
        if q.retrying:
            text += f" ({q.retrying} retrying)"
        parts.append(text)
    dead = sum(q.dead for q in s.queues.values())
    oldest = max(q.oldest_age for q in s.queues.values())
    return f"{s.at:6.1f} s  {'  '.join(parts)}  dead {dead}  oldest {oldest:.1f} s"


class Sampler:
    """Samples the queues every ``interval`` seconds until stopped."""

    def __init__(self, manager: Any, redis: Any, started: float, interval: float = 1.0,
                 echo: Callable[[str], None] | None = None) -> None:
        self.manager = manager
        self.redis = redis
        self.started = started
        self.interval = interval
        self.echo = echo
        self.samples: list[Sample] = []
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._run())

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _run(self) -> None:
        while True:
            tick = time.monotonic()
            reading = await sample(self.manager, self.redis, time.monotonic() - self.started)
            self.samples.append(reading)
            if self.echo is not None:
                self.echo(describe(reading))
            await asyncio.sleep(max(0.0, self.interval - (time.monotonic() - tick)))


async def drain(manager: Any, redis: Any, within: float) -> float | None:
    """Seconds until every queue is empty (None if not within ``within`` seconds)."""
    started = time.monotonic()
    while time.monotonic() - started < within:
        reading = await sample(manager, redis, 0)
        if reading.backlog == 0:
            return time.monotonic() - started
        await asyncio.sleep(0.2)
    return None


async def running_jobs(redis: Any, queue: str) -> set[str]:
    """Ids of the jobs of ``queue`` marked in progress right now."""
    marked = [key.decode()[len(in_progress_key_prefix):] async for key in
              redis.scan_iter(match=f"{in_progress_key_prefix}*", count=1000)]
    if not marked:
        return set()
    async with redis.pipeline(transaction=False) as pipe:
        for job_id in marked:
            pipe.zscore(queue, job_id)
        scores = await pipe.execute()
    return {job_id for job_id, score in zip(marked, scores, strict=True) if score is not None}


async def until_finished(
    manager: Any, redis: Any, job_ids: set[str], within: float
) -> float | None:
    """Seconds until none of ``job_ids`` is left in a queue (None if not within ``within``)."""
    started = time.monotonic()
    names = list(manager.queue_names.values())
    while time.monotonic() - started < within:
        try:
            async with redis.pipeline(transaction=False) as pipe:
                for job_id in job_ids:
                    for name in names:
                        pipe.zscore(name, job_id)
                left = [score for score in await pipe.execute() if score is not None]
        except (RedisError, OSError):
            left = [True]
        if not left:
            return time.monotonic() - started
        await asyncio.sleep(0.25)
    return None
