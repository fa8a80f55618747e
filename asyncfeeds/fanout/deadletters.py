"""Dead letters: fanout jobs that used up their tries, kept on a Redis stream until requeued.

The key (``Manager.dead_letter_key``, ``asyncfeeds:fanout:dead`` by default)
lives on the queue's Redis and is a stream rather than a list: every entry
gets a unique, time-ordered id, so a requeue removes exactly the entries it
has enqueued again (``XDEL`` by id) while workers keep adding new ones; it
pages through with ``XRANGE`` without taking anything out first, so a requeue
that dies half-way loses nothing; and the id tells when the job died.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

import orjson

DEAD_LETTER_KEY = "asyncfeeds:fanout:dead"
PAGE = 500


@dataclass(frozen=True, slots=True)
class DeadJob:
    """One dead letter: the job as it was queued, and why and when it was given up."""

    entry_id: str
    job_id: str
    function: str
    priority: str
    queue: str
    manager: str
    payload: Any
    error: str
    tries: int

    @property
    def died_at(self) -> float:
        """Unix time (seconds) the job was given up, from the stream entry's id."""
        return int(self.entry_id.split("-", 1)[0]) / 1000


@dataclass(slots=True)
class RequeueReport:
    """What ``requeue`` did: enqueued again, left because the job id is still queued
    or running, and left because another manager's worker should take them."""

    requeued: int = 0
    still_queued: int = 0
    other_manager: int = 0


async def bury(
    redis: Any,
    key: str,
    *,
    job_id: str,
    function: str,
    priority: str,
    queue: str,
    payload: Any,
    error: str,
    tries: int,
) -> str:
    """Keep a job that will not be tried again; returns the stream entry id."""
    manager = payload.get("manager") if isinstance(payload, dict) else None
    fields = {
        "job_id": job_id,
        "function": function,
        "priority": priority,
        "queue": queue,
        "manager": manager if isinstance(manager, str) else "",
        "payload": orjson.dumps(payload, default=repr),
        "error": error,
        "tries": str(tries),
    }
    entry_id = await redis.xadd(key, fields)
    return entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id)


async def dead_jobs(redis: Any, key: str) -> AsyncIterator[DeadJob]:
    """Every dead letter, oldest first, read a page at a time."""
    start = "-"
    while True:
        entries = await redis.xrange(key, min=start, max="+", count=PAGE)
        for entry_id, fields in entries:
            yield _parse(entry_id, fields)
        if len(entries) < PAGE:
            return
        last = entries[-1][0]
        start = "(" + (last.decode() if isinstance(last, bytes) else str(last))


def _parse(entry_id: Any, fields: Mapping[Any, Any]) -> DeadJob:
    def text(name: str) -> str:
        value = fields.get(name.encode(), fields.get(name, b""))
        return value.decode() if isinstance(value, bytes) else str(value)

    try:
        payload = orjson.loads(text("payload"))
    except orjson.JSONDecodeError:
        payload = None
    try:
        tries = int(text("tries"))
    except ValueError:
        tries = 0
    return DeadJob(
        entry_id=entry_id.decode() if isinstance(entry_id, bytes) else str(entry_id),
        job_id=text("job_id"),
        function=text("function"),
        priority=text("priority"),
        queue=text("queue"),
        manager=text("manager"),
        payload=payload,
        error=text("error"),
        tries=tries,
    )


async def count_by_priority(redis: Any, key: str) -> dict[str, int]:
    """How many dead letters each priority holds."""
    counts: dict[str, int] = {}
    async for dead in dead_jobs(redis, key):
        counts[dead.priority] = counts.get(dead.priority, 0) + 1
    return counts


async def requeue(
    redis: Any, key: str, *, manager_path: str, queue_names: Mapping[str, str]
) -> RequeueReport:
    """Enqueue the dead letters of ``manager_path`` again; each leaves the stream once queued.

    ``redis`` must be an arq pool writing JSON jobs (``create_queue``). A job
    id that is still queued or running is left in place (a later requeue takes
    it once that job is gone), as are jobs naming another manager.
    """
    report = RequeueReport()
    async for dead in dead_jobs(redis, key):
        queue = queue_names.get(dead.priority)
        if dead.manager != manager_path or queue is None or dead.payload is None:
            report.other_manager += 1
            continue
        job = await redis.enqueue_job(dead.function, dead.payload, _job_id=dead.job_id,
                                      _queue_name=queue)
        if job is None:
            report.still_queued += 1
            continue
        await redis.xdel(key, dead.entry_id)
        report.requeued += 1
    return report
