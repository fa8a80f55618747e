"""Fanout jobs: the plain-data payload a chunk travels in, its id, and the arq job function.

A payload is JSON (never pickle): the manager's import path, the feed class's
name in ``Manager.feed_classes``, the operation, the version of the manager
call, the chunk of user ids and the serialised activities (ids only for a
removal). The job id is a hash of that work, version included: the same chunk
of the same call enqueued twice while queued or running runs once, while a
later call's job is never mistaken for an earlier one's.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from arq import Retry
from redis.exceptions import RedisError

from ..activity import Activity
from ..types import OPERATIONS, Operation
from ..versions import call_version
from . import deadletters
from .lease import keep_in_progress
from .stats import WorkerStats

if TYPE_CHECKING:
    from .manager import Manager

logger = logging.getLogger(__name__)

JOB_FUNCTION = "asyncfeeds_fanout"
PAYLOAD_VERSION = 2


class JobPayloadError(ValueError):
    """A job payload this worker cannot run (malformed, or naming an unknown manager or feed)."""


@dataclass(frozen=True, slots=True)
class FanoutJob:
    """One chunk of a fanout: an operation on a few activities for a few users' feeds."""

    manager_path: str
    feed_name: str
    operation: Operation
    user_ids: Sequence[int | str]
    activities: Sequence[Activity | str]
    version: int
    """The version of the manager call: storage applies the job only if nothing newer was."""

    @property
    def activity_ids(self) -> list[str]:
        """The ids of the activities the job carries."""
        return [a if isinstance(a, str) else a.activity_id for a in self.activities]

    @property
    def job_id(self) -> str:
        """Deterministic arq job id: same work, same id."""
        work = [self.manager_path, self.feed_name, self.operation, self.version,
                self.activity_ids, list(self.user_ids)]
        digest = hashlib.blake2b(orjson.dumps(work), digest_size=16).hexdigest()
        return f"asyncfeeds:{self.operation}:{digest}"


def dumps(value: Any) -> bytes:
    """arq's job serializer: JSON bytes (exceptions in stored results become their repr)."""
    return orjson.dumps(value, default=_plain)


def loads(raw: bytes | str) -> Any:
    """arq's job deserializer."""
    return orjson.loads(raw)


def _plain(value: Any) -> Any:
    if isinstance(value, BaseException):
        return repr(value)
    raise TypeError(f"{type(value).__name__} is not plain data")


def encode(job: FanoutJob, feed_class: type[Any]) -> dict[str, Any]:
    """The JSON-ready payload of a job; activities are written with the feed's own codec."""
    if job.operation == "remove":
        activities: list[Any] = job.activity_ids
    else:
        serializer = feed_class.get_serializer()
        activities = [serializer.to_data(a) for a in job.activities]
    return {
        "v": PAYLOAD_VERSION,
        "manager": job.manager_path,
        "feed": job.feed_name,
        "op": job.operation,
        "version": job.version,
        "users": list(job.user_ids),
        "activities": activities,
    }


def decode(manager: Manager, payload: Any) -> tuple[FanoutJob, type[Any]]:
    """The job and feed class of a payload; ``JobPayloadError`` if it cannot be run."""
    try:
        if payload["v"] != PAYLOAD_VERSION:
            raise JobPayloadError(f"unsupported payload version {payload['v']!r}")
        operation = _operation(payload["op"])
        feed_class = manager.feed_classes.get(payload["feed"])
        if feed_class is None:
            raise JobPayloadError(
                f"{type(manager).__name__} has no feed class named {payload['feed']!r}"
            )
        raw = payload["activities"]
        if operation == "remove":
            activities: list[Any] = [str(i) for i in raw]
        else:
            serializer = feed_class.get_serializer()
            activities = [serializer.from_data(a) for a in raw]
        version = payload["version"]
        if isinstance(version, bool) or not isinstance(version, int) or version < 0:
            raise JobPayloadError(f"invalid call version {version!r}")
        job = FanoutJob(payload["manager"], payload["feed"], operation, list(payload["users"]),
                        activities, version)
    except JobPayloadError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise JobPayloadError(f"malformed fanout payload: {exc}") from exc
    return job, feed_class


def _operation(value: object) -> Operation:
    for operation in OPERATIONS:
        if value == operation:
            return operation
    raise JobPayloadError(f"unknown fanout operation {value!r}")


async def execute(manager: Manager, job: FanoutJob, feed_class: type[Any]) -> int:
    """Run one chunk through ``manager.fanout`` at the version of the call that made it.

    Storage applies each write only if no newer call was applied to that activity
    in that feed, so jobs may run in any order, twice, or after a crash.
    """
    with call_version(job.version):
        return await manager.fanout(feed_class, job.user_ids, job.operation, job.activities)


async def asyncfeeds_fanout(ctx: dict[str, Any], payload: dict[str, Any]) -> int:
    """The arq job: run a chunk for the worker's own manager, retry it with backoff if the
    write failed, and keep it as a dead letter once its tries are used up."""
    manager = own_manager(ctx)
    try:
        resolve_manager(ctx, payload)
        job, feed_class = decode(manager, payload)
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
    if manager is None:
        raise RuntimeError("this arq worker was not built by asyncfeeds.worker.create_worker")
    return manager  # type: ignore[no-any-return]


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
    feed_class: type[Any], operation: str,
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
    feed_class: type[Any], operation: str,
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
