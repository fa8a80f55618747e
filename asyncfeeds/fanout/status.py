"""What the fanout queues hold: jobs queued, running, waiting for a retry, dead; backlog age.

Read from arq's own keys: a job stays in its queue's sorted set (scored by the
time it is due) until it finishes; ``arq:in-progress:<id>`` marks it running
and ``arq:retry:<id>`` counts its tries, so a job in the set that is not
running but was tried before is waiting for another try. Dead letters are
counted on the manager's dead-letter stream. Reading is O(jobs queued).
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from arq.constants import in_progress_key_prefix, retry_key_prefix

from . import deadletters

if TYPE_CHECKING:
    from .manager import FanoutPriority, Manager

PAGE = 1000


@dataclass(frozen=True, slots=True)
class QueueStatus:
    """One priority queue at one moment."""

    queue: str
    queued: int
    """Jobs waiting for their first try."""
    in_progress: int
    """Jobs a worker is running."""
    retrying: int
    """Jobs tried before and waiting for another try (failed, or their worker died)."""
    dead: int
    """Dead letters of this priority."""
    oldest_age: float
    """Seconds since the oldest job of the queue became due (0 when none is)."""


async def queue_status(manager: Manager, redis: Any) -> dict[FanoutPriority, QueueStatus]:
    """The status of each of ``manager``'s priority queues, read from the queue's Redis."""
    dead = await deadletters.count_by_priority(redis, manager.dead_letter_key)
    return {
        priority: await _read_queue(redis, name, dead.get(priority.value, 0))
        for priority, name in manager.queue_names.items()
    }


async def report_queue_status(manager: Manager, redis: Any) -> dict[FanoutPriority, QueueStatus]:
    """Read the queues' status and hand each one to ``manager.metrics.on_queue_status``."""
    statuses = await queue_status(manager, redis)
    for priority, status in statuses.items():
        manager.metrics.on_queue_status(
            priority.value,
            queued=status.queued,
            in_progress=status.in_progress,
            retrying=status.retrying,
            dead=status.dead,
            oldest_age=status.oldest_age,
        )
    return statuses


async def _read_queue(redis: Any, name: str, dead: int) -> QueueStatus:
    now_ms = time.time() * 1000
    total = in_progress = retrying = 0
    oldest_age = 0.0
    start = 0
    while True:
        page = await redis.zrange(name, start, start + PAGE - 1, withscores=True)
        if not page:
            break
        if start == 0 and page[0][1] <= now_ms:  # the set is ordered by due time
            oldest_age = (now_ms - page[0][1]) / 1000
        async with redis.pipeline(transaction=False) as pipe:
            for raw_id, _ in page:
                job_id = raw_id.decode() if isinstance(raw_id, bytes) else str(raw_id)
                pipe.exists(in_progress_key_prefix + job_id)
                pipe.exists(retry_key_prefix + job_id)
            flags = await pipe.execute()
        for running, tried in zip(flags[::2], flags[1::2], strict=True):
            if running:
                in_progress += 1
            elif tried:
                retrying += 1
        total += len(page)
        if len(page) < PAGE:
            break
        start += PAGE
    return QueueStatus(
        queue=name,
        queued=total - in_progress - retrying,
        in_progress=in_progress,
        retrying=retrying,
        dead=dead,
        oldest_age=round(oldest_age, 3),
    )
