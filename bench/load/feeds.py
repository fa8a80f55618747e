"""The load app's feeds and fanout manager, shared by the app, the workers and the checker.

Everything lives on one Redis named by ``LOAD_REDIS_URL`` (the load run's own
server): feeds, activity data, the arq queues and the run's ledger. Workers
load ``feeds:manager`` with ``--config feeds:configure``.
"""

from __future__ import annotations

import os
from typing import Any

import graph

import asyncfeeds
from asyncfeeds import (
    FanoutPriority,
    Manager,
    RedisAggregatedFeed,
    RedisFeed,
    RedisNotificationFeed,
    Verb,
    register_verb,
)

HIGH_PRIORITY_FOLLOWERS = 100
"""The first followers of an author (by id) go to the high queue, the rest to the low one."""


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


def redis_url() -> str:
    """The run's Redis: ``LOAD_REDIS_URL``."""
    return os.environ.get("LOAD_REDIS_URL", "redis://127.0.0.1:6379/0")


def configure() -> None:
    """Point feeds and queue at the run's Redis (the app's lifespan, ``--config`` of workers)."""
    url = redis_url()
    asyncfeeds.configure(redis={"default": url})
    LoadManager.queue_url = url


class FlatFeed(RedisFeed):
    """A follower's timeline; long enough that a load run trims nothing (the checker
    still expects only the newest ``max_length``)."""

    key_format = "load:flat:{user_id}"
    max_length = 2000


class AggregatedFeed(RedisAggregatedFeed):
    """A follower's aggregated timeline: pins grouped by day."""

    key_format = "load:aggregated:{user_id}"


class UserFeed(RedisFeed):
    """An author's own pins."""

    key_format = "load:user:{user_id}"
    max_length = 2000


class NotificationFeed(RedisNotificationFeed):
    """An author's likes, grouped by pin and day; long enough that nothing is trimmed."""

    key_format = "load:notification:{user_id}"
    max_length = 2000


class LoadManager(Manager):
    """Followers come from the generated graph."""

    feed_classes = {"flat": FlatFeed, "aggregated": AggregatedFeed}
    user_feed_class = UserFeed
    queue_url = redis_url()

    async def get_user_follower_ids(self, user_id: int | str) -> dict[FanoutPriority, Any]:
        ids = graph.current().followers(int(user_id))
        return {
            FanoutPriority.HIGH: ids[:HIGH_PRIORITY_FOLLOWERS],
            FanoutPriority.LOW: ids[HIGH_PRIORITY_FOLLOWERS:],
        }


manager = LoadManager()
