"""Settings, verbs, feeds and the fanout manager: what the web app and the workers share.

The workers import this module, never the web app. Its settings come from the
environment variables listed in ``app.py``.
"""

from __future__ import annotations

import itertools
import os
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

import asyncfeeds
from asyncfeeds import (
    Activity,
    CassandraAggregatedFeed,
    CassandraFeed,
    CassandraNotificationFeed,
    FanoutPriority,
    Manager,
    MemoryAggregatedFeed,
    MemoryFeed,
    MemoryNotificationFeed,
    RedisAggregatedFeed,
    RedisFeed,
    RedisNotificationFeed,
    Verb,
    register_verb,
)

BACKEND = os.environ.get("PINTEREST_BACKEND", "memory")
FANOUT = os.environ.get("PINTEREST_FANOUT", "eager")
NAMESPACE = os.environ.get("PINTEREST_NAMESPACE", "pinterest")
REDIS_URL = os.environ.get("PINTEREST_REDIS_URL", "redis://127.0.0.1:6379/0")
CASSANDRA_HOSTS = os.environ.get("PINTEREST_CASSANDRA_HOSTS", "127.0.0.1").split(",")
CASSANDRA_KEYSPACE = os.environ.get("PINTEREST_CASSANDRA_KEYSPACE", "pinterest")
HEARTBEAT = float(os.environ.get("PINTEREST_HEARTBEAT", "15"))
ACTIVE_WITHIN = timedelta(days=7)
"""Followers who read their feed this recently get new pins on the high priority queue."""

BASES: dict[str, tuple[type[Any], type[Any], type[Any]]] = {
    "memory": (MemoryFeed, MemoryAggregatedFeed, MemoryNotificationFeed),
    "redis": (RedisFeed, RedisAggregatedFeed, RedisNotificationFeed),
    "cassandra": (CassandraFeed, CassandraAggregatedFeed, CassandraNotificationFeed),
}
if BACKEND not in BASES:
    raise RuntimeError(f"PINTEREST_BACKEND must be memory, redis or cassandra, not {BACKEND!r}")
if FANOUT not in ("eager", "arq"):
    raise RuntimeError(f"PINTEREST_FANOUT must be eager or arq, not {FANOUT!r}")
if BACKEND == "memory" and FANOUT == "arq":
    raise RuntimeError("memory feeds live in one process: workers need PINTEREST_BACKEND=redis")

if TYPE_CHECKING:  # every backend has the same methods: the type checker sees the base classes
    from asyncfeeds import AggregatedFeed, Feed, NotificationFeed
else:
    Feed, AggregatedFeed, NotificationFeed = BASES[BACKEND]


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


class PinFeed(Feed):
    """The pins of the people a user follows, newest first."""

    key_format = f"{NAMESPACE}:feed:{{user_id}}"
    activity_key_prefix = f"{NAMESPACE}:activity"
    max_length = 1000


class UserPinFeed(PinFeed):
    """A user's own pins."""

    key_format = f"{NAMESPACE}:pins:{{user_id}}"


class AggregatedPinFeed(AggregatedFeed):
    """The same pins grouped by verb and day: "alice and 3 others pinned 12 pins"."""

    key_format = f"{NAMESPACE}:aggregated:{{user_id}}"
    activity_key_prefix = f"{NAMESPACE}:activity"


class UserNotificationFeed(NotificationFeed):
    """Likes of a user's pins and new followers, with unseen and unread counts."""

    key_format = f"{NAMESPACE}:notifications:{{user_id}}"
    activity_key_prefix = f"{NAMESPACE}:activity"


FEED_CLASSES = (PinFeed, UserPinFeed, AggregatedPinFeed, UserNotificationFeed)


@dataclass
class Social:
    """Who follows whom, the pins, who read their feed lately: your database in a real app.

    Here it lives in the web process; workers never need it (jobs carry follower ids).
    """

    followers: defaultdict[int, set[int]] = field(default_factory=lambda: defaultdict(set))
    pins: dict[int, Activity] = field(default_factory=dict)
    last_read: dict[int, datetime] = field(default_factory=dict)
    pin_ids: itertools.count[int] = field(default_factory=lambda: itertools.count(1))

    def is_active(self, user_id: int) -> bool:
        last = self.last_read.get(user_id)
        return last is not None and datetime.now(UTC) - last < ACTIVE_WITHIN


class PinManager(Manager):
    """Fans pins out to followers; those active this week go to the high priority queue."""

    feed_classes = {"normal": PinFeed, "aggregated": AggregatedPinFeed}
    user_feed_class = UserPinFeed
    queue_names = {
        FanoutPriority.HIGH: f"{NAMESPACE}:fanout:high",
        FanoutPriority.LOW: f"{NAMESPACE}:fanout:low",
    }
    dead_letter_key = f"{NAMESPACE}:fanout:dead"

    def __init__(self, queue: Any = None, *, social: Social | None = None) -> None:
        super().__init__(queue)
        self.social = social if social is not None else Social()

    async def get_user_follower_ids(self, user_id: int | str) -> dict[FanoutPriority, list[int]]:
        followers = sorted(self.social.followers[int(user_id)])
        active = [f for f in followers if self.social.is_active(f)]
        others = [f for f in followers if not self.social.is_active(f)]
        return {FanoutPriority.HIGH: active, FanoutPriority.LOW: others}


def configure() -> None:
    """Point asyncfeeds at this app's servers; the web app and every worker run it
    (``asyncfeeds worker ... --config examples.pinterest.feeds:configure``)."""
    if BACKEND == "redis" or FANOUT == "arq":
        asyncfeeds.configure(redis={"default": REDIS_URL})
    if BACKEND == "cassandra":
        asyncfeeds.configure(
            cassandra={"default": {"hosts": CASSANDRA_HOSTS, "keyspace": CASSANDRA_KEYSPACE}}
        )
