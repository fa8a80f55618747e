"""Fixtures shared by the suite: a backend fixture parametrised over every storage.

``ASYNCFEEDS_TEST_BACKENDS`` (comma list, default all) narrows the run, say to
``memory`` while developing. A listed backend whose server is not running fails
its tests: ``make test`` starts the servers, nothing is skipped.
"""

from __future__ import annotations

import itertools
import os
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import asyncfeeds
from asyncfeeds import Activity, Verb, register_verb
from asyncfeeds.storage import memory as memory_storage

ALL_BACKENDS = ("memory", "redis", "redis-cluster", "cassandra")
BACKENDS = [
    b.strip()
    for b in os.environ.get("ASYNCFEEDS_TEST_BACKENDS", ",".join(ALL_BACKENDS)).split(",")
    if b.strip()
]
REDIS_URL = os.environ.get("ASYNCFEEDS_TEST_REDIS_URL", "redis://127.0.0.1:6390/0")
REDIS_CLUSTER_URL = os.environ.get(
    "ASYNCFEEDS_TEST_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7101"
)
CASSANDRA_PORT = int(os.environ.get("ASYNCFEEDS_TEST_CASSANDRA_PORT", "9042"))
CASSANDRA_KEYSPACE = os.environ.get("ASYNCFEEDS_TEST_CASSANDRA_KEYSPACE", "asyncfeeds_test")

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


class Pin(Verb):
    id = 5
    infinitive = "pin"
    past_tense = "pinned"


class Like(Verb):
    id = 6
    infinitive = "like"
    past_tense = "liked"


register_verb(Pin)
register_verb(Like)

_counter = itertools.count()


def make_activity(
    n: int | None = None,
    *,
    actor: int | None = None,
    verb: type[Verb] = Pin,
    object: int | None = None,
    minutes: int | None = None,
    activity_class: type[Activity] = Activity,
    **extra: Any,
) -> Activity:
    """A deterministic activity number ``n`` (time = BASE_TIME + n minutes)."""
    n = next(_counter) if n is None else n
    return activity_class(
        actor=n if actor is None else actor,
        verb=verb,
        object=n if object is None else object,
        time=BASE_TIME + timedelta(minutes=n if minutes is None else minutes),
        **extra,
    )


@dataclass
class Backend:
    """One storage backend under test: builds feed classes isolated by a unique key prefix."""

    name: str
    flat: type
    aggregated: type
    notification: type
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:10])
    created: list[type] = field(default_factory=list)

    def feed(self, kind: str = "flat", **attrs: Any) -> type:
        """A fresh feed class of ``kind`` (flat, aggregated, notification) with ``attrs``."""
        base = getattr(self, kind)
        attrs.setdefault("key_format", f"t{self.run_id}{len(self.created)}:{kind}:{{user_id}}")
        attrs.setdefault("activity_key_prefix", f"t{self.run_id}:activity")
        feed_class = type(f"Test{kind.title()}Feed{len(self.created)}", (base,), attrs)
        self.created.append(feed_class)
        return feed_class


def _classes(name: str) -> tuple[type, type, type]:
    prefix = {"memory": "Memory", "redis": "Redis", "redis-cluster": "Redis",
              "cassandra": "Cassandra"}[name]
    return tuple(  # type: ignore[return-value]
        getattr(asyncfeeds, f"{prefix}{suffix}")
        for suffix in ("Feed", "AggregatedFeed", "NotificationFeed")
    )


async def _configure(name: str) -> None:
    if name == "redis":
        asyncfeeds.configure(redis={"default": REDIS_URL})
    elif name == "redis-cluster":
        asyncfeeds.configure(redis={"default": REDIS_CLUSTER_URL})
    elif name == "cassandra":
        asyncfeeds.configure(
            cassandra={"default": {"hosts": ["127.0.0.1"], "port": CASSANDRA_PORT,
                                   "keyspace": CASSANDRA_KEYSPACE, "consistency": "ONE"}}
        )
        await asyncfeeds.setup(*_classes(name))


@pytest.fixture(params=BACKENDS)
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    """Every backend in turn, configured against the test servers and cleaned up after."""
    name = request.param
    await _configure(name)
    flat, aggregated, notification = _classes(name)
    b = Backend(name, flat, aggregated, notification)
    try:
        yield b
    finally:
        for feed_class in b.created:
            await feed_class.flush()
        await asyncfeeds.aclose()
        asyncfeeds.config.reset()
        if name == "memory":
            memory_storage.reset()


@pytest.fixture
async def memory_backend() -> AsyncIterator[Backend]:
    """The memory backend alone, for logic that does not depend on storage."""
    b = Backend("memory", *_classes("memory"))
    yield b
    memory_storage.reset()
