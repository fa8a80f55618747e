"""The arq job function: run a fanout chunk for the worker's own manager.

The job resolves the manager the worker was started with (a payload naming any
other import path is refused without importing anything), decodes the payload
(``payload``), runs the chunk through ``Manager.fanout`` at the version of the
call that made it, and retries a failed write with backoff or keeps it as a dead
letter once its tries are used up.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from arq import Retry
from redis.exceptions import RedisError

from ..feeds.base import Feed
from ..versions import call_version
from . import deadletters, release
from .lease import keep_in_progress
from .manager import Manager
from .payload import JOB_FUNCTION, FanoutJob, JobPayloadError, decode
from .stats import WorkerStats

logger = logging.getLogger(__name__)


async def execute(manager: Manager, job: FanoutJob, feed_class: type[Feed[Any]]) -> int:
    """Run a job's chunks through ``manager.fanout`` at the version of the call that made it.

    Storage applies each write only if no newer call was applied to that activity
    in that feed, so jobs and their chunks may run in any order, twice, or after a crash.
    """
    with call_version(job.version):
        return await manager.fanout_chunks(
            feed_class, job.user_ids, job.operation, job.activities
        )


async def asyncfeeds_fanout(ctx: dict[str, Any], payload: dict[str, Any]) -> int:
    """The arq job: run a chunk for the worker's own manager, retry it with backoff if the
    write failed, and keep it as a dead letter once its tries are used up."""
    manager = own_manager(ctx)
    try:
        resolve_manager(ctx, payload)
        job, feed_class = decode(payload, manager.feed_classes)
    except JobPayloadError as exc:
        return await refuse(ctx, manager, payload, exc)
    attempt = int(ctx.get("job_try") or 1)
    if attempt > manager.max_tries:  # its last try was cut short (worker killed, Redis lost)
        return await bury(ctx, manager, payload, "interrupted on its last try", attempt,
                          feed_class, job.operation)
    started = time.perf_counter()
    try:
        async with keep_in_progress(ctx.get("redis"), ctx.get("job_id"), manager.job_lease), \
                asyncio.timeout(manager.job_timeout):
            written = await execute(manager, job, feed_class)
            if job.release is not None and await release.finish(
                ctx["redis"], job.release, job.job_id
            ):
                await manager.release_activity_data(job.activity_ids)
    except Exception as exc:
        return await retry_or_bury(ctx, manager, payload, exc, feed_class, job.operation)
    _stats(ctx).done += 1
    logger.info(
        "%s %s try %d: %s %d %s feeds (%d activities), %d written in %.3f s",
        JOB_FUNCTION, ctx.get("job_id"), attempt, job.operation, len(job.user_ids),
        feed_class.__name__, len(job.activities), written, time.perf_counter() - started,
    )
    return written


# -- which manager runs a job ------------------------------------------------------------------
class JobRefusedError(JobPayloadError):
    """A payload names a manager other than the one this worker was started with."""


def own_manager(ctx: dict[str, Any]) -> Manager:
    """The manager the worker was started with (``create_worker`` puts it in arq's ctx)."""
    manager = ctx.get("asyncfeeds_manager")
    if not isinstance(manager, Manager):
        raise RuntimeError("this arq worker was not built by asyncfeeds.worker.create_worker")
    return manager


def resolve_manager(ctx: dict[str, Any], payload: Any) -> Manager:
    """The worker's own manager if the payload names its import path; nothing is imported.

    Any other path is refused (``JobRefusedError``): a queue's content must never
    make a worker load code.
    """
    own = own_manager(ctx)
    path = payload.get("manager") if isinstance(payload, dict) else None
    if path != own.import_path:
        raise JobRefusedError(
            f"the job names manager {path!r}; this worker runs only {own.import_path!r}"
        )
    return own


# -- retries and dead letters ------------------------------------------------------------------
async def retry_or_bury(
    ctx: dict[str, Any], manager: Manager, payload: Any, exc: Exception,
    feed_class: type[Feed[Any]], operation: str,
) -> int:
    """Ask arq to run the job again after a backoff, or keep it dead after its last try."""
    attempt = int(ctx.get("job_try") or 1)
    if attempt < manager.max_tries:
        delay = manager.retry_delay * 2 ** (attempt - 1)
        logger.warning(
            "%s %s try %d: %s to %s failed (%r); retrying in %.2f s",
            JOB_FUNCTION, ctx.get("job_id"), attempt, operation, feed_class.__name__, exc, delay,
        )
        manager.metrics.on_job_retry(feed_class, operation, attempt)
        _stats(ctx).retried += 1
        raise Retry(defer=delay) from exc
    return await bury(ctx, manager, payload, repr(exc), attempt, feed_class, operation)


async def refuse(ctx: dict[str, Any], manager: Manager, payload: Any, exc: Exception) -> int:
    """Keep a job this worker must not run (foreign manager, malformed payload) as dead."""
    reason = "foreign_manager" if isinstance(exc, JobRefusedError) else "bad_payload"
    entry = await _keep_dead(ctx, manager, payload, f"refused: {exc}",
                             int(ctx.get("job_try") or 1))
    _stats(ctx).refused += 1
    manager.metrics.on_job_refused(str(ctx.get("asyncfeeds_priority", "")), reason)
    logger.error("%s %s refused: %s; kept as dead letter %s on %s", JOB_FUNCTION,
                 ctx.get("job_id"), exc, entry, manager.dead_letter_key)
    return 0


async def bury(
    ctx: dict[str, Any], manager: Manager, payload: Any, error: str, tries: int,
    feed_class: type[Feed[Any]], operation: str,
) -> int:
    """Keep a job that used up its tries on the dead letters, and say so at ERROR."""
    entry = await _keep_dead(ctx, manager, payload, error, tries)
    _stats(ctx).dead += 1
    manager.metrics.on_job_dead(feed_class, operation, tries)
    logger.error(
        "%s %s gave up after %d tries (%s); kept as dead letter %s on %s",
        JOB_FUNCTION, ctx.get("job_id"), tries, error, entry, manager.dead_letter_key,
    )
    return 0


async def _keep_dead(
    ctx: dict[str, Any], manager: Manager, payload: Any, error: str, tries: int
) -> str | None:
    """Add the dead letter; if Redis will not take it, leave the job to arq for another try."""
    redis = ctx.get("redis")
    if redis is None:
        return None
    try:
        return await deadletters.bury(
            redis, manager.dead_letter_key,
            job_id=str(ctx.get("job_id")), function=JOB_FUNCTION,
            priority=str(ctx.get("asyncfeeds_priority", "")),
            queue=str(ctx.get("asyncfeeds_queue", "")), payload=payload, error=error, tries=tries,
        )
    except (RedisError, OSError) as store_error:
        logger.warning("%s %s: cannot store the dead letter yet (%s); arq will try again",
                       JOB_FUNCTION, ctx.get("job_id"), store_error)
        raise Retry(defer=manager.retry_delay) from store_error


def _stats(ctx: dict[str, Any]) -> WorkerStats:
    stats = ctx.get("asyncfeeds_stats")
    return stats if isinstance(stats, WorkerStats) else WorkerStats()
