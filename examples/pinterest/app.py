"""A Pinterest-like HTTP API on FastAPI and asyncfeeds.

Pins fan out to followers' flat and aggregated feeds; likes and follows land in
notification feeds, whose unseen/unread badge is pushed live over server-sent
events and a WebSocket. Every feed pages with ``?limit=&cursor=``.

From the repository root, after ``pip install -e ".[examples]"``::

    uvicorn examples.pinterest.app:app                  # memory, eager: no server needed

    export PINTEREST_BACKEND=redis PINTEREST_FANOUT=arq # Redis, fanout by workers
    uvicorn examples.pinterest.app:app
    asyncfeeds worker --manager examples.pinterest.feeds:PinManager --priority high \\
        --config examples.pinterest.feeds:configure     # and one more with --priority low

``make run-example`` starts the second set-up natively, ``docker compose --profile
app up`` in containers. Environment (read by ``feeds.py``, so workers see the same):

- ``PINTEREST_BACKEND``: ``memory`` (default: one process, no server), ``redis`` or
  ``cassandra``.
- ``PINTEREST_FANOUT``: ``eager`` (default: followers' feeds are written before the
  request returns) or ``arq`` (jobs for ``asyncfeeds worker`` processes).
- ``PINTEREST_REDIS_URL``: the Redis of the feeds and of the fanout queue
  (default ``redis://127.0.0.1:6379/0``).
- ``PINTEREST_CASSANDRA_HOSTS`` (comma list, default ``127.0.0.1``) and
  ``PINTEREST_CASSANDRA_KEYSPACE`` (default ``pinterest``).
- ``PINTEREST_NAMESPACE``: the prefix of every key and queue name (default ``pinterest``).
- ``PINTEREST_HEARTBEAT``: seconds between heartbeats on an idle live stream (default 15).
"""

import asyncio
import logging
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from datetime import UTC, datetime
from typing import Annotated

from fastapi import (
    Depends,
    FastAPI,
    HTTPException,
    Path,
    Query,
    Request,
    WebSocket,
    WebSocketDisconnect,
)
from fastapi.requests import HTTPConnection
from fastapi.responses import JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent
from pydantic import BaseModel, Field

import asyncfeeds
from asyncfeeds import (
    Activity,
    AggregatedActivity,
    Counts,
    NotificationActivity,
    Page,
    StorageUnavailableError,
    Subscription,
)
from asyncfeeds.fanout import create_queue
from asyncfeeds.verbs import Follow

from .feeds import (
    BACKEND,
    FANOUT,
    FEED_CLASSES,
    HEARTBEAT,
    AggregatedPinFeed,
    Like,
    Pin,
    PinFeed,
    PinManager,
    Social,
    UserNotificationFeed,
    configure,
)

logger = logging.getLogger(__name__)


@asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Connect and check every server before the first request; close them on shutdown."""
    configure()
    await asyncfeeds.ping()  # a server that is down stops the start here, named
    await asyncfeeds.setup(*FEED_CLASSES)  # Cassandra's tables; nothing for Redis or memory
    app.state.social = Social()
    app.state.manager = manager = PinManager(social=app.state.social)
    if FANOUT == "arq":
        manager.queue = await create_queue()  # the Redis configure() named
    try:
        yield
    finally:
        if manager.queue is not None:
            await manager.queue.aclose()
        await asyncfeeds.aclose()


app = FastAPI(title="asyncfeeds Pinterest example", lifespan=lifespan)


@app.exception_handler(StorageUnavailableError)
async def storage_unavailable(
    connection: HTTPConnection, error: StorageUnavailableError
) -> JSONResponse:
    """A server that is down or hung: 503 (WebSocket handshakes too), so clients retry later."""
    logger.warning("%s: %s", connection.url.path, error)
    return JSONResponse(
        {"detail": "the feeds are unavailable, retry later"},
        status_code=503,
        headers={"Retry-After": "5"},
    )


# -- dependencies ---------------------------------------------------------------------


def get_manager(request: Request) -> PinManager:
    manager: PinManager = request.app.state.manager
    return manager


def get_social(request: Request) -> Social:
    social: Social = request.app.state.social
    return social


ManagerDep = Annotated[PinManager, Depends(get_manager)]
SocialDep = Annotated[Social, Depends(get_social)]
UserId = Annotated[int, Path(gt=0)]


def timeline(user_id: UserId, social: SocialDep) -> PinFeed:
    """The user's feed; reading it makes the user active, so new pins reach them first."""
    social.last_read[user_id] = datetime.now(UTC)
    return PinFeed(user_id)


def aggregated_timeline(user_id: UserId) -> AggregatedPinFeed:
    return AggregatedPinFeed(user_id)


def notifications(user_id: UserId) -> UserNotificationFeed:
    return UserNotificationFeed(user_id)


Timeline = Annotated[PinFeed, Depends(timeline)]
AggregatedTimeline = Annotated[AggregatedPinFeed, Depends(aggregated_timeline)]
Notifications = Annotated[UserNotificationFeed, Depends(notifications)]


class PageQuery(BaseModel):
    """``?limit=&cursor=``: pass a page's ``next_cursor`` back to get the next page."""

    limit: int = Field(25, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=1000)


PageParams = Annotated[PageQuery, Query()]


@contextmanager
def cursor_errors() -> Iterator[None]:
    """A malformed cursor, or one of another feed, is the client's error: 400."""
    try:
        yield
    except ValueError as error:
        raise HTTPException(400, str(error)) from None


class NewPin(BaseModel):
    title: str = Field(min_length=1, max_length=200)
    board: str = Field(min_length=1, max_length=100)


class MarkRead(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=100)


# -- writes ---------------------------------------------------------------------------


@app.post("/users/{user_id}/pins", status_code=201)
async def add_pin(user_id: UserId, pin: NewPin, manager: ManagerDep, social: SocialDep) -> Activity:
    """Pin: stored, added to the user's own pins and fanned out to their followers."""
    pin_id = next(social.pin_ids)
    activity = Activity(actor=user_id, verb=Pin, object=pin_id, extra_context=pin.model_dump())
    await manager.add_user_activity(user_id, activity)
    social.pins[pin_id] = activity
    return activity


@app.post("/users/{user_id}/likes/{pin_id}", status_code=201)
async def like(user_id: UserId, pin_id: Annotated[int, Path(gt=0)], social: SocialDep) -> Activity:
    """Like a pin: its author is notified ("alice and 2 others liked your pin")."""
    pin = social.pins.get(pin_id)
    if pin is None:
        raise HTTPException(404, f"no pin {pin_id}")
    title = pin.extra_context["title"]
    activity = Activity(actor=user_id, verb=Like, object=pin_id, extra_context={"title": title})
    await UserNotificationFeed(pin.actor).add(activity)
    return activity


@app.put("/users/{user_id}/following/{target_id}", status_code=204)
async def follow(
    user_id: UserId, target_id: UserId, manager: ManagerDep, social: SocialDep
) -> None:
    """Follow: the target's pins are copied into the user's feeds, the target is notified."""
    if user_id == target_id:
        raise HTTPException(400, "users cannot follow themselves")
    new = user_id not in social.followers[target_id]
    social.followers[target_id].add(user_id)  # first, so pins published meanwhile reach them
    await manager.follow_user(user_id, target_id)
    if new:
        notice = Activity(actor=user_id, verb=Follow, object=target_id)
        await UserNotificationFeed(target_id).add(notice)


@app.delete("/users/{user_id}/following/{target_id}", status_code=204)
async def unfollow(
    user_id: UserId, target_id: UserId, manager: ManagerDep, social: SocialDep
) -> None:
    """Unfollow: the target's pins leave the user's feeds."""
    social.followers[target_id].discard(user_id)
    await manager.unfollow_user(user_id, target_id)


@app.post("/users/{user_id}/notifications/seen", status_code=204)
async def mark_seen(feed: Notifications) -> None:
    await feed.mark_all(seen=True)


@app.post("/users/{user_id}/notifications/read", status_code=204)
async def mark_read(feed: Notifications, body: MarkRead) -> None:
    await feed.mark_activities(body.ids, seen=True, read=True)


# -- reads ----------------------------------------------------------------------------


@app.get("/users/{user_id}/feed")
async def read_feed(feed: Timeline, page: PageParams) -> Page[Activity]:
    """Pins of the people the user follows, newest first."""
    with cursor_errors():
        return await feed.page(page.limit, page.cursor)


@app.get("/users/{user_id}/feed/aggregated")
async def read_aggregated(feed: AggregatedTimeline, page: PageParams) -> Page[AggregatedActivity]:
    """The same pins grouped by verb and day, the most recently updated group first."""
    with cursor_errors():
        return await feed.page(page.limit, page.cursor)


@app.get("/users/{user_id}/notifications")
async def read_notifications(
    feed: Notifications, page: PageParams
) -> Page[NotificationActivity]:
    """Likes of the user's pins (one group per pin and day) and new followers."""
    with cursor_errors():
        return await feed.page(page.limit, page.cursor)


@app.get("/healthz")
async def healthz() -> dict[str, str]:
    """Readiness: every server answers, else 503 (by the handler above)."""
    await asyncfeeds.ping()
    return {"status": "ok", "backend": BACKEND, "fanout": FANOUT}


# -- live badges ----------------------------------------------------------------------


async def badge_updates(feed: Notifications) -> AsyncIterator[Subscription]:
    """The live counts of the feed, subscribed before the response starts (so a server that
    is down is a 503) and closed once the client has left."""
    async with feed.subscribe() as updates:
        yield updates


Badge = Annotated[Subscription, Depends(badge_updates)]


async def next_counts(updates: Subscription) -> Counts | None:
    """The next counts, or None after ``HEARTBEAT`` idle seconds (the subscription lives on)."""
    try:
        return await asyncio.wait_for(anext(updates), HEARTBEAT)
    except TimeoutError:
        return None


@app.get("/users/{user_id}/notifications/events", response_class=EventSourceResponse)
async def notification_events(updates: Badge) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events: ``counts`` now and after each change, a comment when idle."""
    while True:
        counts = await next_counts(updates)
        if counts is None:
            yield ServerSentEvent(comment="heartbeat")
        else:
            yield ServerSentEvent(event="counts", data=counts)


@app.websocket("/users/{user_id}/notifications/ws")
async def notification_socket(websocket: WebSocket, updates: Badge) -> None:
    """The same badge as JSON messages: ``{"type": "counts", ...}`` or ``{"type": "heartbeat"}``."""
    await websocket.accept()
    try:
        while True:
            counts = await next_counts(updates)
            if counts is None:
                await websocket.send_json({"type": "heartbeat"})
            else:
                await websocket.send_json({"type": "counts", **counts})
    except WebSocketDisconnect:
        pass  # the client left; the dependency closes the subscription
