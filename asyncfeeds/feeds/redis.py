"""Feeds on Redis (or Redis Cluster): the classes only bind the Redis storages.

``redis_server`` names the connection configured with
``asyncfeeds.configure(redis={name: url})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import lru_cache
from typing import Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, PulledStorage, TimelineStorage
from ..storage.redis import (
    RedisActivityStorage,
    RedisGroupStorage,
    RedisPulledStorage,
    RedisTimelineStorage,
    get_server,
)
from ..storage.redis.merge import merge_page
from .aggregated import AggregatedFeed
from .base import Feed
from .notification import NotificationFeed

_groups = lru_cache(maxsize=None)(RedisGroupStorage)
_pulled = lru_cache(maxsize=None)(RedisPulledStorage)


@lru_cache(maxsize=1024)
def _activities(server: str, prefix: str, ttl: int | None) -> RedisActivityStorage:
    return RedisActivityStorage(server, prefix, ttl)


@lru_cache(maxsize=1024)
def _timelines(server: str, prefix: str, ttl: int | None) -> RedisTimelineStorage:
    return RedisTimelineStorage(_activities(server, prefix, ttl))


class _RedisBinding:
    """Binds a feed class to the Redis storages of its ``redis_server``."""

    redis_server: ClassVar[str] = "default"

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return _timelines(cls.redis_server, cls.activity_key_prefix, cls.ttl_seconds())  # type: ignore[attr-defined]

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        return _groups(cls.redis_server, cls.ttl_seconds())  # type: ignore[attr-defined]

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        return _pulled(cls.redis_server)

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return _activities(cls.redis_server, cls.activity_key_prefix, cls.ttl_seconds())  # type: ignore[attr-defined]

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        return ("redis", cls.redis_server, cls.activity_key_prefix)  # type: ignore[attr-defined]


class RedisFeed(_RedisBinding, Feed):
    """A flat feed: ids in a Redis sorted set, activity data in sharded hashes."""

    @classmethod
    async def merge_in_one_read(
        cls,
        user_id: int | str,
        author_class: type[Feed],
        authors: Sequence[str],
        limit: int,
        before: str | None,
    ) -> tuple[list[tuple[str, bytes | None]], bool] | None:
        """One script call on a single server when the authors' feeds, the pulled set and
        the activity data live on this class's Redis (see ``storage.redis.merge``)."""
        server = get_server(cls.redis_server)
        if (
            server.is_cluster
            or not issubclass(author_class, RedisFeed)
            or author_class.redis_server != cls.redis_server
            or author_class.activity_storage_identity() != cls.activity_storage_identity()
            or author_class.activity_class is not cls.activity_class
        ):
            return None
        return await merge_page(
            server,
            cls.feed_key(user_id),
            author_class.key_shape().scope,
            author_class.key_shape(),
            authors,
            limit,
            before,
            _activities(cls.redis_server, cls.activity_key_prefix, cls.ttl_seconds()),
        )


class RedisAggregatedFeed(_RedisBinding, AggregatedFeed):
    """An aggregated feed whose read-modify-write runs as Lua scripts on Redis."""


class RedisNotificationFeed(_RedisBinding, NotificationFeed):
    """A notification feed with unseen/unread markers and counts over Redis pub/sub."""
