"""What the app was asked to do, kept on the run's Redis so the checker knows what to expect.

Before a post or a like is written, the app records it as attempted; once the
write returned, as done. A request that failed (Redis down mid-call) leaves an
attempted entry behind: the checker completes it by retrying the same call, as
a client retrying a 503 would (asyncfeeds promises such a retry completes the
write exactly), and then expects it everywhere.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import orjson

from asyncfeeds import Activity

POSTS = "load:ledger:posts"
POSTS_DONE = "load:ledger:posts:done"
LIKES = "load:ledger:likes"
LIKES_DONE = "load:ledger:likes:done"


@dataclass(frozen=True, slots=True)
class Entry:
    """One post (``owner`` = its author) or like (``owner`` = the liked pin's author)."""

    owner: int
    activity: Activity
    done: bool


async def attempt(redis: Any, key: str, owner: int, activity: Activity) -> None:
    """Record a write about to be made."""
    value = orjson.dumps({"owner": owner, "activity": activity.model_dump(mode="json")})
    await redis.hset(key, activity.activity_id, value)


async def finish(redis: Any, key: str, activity_id: str) -> None:
    """Record that the write of ``activity_id`` returned."""
    await redis.sadd(f"{key}:done", activity_id)


async def entries(redis: Any, key: str) -> dict[str, Entry]:
    """Every entry of a ledger by activity id."""
    done = {m.decode() for m in await redis.smembers(f"{key}:done")}
    found: dict[str, Entry] = {}
    for raw_id, raw in (await redis.hgetall(key)).items():
        data = orjson.loads(raw)
        activity_id = raw_id.decode()
        activity = Activity.model_validate(data["activity"])
        if activity.activity_id != activity_id:
            raise AssertionError(f"ledger entry {activity_id} rebuilds as {activity.activity_id}")
        found[activity_id] = Entry(int(data["owner"]), activity, activity_id in done)
    return found
