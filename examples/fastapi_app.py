"""A small FastAPI service on asyncfeeds: pins fan out to followers, likes notify the author.

FastAPI is not a dependency of asyncfeeds; install it next to it and serve the
app from the repository root:

    pip install fastapi uvicorn
    uvicorn examples.fastapi_app:app

It runs on the memory backend with an eager manager, so it needs no server. In
production, swap the ``Memory*`` base classes for ``Redis*`` (or ``Cassandra*``)
and give the manager an arq pool (README, "Workers").
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, HTTPException, Query
from pydantic import BaseModel, Field

import asyncfeeds
from asyncfeeds import (
    Activity,
    AggregatedActivity,
    FanoutPriority,
    Manager,
    MemoryAggregatedFeed,
    MemoryFeed,
    MemoryNotificationFeed,
    NotificationActivity,
    Verb,
    register_verb,
)
from asyncfeeds.verbs import Follow


@register_verb
class Pin(Verb):
    id = 5
    infinitive = "pin"
    past_tense = "pinned"


@register_verb
class Like(Verb):
    id = 6
    infinitive = "like"
    past_tense = "liked"


class PinFeed(MemoryFeed):
    key_format = "example:feed:{user_id}"


class AggregatedPinFeed(MemoryAggregatedFeed):
    key_format = "example:aggregated:{user_id}"


class UserPinFeed(MemoryFeed):
    key_format = "example:user:{user_id}"


class UserNotificationFeed(MemoryNotificationFeed):
    key_format = "example:notification:{user_id}"


# The social graph and the pins: your database in a real app.
followers: dict[int, set[int]] = defaultdict(set)
pins: dict[int, tuple[int, str]] = {}


class PinManager(Manager):
    """Fans pins out to followers; the first 100 followers get the high-priority queue."""

    feed_classes = {"normal": PinFeed, "aggregated": AggregatedPinFeed}
    user_feed_class = UserPinFeed

    async def get_user_follower_ids(self, user_id: int) -> dict[FanoutPriority, list[int]]:
        ids = sorted(followers[user_id])
        return {FanoutPriority.HIGH: ids[:100], FanoutPriority.LOW: ids[100:]}


manager = PinManager()


class NewPin(BaseModel):
    pin_id: int = Field(gt=0)
    title: str = Field(min_length=1, max_length=200)
    board: str = Field(min_length=1, max_length=100)


class MarkRead(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=100)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    await asyncfeeds.setup(PinFeed, AggregatedPinFeed, UserPinFeed, UserNotificationFeed)
    yield
    await asyncfeeds.aclose()


app = FastAPI(title="asyncfeeds example", lifespan=lifespan)


def activity_json(activity: Activity) -> dict[str, Any]:
    return {
        "id": activity.activity_id,
        "actor": activity.actor,
        "verb": activity.verb.infinitive,
        "object": activity.object,
        "time": activity.time.isoformat(),
        **activity.extra_context,
    }


def group_json(group: AggregatedActivity) -> dict[str, Any]:
    item = {
        "id": group.aggregated_id,
        "verb": group.verb.past_tense if group.verb else None,
        "actors": group.actor_ids,
        "actor_count": group.actor_count,
        "activity_count": group.activity_count,
        "updated_at": group.updated_at.isoformat() if group.updated_at else None,
        "titles": [a.extra_context.get("title") for a in group.last_activities],
    }
    if isinstance(group, NotificationActivity):
        item |= {"is_seen": group.is_seen, "is_read": group.is_read}
    return item


@app.post("/users/{user_id}/follow/{target_id}", status_code=204)
async def follow(user_id: int, target_id: int) -> None:
    if user_id == target_id:
        raise HTTPException(400, "users cannot follow themselves")
    followers[target_id].add(user_id)
    await manager.follow_user(user_id, target_id)
    await UserNotificationFeed(target_id).add(
        Activity(actor=user_id, verb=Follow, object=target_id)
    )


@app.delete("/users/{user_id}/follow/{target_id}", status_code=204)
async def unfollow(user_id: int, target_id: int) -> None:
    followers[target_id].discard(user_id)
    await manager.unfollow_user(user_id, target_id)


@app.post("/users/{user_id}/pins", status_code=201)
async def add_pin(user_id: int, pin: NewPin) -> dict[str, str]:
    if pin.pin_id in pins:
        raise HTTPException(409, f"pin {pin.pin_id} exists")
    activity = Activity(
        actor=user_id,
        verb=Pin,
        object=pin.pin_id,
        extra_context={"title": pin.title, "board": pin.board},
    )
    pins[pin.pin_id] = (user_id, pin.title)
    await manager.add_user_activity(user_id, activity)
    return {"id": activity.activity_id}


@app.post("/users/{user_id}/likes/{pin_id}", status_code=201)
async def like(user_id: int, pin_id: int) -> dict[str, str]:
    if pin_id not in pins:
        raise HTTPException(404, f"no pin {pin_id}")
    author, title = pins[pin_id]
    activity = Activity(actor=user_id, verb=Like, object=pin_id, extra_context={"title": title})
    await UserNotificationFeed(author).add(activity)
    return {"id": activity.activity_id}


@app.get("/users/{user_id}/feed")
async def read_feed(
    user_id: int,
    limit: int = Query(25, ge=1, le=100),
    before: str | None = Query(None, min_length=1, max_length=64),
) -> dict[str, Any]:
    """Newest first; pass the returned ``next`` as ``before`` for the next page."""
    feed = PinFeed(user_id)
    if before is not None:
        feed = feed.filter(activity_id__lt=before)
    activities = await feed[:limit]
    more = len(activities) == limit
    return {
        "items": [activity_json(a) for a in activities],
        "next": activities[-1].activity_id if more else None,
    }


@app.get("/users/{user_id}/feed/aggregated")
async def read_aggregated(user_id: int, limit: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    return {"items": [group_json(g) for g in await AggregatedPinFeed(user_id)[:limit]]}


@app.get("/users/{user_id}/notifications")
async def read_notifications(user_id: int) -> dict[str, Any]:
    feed = UserNotificationFeed(user_id)
    return {
        "unseen": await feed.count_unseen(),
        "unread": await feed.count_unread(),
        "items": [group_json(g) for g in await feed[:20]],
    }


@app.post("/users/{user_id}/notifications/seen", status_code=204)
async def mark_seen(user_id: int) -> None:
    await UserNotificationFeed(user_id).mark_all(seen=True)


@app.post("/users/{user_id}/notifications/read", status_code=204)
async def mark_read(user_id: int, body: MarkRead) -> None:
    await UserNotificationFeed(user_id).mark_activities(body.ids, seen=True, read=True)
