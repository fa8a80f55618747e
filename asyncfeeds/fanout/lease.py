"""Keeping a running job's in-progress mark alive, so a dead worker's job is redelivered soon.

arq marks a job it starts with ``arq:in-progress:<job id>`` and no other worker
starts it while that key exists; a worker killed mid-job leaves the key to
expire. Instead of arq's long expiry (job timeout + 10 s), the running job
renews a short one (the lease) every third of it: while the worker lives the
mark never lapses, and once it dies the job is free again within one lease.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from typing import Any

from arq.constants import in_progress_key_prefix
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)


_beats: set[asyncio.Task[None]] = set()
"""Renewal tasks still finishing their last command after their job ended."""


@contextlib.asynccontextmanager
async def keep_in_progress(redis: Any, job_id: str | None, lease: float) -> AsyncIterator[None]:
    """Renew the job's in-progress mark to ``lease`` seconds now and every ``lease / 3`` s.

    A renewal that fails (Redis away) is logged and tried again at the next
    beat; it never fails the job. Without a Redis or job id it does nothing.
    The renewals end through an event rather than by cancelling a Redis command
    in flight (redis-py on Python 3.11 can swallow such a cancellation), and
    leaving never waits for them: a last renewal landing after arq removed the
    mark does nothing, as ``PEXPIRE`` creates no key.
    """
    if redis is None or not job_id:
        yield
        return
    key = in_progress_key_prefix + job_id
    lease_ms = max(int(lease * 1000), 1)
    done = asyncio.Event()

    async def beat() -> None:
        while not done.is_set():
            try:
                await redis.pexpire(key, lease_ms)
            except (RedisError, OSError) as error:
                logger.warning("could not renew the in-progress mark of job %s: %s", job_id, error)
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(lease / 3):
                    await done.wait()

    task = asyncio.create_task(beat())
    _beats.add(task)
    task.add_done_callback(_beats.discard)
    try:
        yield
    finally:
        done.set()
