"""Feeds on Redis (or Redis Cluster): the classes only bind the Redis storages.

``redis_server`` names the connection configured with
``asyncfeeds.configure(redis={name: url})``.
"""

from __future__ import annotations

from functools import cache, lru_cache
from typing import Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, TimelineStorage
from ..storage.redis import RedisActivityStorage, RedisGroupStorage, RedisTimelineStorage
from .aggregated import AggregatedFeed, AggregatedT
from .base import ActivityT, Feed
from .notification import NotificationFeed, NotificationT

_groups = lru_cache(maxsize=None)(RedisGroupStorage)


@cache
def _activities(server: str, prefix: str) -> RedisActivityStorage:
    return RedisActivityStorage(server, prefix)


@cache
def _timelines(server: str, prefix: str) -> RedisTimelineStorage:
    return RedisTimelineStorage(_activities(server, prefix))


class _RedisBinding:
    """Binds a feed class to the Redis storages of its ``redis_server``."""

    redis_server: ClassVar[str] = "default"
    activity_key_prefix: ClassVar[str]  # the feed class's own

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return _timelines(cls.redis_server, cls.activity_key_prefix)

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        return _groups(cls.redis_server)

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return _activities(cls.redis_server, cls.activity_key_prefix)

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        return ("redis", cls.redis_server, cls.activity_key_prefix)


class RedisFeed(_RedisBinding, Feed[ActivityT]):
    """A flat feed: ids in a Redis sorted set, activity data in sharded hashes."""


class RedisAggregatedFeed(_RedisBinding, AggregatedFeed[AggregatedT]):
    """An aggregated feed whose read-modify-write runs as Lua scripts on Redis."""


class RedisNotificationFeed(_RedisBinding, NotificationFeed[NotificationT]):
    """A notification feed with unseen/unread markers and counts over Redis pub/sub."""
