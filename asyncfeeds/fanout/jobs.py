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
import importlib
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import orjson
from arq import Retry

from ..activity import Activity
from ..versions import call_version

if TYPE_CHECKING:
    from .manager import Manager

logger = logging.getLogger("asyncfeeds.fanout")

JOB_FUNCTION = "asyncfeeds_fanout"
PAYLOAD_VERSION = 2
OPERATIONS = ("add", "remove", "update")


class JobPayloadError(ValueError):
    """A job payload this worker cannot run (malformed, or naming an unknown manager or feed)."""


@dataclass(frozen=True, slots=True)
class FanoutJob:
    """One chunk of a fanout: an operation on a few activities for a few users' feeds."""

    manager_path: str
    feed_name: str
    operation: str
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
        operation = payload["op"]
        if operation not in OPERATIONS:
            raise JobPayloadError(f"unknown fanout operation {operation!r}")
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


async def execute(manager: Manager, job: FanoutJob, feed_class: type[Any]) -> int:
    """Run one chunk through ``manager.fanout`` at the version of the call that made it.

    Storage applies each write only if no newer call was applied to that activity
    in that feed, so jobs may run in any order, twice, or after a crash.
    """
    with call_version(job.version):
        return await manager.fanout(feed_class, job.user_ids, job.operation, job.activities)


async def asyncfeeds_fanout(ctx: dict[str, Any], payload: dict[str, Any]) -> int:
    """The arq job: decode, run, and ask arq to retry with backoff if the write failed."""
    manager = resolve_manager(ctx, payload)
    job, feed_class = decode(manager, payload)
    try:
        async with asyncio.timeout(manager.job_timeout):
            return await execute(manager, job, feed_class)
    except Exception as exc:
        attempt = int(ctx.get("job_try") or 1)
        if attempt >= manager.max_tries:
            raise
        delay = manager.retry_delay * 2 ** (attempt - 1)
        logger.warning(
            "fanout %s to %s failed on try %d (%r); retrying in %.2fs",
            job.operation, feed_class.__name__, attempt, exc, delay,
        )
        manager.metrics.on_job_retry(feed_class, job.operation, attempt)
        raise Retry(defer=delay) from exc


def resolve_manager(ctx: dict[str, Any], payload: Any) -> Manager:
    """The worker's own manager if the payload names it, else the one its import path names."""
    own = ctx.get("asyncfeeds_manager")
    path = payload.get("manager") if isinstance(payload, dict) else None
    if not isinstance(path, str):
        raise JobPayloadError("fanout payload names no manager")
    if own is not None and own.import_path == path:
        return own
    loaded = ctx.setdefault("asyncfeeds_managers", {})
    if path not in loaded:
        loaded[path] = load_manager(path)
    return loaded[path]


def load_manager(path: str) -> Manager:
    """Import ``module:attr``: a Manager instance, or a Manager subclass to instantiate (eager)."""
    from .manager import Manager

    module_name, _, attr_path = path.partition(":")
    if not module_name or not attr_path:
        raise JobPayloadError(f"manager path {path!r} is not of the form module:attribute")
    try:
        target: Any = importlib.import_module(module_name)
        for attr in attr_path.split("."):
            target = getattr(target, attr)
    except (ImportError, AttributeError) as exc:
        raise JobPayloadError(f"cannot import manager {path!r}: {exc}") from exc
    if isinstance(target, type) and issubclass(target, Manager):
        target = target()
    if not isinstance(target, Manager):
        raise JobPayloadError(f"{path!r} is not an asyncfeeds Manager")
    return target
