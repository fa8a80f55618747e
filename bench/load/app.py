"""The load test's HTTP app: FastAPI on Redis, follower feeds written by arq workers.

    LOAD_REDIS_URL=redis://127.0.0.1:PORT/0 uvicorn app:app --app-dir bench/load

Endpoints: ``GET /feed/{user}``, ``GET /aggregated/{user}``, ``POST /posts/{user}``
(a pin fanned out to the author's followers), ``POST /likes/{user}`` (the user
likes a pin of their feed: a notification for its author) and
``GET /notifications/{user}`` (the newest groups and the unseen badge; the groups
shown are marked seen). A Redis that is down or hung answers 503 naming it.
"""

from __future__ import annotations

import random
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import feeds
import ledger
import redis.asyncio as redis_asyncio
from fastapi import FastAPI, Query, Request
from fastapi.responses import JSONResponse
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError

import asyncfeeds
from asyncfeeds import Activity, AggregatedActivity, StorageUnavailableError
from asyncfeeds.fanout import create_queue

state: dict[str, Any] = {}


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    feeds.configure()
    await asyncfeeds.ping()
    feeds.manager.queue = await create_queue(feeds.redis_url())
    state["ledger"] = redis_asyncio.Redis.from_url(
        feeds.redis_url(), socket_connect_timeout=2, socket_timeout=5
    )
    try:
        yield
    finally:
        await feeds.manager.queue.aclose()
        feeds.manager.queue = None
        await state.pop("ledger").aclose()
        await asyncfeeds.aclose()


app = FastAPI(title="asyncfeeds load app", lifespan=lifespan)


@app.exception_handler(StorageUnavailableError)
async def storage_unavailable(request: Request, exc: StorageUnavailableError) -> JSONResponse:
    return JSONResponse({"detail": str(exc)}, status_code=503)


@app.exception_handler(RedisConnectionError)
@app.exception_handler(RedisTimeoutError)
async def ledger_unavailable(request: Request, exc: Exception) -> JSONResponse:
    return JSONResponse({"detail": f"ledger Redis {feeds.redis_url()}: {exc}"}, status_code=503)


@app.get("/health")
async def health() -> dict[str, str]:
    await asyncfeeds.ping()
    return {"status": "ok"}


@app.get("/feed/{user_id}")
async def read_feed(
    user_id: int, limit: int = Query(25, ge=1, le=100), cursor: str | None = None
) -> dict[str, Any]:
    page = await feeds.FlatFeed(user_id).page(limit=limit, cursor=cursor)
    return {"items": [a.model_dump(mode="json") for a in page.items],
            "next_cursor": page.next_cursor}


@app.get("/aggregated/{user_id}")
async def read_aggregated(user_id: int, limit: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    page = await feeds.AggregatedFeed(user_id).page(limit=limit)
    return {"items": [_group(g) for g in page.items], "next_cursor": page.next_cursor}


@app.post("/posts/{user_id}", status_code=201)
async def post(user_id: int) -> dict[str, str]:
    pin = Activity(actor=user_id, verb=feeds.Pin, object=uuid.uuid4().hex,
                   extra_context={"title": f"pin by {user_id}"})
    await ledger.attempt(state["ledger"], ledger.POSTS, user_id, pin)
    await feeds.manager.add_user_activity(user_id, pin)
    await ledger.finish(state["ledger"], ledger.POSTS, pin.activity_id)
    return {"id": pin.activity_id}


@app.post("/likes/{user_id}")
async def like(user_id: int) -> dict[str, str | None]:
    """Like a pin of the user's own feed (someone else's): the pin's author is notified."""
    page = await feeds.FlatFeed(user_id).page(limit=10)
    pins = [a for a in page.items if a.actor != user_id]
    if not pins:
        return {"id": None}
    pin = random.choice(pins)
    author = int(pin.actor)
    liked = Activity(actor=user_id, verb=feeds.Like, object=pin.object, target=author)
    await ledger.attempt(state["ledger"], ledger.LIKES, author, liked)
    await feeds.NotificationFeed(author).add(liked)
    await ledger.finish(state["ledger"], ledger.LIKES, liked.activity_id)
    return {"id": liked.activity_id}


@app.get("/notifications/{user_id}")
async def notifications(user_id: int, limit: int = Query(10, ge=1, le=100)) -> dict[str, Any]:
    """The newest groups and the badge; the groups shown are marked seen."""
    feed = feeds.NotificationFeed(user_id)
    page = await feed.page(limit=limit)
    unseen = await feed.count_unseen()
    shown = [g.aggregated_id for g in page.items if not g.is_seen]
    if shown:
        await feed.mark_activities(shown, seen=True)
    return {"items": [_group(g) for g in page.items], "unseen": unseen}


def _group(group: AggregatedActivity) -> dict[str, Any]:
    return group.model_dump(mode="json", include={
        "aggregated_id", "activity_count", "actor_count", "verb", "is_seen", "is_read",
    })
