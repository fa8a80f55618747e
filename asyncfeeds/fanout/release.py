"""Deleting a removed activity's data once every job of its removal has run (arq mode).

The manager records the ids of a removal's jobs in a Redis set on the queue's
Redis before enqueueing them, then seals the set; each job takes its id out
when it has run. Whoever leaves the sealed set empty (the last job, or the
manager if the jobs were faster) deletes the activity's data, exactly once. A
job that runs twice takes its id out once; a dead job keeps the data alive
until it is requeued and runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .payload import RELEASE_PREFIX

SEALED = "~sealed"
KEEP_SECONDS = 7 * 86_400
"""How long an unfinished removal is tracked (jobs dead for longer keep their data)."""

_TRACK = """
redis.call('SADD', KEYS[1], unpack(ARGV, 2))
redis.call('EXPIRE', KEYS[1], ARGV[1])
return 1
"""

_SEAL = """
redis.call('SADD', KEYS[1], ARGV[1])
redis.call('EXPIRE', KEYS[1], ARGV[2])
if redis.call('SCARD', KEYS[1]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""

_FINISH = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 1 and redis.call('SCARD', KEYS[1]) == 1
    and redis.call('SISMEMBER', KEYS[1], ARGV[2]) == 1 then
  redis.call('DEL', KEYS[1])
  return 1
end
return 0
"""


def release_key(version: int) -> str:
    """The set tracking the jobs of the removal made at ``version``."""
    return f"{RELEASE_PREFIX}{version}"


async def track(redis: Any, key: str, job_ids: Sequence[str]) -> None:
    """Record jobs of a removal before they are enqueued."""
    if job_ids:
        await redis.eval(_TRACK, 1, key, KEEP_SECONDS, *job_ids)


async def seal(redis: Any, key: str) -> bool:
    """Every job is recorded; True if they all ran already (the caller deletes the data)."""
    return bool(await redis.eval(_SEAL, 1, key, SEALED, KEEP_SECONDS))


async def finish(redis: Any, key: str, job_id: str) -> bool:
    """A job ran; True if it was the last of a sealed removal (it deletes the data)."""
    return bool(await redis.eval(_FINISH, 1, key, job_id, SEALED))
