"""Feeds on Redis (or Redis Cluster): the classes only bind the Redis storages.

``redis_server`` names the connection configured with
``asyncfeeds.configure(redis={name: url})``.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, PulledStorage, TimelineStorage
from ..storage.redis import (
    RedisActivityStorage,
    RedisGroupStorage,
    RedisPulledStorage,
    RedisTimelineStorage,
)
from .aggregated import AggregatedFeed
from .base import Feed
from .notification import NotificationFeed

_timelines = lru_cache(maxsize=None)(RedisTimelineStorage)
_groups = lru_cache(maxsize=None)(RedisGroupStorage)
_pulled = lru_cache(maxsize=None)(RedisPulledStorage)


class _RedisBinding:
    """Binds a feed class to the Redis storages of its ``redis_server``."""

    redis_server: ClassVar[str] = "default"

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return _timelines(cls.redis_server)

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        return _groups(cls.redis_server)

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        return _pulled(cls.redis_server)

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return RedisActivityStorage(cls.redis_server, cls.activity_key_prefix)  # type: ignore[attr-defined]

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        return ("redis", cls.redis_server, cls.activity_key_prefix)  # type: ignore[attr-defined]


class RedisFeed(_RedisBinding, Feed):
    """A flat feed: ids in a Redis sorted set, activity data in sharded hashes."""


class RedisAggregatedFeed(_RedisBinding, AggregatedFeed):
    """An aggregated feed whose read-modify-write runs as Lua scripts on Redis."""


class RedisNotificationFeed(_RedisBinding, NotificationFeed):
    """A notification feed with unseen/unread markers and counts over Redis pub/sub."""
