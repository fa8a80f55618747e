"""Feeds on Redis (or Redis Cluster): the classes only bind the Redis storages.

``redis_server`` names the connection configured with
``asyncfeeds.configure(redis={name: url})``.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, PulledStorage, TimelineStorage
from ..storage.redis import (
    RedisActivityStorage,
    RedisGroupStorage,
    RedisPulledStorage,
    RedisTimelineStorage,
    get_server,
)
from ..storage.redis.merge import merge_page
from .aggregated import AggregatedFeed, AggregatedT
from .base import ActivityT, Feed
from .notification import NotificationFeed, NotificationT


@cache
def _activities(server: str, prefix: str, ttl: int | None) -> RedisActivityStorage:
    return RedisActivityStorage(server, prefix, ttl)


@cache
def _timelines(server: str, prefix: str, ttl: int | None) -> RedisTimelineStorage:
    return RedisTimelineStorage(_activities(server, prefix, ttl))


@cache
def _groups(server: str, ttl: int | None) -> RedisGroupStorage:
    return RedisGroupStorage(server, ttl)


@cache
def _pulled(server: str) -> RedisPulledStorage:
    return RedisPulledStorage(server)


class _RedisBinding:
    """Binds a feed class to the Redis storages of its ``redis_server``."""

    redis_server: ClassVar[str] = "default"
    activity_key_prefix: ClassVar[str]  # the feed class's own

    if TYPE_CHECKING:

        @classmethod
        def ttl_seconds(cls) -> int | None: ...  # the feed class's own

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return _timelines(cls.redis_server, cls.activity_key_prefix, cls.ttl_seconds())

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        return _groups(cls.redis_server, cls.ttl_seconds())

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        return _pulled(cls.redis_server)

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return _activities(cls.redis_server, cls.activity_key_prefix, cls.ttl_seconds())

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        return ("redis", cls.redis_server, cls.activity_key_prefix)


class RedisFeed(_RedisBinding, Feed[ActivityT]):
    """A flat feed: ids in a Redis sorted set, activity data in hashes by time bucket."""

    @classmethod
    async def merge_in_one_read(
        cls,
        user_id: int | str,
        author_class: type[Feed[Any]],
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


class RedisAggregatedFeed(_RedisBinding, AggregatedFeed[AggregatedT]):
    """An aggregated feed whose read-modify-write runs as Lua scripts on Redis."""


class RedisNotificationFeed(_RedisBinding, NotificationFeed[NotificationT]):
    """A notification feed with unseen/unread markers and counts over Redis pub/sub."""
