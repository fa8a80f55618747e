"""Stream Framework's notification tutorial as an aiohttp service on Redis.

"thierry, peter and 2 others liked your pin 'Ramen'": likes and follows go
straight to the notification feed of the user they concern; a new pin goes to
the notification feeds of the author's followers through the manager (fanout
jobs run by ``asyncfeeds worker`` with ``NOTIFY_FANOUT=arq``). A custom
aggregator groups them, and the unseen/unread badge is pushed live over
server-sent events and a WebSocket. Users are named by strings.

From the repository root, after ``pip install -e ".[examples]"``, with Redis::

    python -m aiohttp.web -H 127.0.0.1 -P 8080 examples.aiohttp_app:create_app
    asyncfeeds worker --manager examples.aiohttp_app:NotifyManager --priority high \\
        --config examples.aiohttp_app:configure         # with NOTIFY_FANOUT=arq

Environment (the workers read the same):

- ``NOTIFY_REDIS_URL``: the Redis of the feeds and the queue (default
  ``redis://127.0.0.1:6379/0``).
- ``NOTIFY_FANOUT``: ``eager`` (default: followers are notified before the request
  returns) or ``arq`` (fanout jobs for workers).
- ``NOTIFY_NAMESPACE``: the prefix of every key and queue name (default ``notify``).
- ``NOTIFY_HEARTBEAT``: seconds between heartbeats on an idle live stream (default 15).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import os
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from aiohttp import WSCloseCode, web
from pydantic import BaseModel, Field, ValidationError

import asyncfeeds
from asyncfeeds import (
    Activity,
    BaseAggregator,
    Counts,
    FanoutPriority,
    Manager,
    NotificationActivity,
    RedisFeed,
    RedisNotificationFeed,
    StorageUnavailableError,
    Subscription,
    Verb,
    register_verb,
)
from asyncfeeds.fanout import create_queue
from asyncfeeds.verbs import Follow

REDIS_URL = os.environ.get("NOTIFY_REDIS_URL", "redis://127.0.0.1:6379/0")
FANOUT = os.environ.get("NOTIFY_FANOUT", "eager")
NAMESPACE = os.environ.get("NOTIFY_NAMESPACE", "notify")
HEARTBEAT = float(os.environ.get("NOTIFY_HEARTBEAT", "15"))
if FANOUT not in ("eager", "arq"):
    raise RuntimeError(f"NOTIFY_FANOUT must be eager or arq, not {FANOUT!r}")

logger = logging.getLogger(__name__)


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


class TutorialAggregator(BaseAggregator):
    """One group per verb and day, likes also per pin: "thierry and 3 others liked your pin"."""

    def get_group(self, activity: Activity) -> str:
        day = activity.time.date().isoformat()
        if activity.verb is Like:
            return f"like-{activity.object}-{day}"
        return f"{activity.verb.infinitive}-{day}"


class Notifications(RedisNotificationFeed):
    key_format = f"{NAMESPACE}:notifications:{{user_id}}"
    activity_key_prefix = f"{NAMESPACE}:activity"
    aggregator_class = TutorialAggregator


class UserPins(RedisFeed):
    key_format = f"{NAMESPACE}:pins:{{user_id}}"
    activity_key_prefix = f"{NAMESPACE}:activity"


def describe(group: NotificationActivity) -> str:
    """The sentence of a notification, as Stream Framework's tutorial words it."""
    names = [str(actor) for actor in group.actor_ids[:2]]  # the newest first
    others = group.other_actor_count  # actor_count - 2, as in Stream Framework
    if others > 0:
        who = f"{', '.join(names)} and {others} other{'s' if others > 1 else ''}"
    else:
        who = " and ".join(names)
    title = group.last_activity.extra_context.get("title") if group.last_activity else None
    if group.verb is Like:
        return f"{who} liked your pin {title!r}"
    if group.verb is Pin:
        pins = group.activity_count
        return f"{who} pinned {pins} pins" if pins > 1 else f"{who} pinned {title!r}"
    return f"{who} started following you"


@dataclass
class Social:
    """Who follows whom and who pinned what: your database in a real app (workers never
    need it: fanout jobs carry the follower ids)."""

    followers: defaultdict[str, set[str]] = field(default_factory=lambda: defaultdict(set))
    pins: dict[int, Activity] = field(default_factory=dict)
    pin_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))


class NotifyManager(Manager):
    """Notifies an author's followers of each new pin."""

    feed_classes = {"notifications": Notifications}
    user_feed_class = UserPins
    queue_names = {
        FanoutPriority.HIGH: f"{NAMESPACE}:fanout:high",
        FanoutPriority.LOW: f"{NAMESPACE}:fanout:low",
    }
    dead_letter_key = f"{NAMESPACE}:fanout:dead"

    def __init__(self, queue: Any = None, *, social: Social | None = None) -> None:
        super().__init__(queue)
        self.social = social if social is not None else Social()

    async def get_user_follower_ids(self, user_id: int | str) -> dict[FanoutPriority, list[str]]:
        return {FanoutPriority.HIGH: sorted(self.social.followers[str(user_id)])}


def configure() -> None:
    """Point asyncfeeds at Redis; the app and every worker (``--config``) run it."""
    asyncfeeds.configure(redis={"default": REDIS_URL})


social_key = web.AppKey("social", Social)
manager_key = web.AppKey("manager", NotifyManager)


async def feeds_context(app: web.Application) -> AsyncIterator[None]:
    """Connect on start-up (a Redis that is down stops the start), close on clean-up."""
    configure()
    await asyncfeeds.ping()
    manager = app[manager_key] = NotifyManager(social=app[social_key])
    if FANOUT == "arq":
        manager.queue = await create_queue()
    yield
    if manager.queue is not None:
        await manager.queue.aclose()
    await asyncfeeds.aclose()


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def errors(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Bad input is a 422 naming the field; a server that is down or hung a 503."""
    try:
        return await handler(request)
    except ValidationError as error:
        raise web.HTTPUnprocessableEntity(
            text=error.json(include_url=False), content_type="application/json"
        ) from None
    except StorageUnavailableError as error:
        logger.warning("%s %s: %s", request.method, request.path, error)
        raise web.HTTPServiceUnavailable(
            text="the notifications are unavailable, retry later", headers={"Retry-After": "5"}
        ) from None


routes = web.RouteTableDef()


class NewPin(BaseModel):
    title: str = Field(min_length=1, max_length=200)


class PageQuery(BaseModel):
    limit: int = Field(25, ge=1, le=100)
    cursor: str | None = Field(None, min_length=1, max_length=1000)


class MarkRead(BaseModel):
    ids: list[str] = Field(min_length=1, max_length=100)


def no_content() -> web.Response:
    return web.Response(status=204)


@routes.post("/users/{user}/pins")
async def add_pin(request: web.Request) -> web.Response:
    """A new pin: the author's followers are notified (by the workers in arq mode)."""
    user, social = request.match_info["user"], request.app[social_key]
    pin = NewPin.model_validate_json(await request.read())
    pin_id = next(social.pin_ids)
    activity = Activity(actor=user, verb=Pin, object=pin_id, extra_context={"title": pin.title})
    await request.app[manager_key].add_user_activity(user, activity)
    social.pins[pin_id] = activity
    return web.json_response(activity.model_dump(mode="json"), status=201)


@routes.post(r"/users/{user}/likes/{pin:\d+}")
async def like(request: web.Request) -> web.Response:
    """A like: the pin's author is notified, likes of one pin on one day in one group."""
    pin = request.app[social_key].pins.get(int(request.match_info["pin"]))
    if pin is None:
        raise web.HTTPNotFound(text=f"no pin {request.match_info['pin']}")
    title = pin.extra_context["title"]
    activity = Activity(
        actor=request.match_info["user"], verb=Like, object=pin.object, target=pin.actor,
        extra_context={"title": title},
    )
    await Notifications(pin.actor).add(activity)
    return web.json_response(activity.model_dump(mode="json"), status=201)


@routes.put("/users/{user}/following/{target}")
async def follow(request: web.Request) -> web.Response:
    """Follow: the target is notified; the user hears of the target's next pins."""
    user, target = request.match_info["user"], request.match_info["target"]
    if user == target:
        raise web.HTTPBadRequest(text="users cannot follow themselves")
    followers = request.app[social_key].followers[target]
    if user not in followers:
        await Notifications(target).add(Activity(actor=user, verb=Follow, object=target))
        followers.add(user)
    return no_content()


@routes.delete("/users/{user}/following/{target}")
async def unfollow(request: web.Request) -> web.Response:
    """Unfollow: the target's pins leave the user's notifications."""
    user, target = request.match_info["user"], request.match_info["target"]
    request.app[social_key].followers[target].discard(user)
    await request.app[manager_key].unfollow_user(user, target)
    return no_content()


@routes.get("/users/{user}/notifications")
async def notifications(request: web.Request) -> web.Response:
    """A page of notifications, newest first, each with its id and its sentence."""
    query = PageQuery.model_validate(dict(request.query))
    try:
        page = await Notifications(request.match_info["user"]).page(query.limit, query.cursor)
    except ValueError as error:  # a malformed cursor, or one of another feed
        raise web.HTTPBadRequest(text=str(error)) from None
    items = [
        {**group.model_dump(mode="json", exclude={"activities"}), "text": describe(group)}
        for group in page.items
    ]
    return web.json_response({"items": items, "next_cursor": page.next_cursor})


@routes.post("/users/{user}/notifications/seen")
async def mark_seen(request: web.Request) -> web.Response:
    await Notifications(request.match_info["user"]).mark_all(seen=True)
    return no_content()


@routes.post("/users/{user}/notifications/read")
async def mark_read(request: web.Request) -> web.Response:
    body = MarkRead.model_validate_json(await request.read())
    await Notifications(request.match_info["user"]).mark_activities(body.ids, read=True)
    return no_content()


@routes.get("/healthz")
async def healthz(request: web.Request) -> web.Response:
    """Readiness: Redis answers, else 503 (by the middleware)."""
    await asyncfeeds.ping()
    return web.json_response({"status": "ok", "fanout": FANOUT})


async def next_counts(updates: Subscription) -> Counts | None:
    """The next counts, or None after ``HEARTBEAT`` idle seconds (the subscription lives on)."""
    try:
        return await asyncio.wait_for(anext(updates), HEARTBEAT)
    except TimeoutError:
        return None


@routes.get("/users/{user}/badge")
async def badge_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: ``counts`` now and after each change, a comment when idle."""
    response = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
    )
    # Subscribed before the response starts, so a Redis that is down is a 503.
    async with Notifications(request.match_info["user"]).subscribe() as updates:
        await response.prepare(request)
        try:
            while True:
                counts = await next_counts(updates)
                if counts is None:  # the write also finds out that a client has left
                    await response.write(b": heartbeat\n\n")
                else:
                    await response.write(f"event: counts\ndata: {json.dumps(counts)}\n\n".encode())
        except ConnectionResetError:
            return response


@routes.get("/users/{user}/badge/ws")
async def badge_socket(request: web.Request) -> web.WebSocketResponse:
    """The same badge as WebSocket JSON messages of ``type`` counts or heartbeat."""
    socket = web.WebSocketResponse()
    async with Notifications(request.match_info["user"]).subscribe() as updates:
        await socket.prepare(request)
        pushing = asyncio.create_task(push_counts(updates, socket))
        async for _message in socket:  # read until the client closes (it sends nothing else)
            pass
        pushing.cancel()
    return socket


async def push_counts(updates: Subscription, socket: web.WebSocketResponse) -> None:
    """Send the counts and the heartbeats; a lost Redis closes the socket ("try again later")."""
    try:
        while True:
            counts = await next_counts(updates)
            if counts is None:
                await socket.send_json({"type": "heartbeat"})
            else:
                await socket.send_json({"type": "counts", **counts})
    except StorageUnavailableError as error:
        logger.warning("badge socket: %s", error)
        await socket.close(code=WSCloseCode.TRY_AGAIN_LATER)
    except ConnectionResetError:
        pass  # the client left; the handler closes the subscription


def create_app(argv: list[str] | None = None) -> web.Application:
    """The application; ``python -m aiohttp.web ... examples.aiohttp_app:create_app`` runs it."""
    app = web.Application(middlewares=[errors])
    app[social_key] = Social()
    app.cleanup_ctx.append(feeds_context)
    app.add_routes(routes)
    return app
