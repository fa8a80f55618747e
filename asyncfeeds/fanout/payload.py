"""The plain-data payload a fanout chunk travels in, its codec and its job id.

A payload is JSON (never pickle): the manager's import path, the feed class's
name in ``Manager.feed_classes``, the operation, the version of the manager
call, the chunk of user ids and the serialised activities (ids only for a
removal). The job id is a hash of that work, version included: the same chunk
of the same call enqueued twice while queued or running runs once, while a
later call's job is never mistaken for an earlier one's. This module knows feed
classes, never the manager: it is the bottom layer of ``asyncfeeds.fanout``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import orjson

from ..activity import Activity
from ..feeds.base import Feed
from ..types import OPERATIONS, Operation, UserId

JOB_FUNCTION = "asyncfeeds_fanout"
"""The name of the arq job function every fanout job runs."""
PAYLOAD_VERSION = 2

FeedClasses = Mapping[str, type[Feed[Any]]]


class JobPayloadError(ValueError):
    """A job payload this worker cannot run (malformed, or naming an unknown manager or feed)."""


RELEASE_PREFIX = "asyncfeeds:release:"
"""Start of the Redis set tracking the jobs of a removal (see ``fanout.release``)."""


@dataclass(frozen=True, slots=True)
class FanoutJob:
    """One chunk of a fanout: an operation on a few activities for a few users' feeds."""

    manager_path: str
    feed_name: str
    operation: Operation
    user_ids: Sequence[UserId]
    activities: Sequence[Activity | str]
    version: int
    """The version of the manager call: storage applies the job only if nothing newer was."""
    release: str | None = None
    """For a removal in arq mode: the set tracking its jobs (see ``release``); the last job
    to run deletes the activity's data."""

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


def encode(job: FanoutJob, feed_class: type[Feed[Any]]) -> dict[str, Any]:
    """The JSON-ready payload of a job; activities are written with the feed's own codec."""
    if job.operation == "remove":
        activities: list[Any] = job.activity_ids
    else:
        serializer = feed_class.get_serializer()
        activities = [serializer.to_data(_whole(a, job.operation)) for a in job.activities]
    return {
        "v": PAYLOAD_VERSION,
        "manager": job.manager_path,
        "feed": job.feed_name,
        "op": job.operation,
        "version": job.version,
        "release": job.release,
        "users": list(job.user_ids),
        "activities": activities,
    }


def decode(payload: Any, feed_classes: FeedClasses) -> tuple[FanoutJob, type[Feed[Any]]]:
    """The job and feed class (from ``feed_classes``, by name) of a payload;
    ``JobPayloadError`` if it cannot be run."""
    try:
        if payload["v"] != PAYLOAD_VERSION:
            raise JobPayloadError(f"unsupported payload version {payload['v']!r}")
        operation = _operation(payload["op"])
        feed_class = feed_classes.get(payload["feed"])
        if feed_class is None:
            raise JobPayloadError(
                f"manager {payload.get('manager')!r} has no feed class named {payload['feed']!r}"
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
        release = payload.get("release")
        if release is not None and not (
            isinstance(release, str) and release.startswith(RELEASE_PREFIX)
        ):
            raise JobPayloadError(f"invalid release key {release!r}")
        job = FanoutJob(payload["manager"], payload["feed"], operation, list(payload["users"]),
                        activities, version, release)
    except JobPayloadError:
        raise
    except (KeyError, TypeError, ValueError) as exc:
        raise JobPayloadError(f"malformed fanout payload: {exc}") from exc
    return job, feed_class


def _whole(item: Activity | str, operation: Operation) -> Activity:
    if isinstance(item, str):
        raise TypeError(f"a fanout {operation!r} job carries activities, not ids ({item!r})")
    return item


def _operation(value: object) -> Operation:
    for operation in OPERATIONS:
        if value == operation:
            return operation
    raise JobPayloadError(f"unknown fanout operation {value!r}")
