"""Locust users of the load app: the request mix of ``LOAD_MIX``, users drawn from the graph.

Each task acts as a random user of the generated graph (``LOAD_GRAPH``).
``LOAD_MIX`` weighs the tasks (default ``feed=70,aggregated=10,post=10,like=5,
notifications=5``); ``LOAD_POPULAR_SHARE`` is the share of posts written by
the popular accounts (default 0.03); ``LOAD_WAIT`` the pause range of a user
between requests in seconds (default ``0.5,1.5``). With ``LOAD_EVENTS`` set,
every request's start time, name, status and duration go to that CSV file, so
the runner can tell when errors started and stopped.
"""

from __future__ import annotations

import csv
import os
import random
import time
from collections.abc import Callable
from typing import Any

import mix
from locust import FastHttpUser, between, events

USERS, _FOLLOWS, POPULAR, _SEED = (
    int(p) for p in os.environ.get("LOAD_GRAPH", "2000,50,3,17").split(",")
)
POPULAR_SHARE = float(os.environ.get("LOAD_POPULAR_SHARE", "0.03"))
WAIT_MIN, WAIT_MAX = (float(p) for p in os.environ.get("LOAD_WAIT", "0.5,1.5").split(","))


def any_user() -> int:
    return random.randrange(USERS)


def author() -> int:
    """A popular account for ``POPULAR_SHARE`` of the posts, else an ordinary user."""
    if POPULAR and random.random() < POPULAR_SHARE:
        return random.randrange(POPULAR)
    return random.randrange(POPULAR, USERS)


def read_feed(user: Any) -> None:
    user.client.get(f"/feed/{any_user()}", name="GET /feed")


def read_aggregated(user: Any) -> None:
    user.client.get(f"/aggregated/{any_user()}", name="GET /aggregated")


def post(user: Any) -> None:
    user.client.post(f"/posts/{author()}", name="POST /posts")


def like(user: Any) -> None:
    user.client.post(f"/likes/{any_user()}", name="POST /likes")


def read_notifications(user: Any) -> None:
    user.client.get(f"/notifications/{any_user()}", name="GET /notifications")


TASKS: dict[str, Callable[[Any], None]] = {
    "feed": read_feed,
    "aggregated": read_aggregated,
    "post": post,
    "like": like,
    "notifications": read_notifications,
}
MIX = mix.parse(os.environ.get("LOAD_MIX", mix.DEFAULT))


class FeedUser(FastHttpUser):
    """A visitor of the app doing the weighted mix of requests."""

    wait_time = between(WAIT_MIN, WAIT_MAX)
    connection_timeout = 10.0
    network_timeout = 30.0
    tasks = {TASKS[name]: weight for name, weight in MIX.items() if weight}  # type: ignore[assignment]


class EventLog:
    """One CSV row per request: start (epoch s), name, status (0 = no response), ms."""

    def __init__(self, path: str) -> None:
        self.file = open(path, "w", newline="")
        self.writer = csv.writer(self.file)

    def on_request(self, request_type: str, name: str, response_time: float,
                   response: Any = None, exception: Any = None, **_: Any) -> None:
        status = getattr(response, "status_code", 0) or 0
        started = time.time() - response_time / 1000
        self.writer.writerow((f"{started:.4f}", name, status, f"{response_time:.2f}"))

    def close(self, **_: Any) -> None:
        self.file.close()


if os.environ.get("LOAD_EVENTS"):
    _log = EventLog(os.environ["LOAD_EVENTS"])
    events.request.add_listener(_log.on_request)  # type: ignore[no-untyped-call]
    events.quitting.add_listener(_log.close)  # type: ignore[no-untyped-call]
