"""What the tests share: verbs, activity factories, test server addresses, backend params.

Imported by test modules as ``from helpers import ...`` (the tests folder is on
``sys.path``); fixtures live in ``conftest.py``.
"""

from __future__ import annotations

import itertools
import os
import uuid
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

import asyncfeeds
from asyncfeeds import Activity, Verb, register_verb

ALL_BACKENDS = ("memory", "redis", "redis-cluster", "cassandra")
MARKS = {
    "memory": pytest.mark.memory,
    "redis": pytest.mark.redis,
    "redis-cluster": pytest.mark.redis_cluster,
    "cassandra": pytest.mark.cassandra,
}
"""The marker of each backend: ``-m "not cassandra"`` or ``--backends memory,redis`` select."""

REDIS_URL = os.environ.get("ASYNCFEEDS_TEST_REDIS_URL", "redis://127.0.0.1:6390/0")
REDIS_CLUSTER_URL = os.environ.get(
    "ASYNCFEEDS_TEST_REDIS_CLUSTER_URL", "redis+cluster://127.0.0.1:7101"
)
CASSANDRA_PORT = int(os.environ.get("ASYNCFEEDS_TEST_CASSANDRA_PORT", "9042"))
CASSANDRA_KEYSPACE = os.environ.get("ASYNCFEEDS_TEST_CASSANDRA_KEYSPACE", "asyncfeeds_test")

BASE_TIME = datetime(2024, 1, 1, tzinfo=UTC)


def backends(*names: str) -> list[Any]:
    """Parameters for ``backend`` (or any argument naming a backend), each with its marker."""
    return [pytest.param(name, marks=MARKS[name], id=name) for name in names]


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


def feed_classes(name: str) -> tuple[type, type, type]:
    """The flat, aggregated and notification feed classes of a backend."""
    prefix = {"memory": "Memory", "redis": "Redis", "redis-cluster": "Redis",
              "cassandra": "Cassandra"}[name]
    flat, aggregated, notification = (
        getattr(asyncfeeds, f"{prefix}{suffix}")
        for suffix in ("Feed", "AggregatedFeed", "NotificationFeed")
    )
    return flat, aggregated, notification
