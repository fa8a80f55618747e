"""Feeds on Apache Cassandra through acsylla: for feeds that outgrow Redis memory.

Every feed class shares the ``timelines`` (flat) or ``aggregated_feeds`` table
by default, one partition per feed key; set ``timeline_table`` or
``group_table`` to give a class its own. ``await asyncfeeds.setup(FeedClass)``
creates the keyspace and tables.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, TimelineStorage
from ..storage.cassandra import (
    CassandraActivityStorage,
    CassandraGroupStorage,
    CassandraTimelineStorage,
    get_client,
    schema,
)
from ..storage.cassandra.connection import identifier
from ..storage.redis.notifier import RedisCountsNotifier
from .aggregated import AggregatedFeed, AggregatedT
from .base import ActivityT, Feed
from .notification import NotificationFeed, NotificationT


@lru_cache(maxsize=1024)
def _activities(cluster: str, table: str, prefix: str) -> CassandraActivityStorage:
    return CassandraActivityStorage(cluster, table, prefix)


@lru_cache(maxsize=1024)
def _timelines(
    cluster: str, table: str, key_prefix: str, activity_table: str, activity_prefix: str
) -> CassandraTimelineStorage:
    activities = _activities(cluster, activity_table, activity_prefix)
    return CassandraTimelineStorage(cluster, table, key_prefix, activities)


@lru_cache(maxsize=1024)
def _groups(
    cluster: str, table: str, key_prefix: str, redis_server: str | None, poll_interval: float
) -> CassandraGroupStorage:
    notifier = None if redis_server is None else RedisCountsNotifier(redis_server, poll_interval)
    return CassandraGroupStorage(cluster, table, key_prefix, notifier)


class _CassandraBinding:
    """Binds a feed class to the Cassandra cluster configured as ``cassandra_cluster``."""

    cassandra_cluster: ClassVar[str] = "default"
    timeline_table: ClassVar[str] = "timelines"
    group_table: ClassVar[str] = "aggregated_feeds"
    activity_table: ClassVar[str] = "activities"
    activity_key_prefix: ClassVar[str]  # the feed class's own

    if TYPE_CHECKING:

        @classmethod
        def key_prefix(cls) -> str: ...  # the feed class's own

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        table = identifier(cls.timeline_table, "table")
        activity_table = identifier(cls.activity_table, "table")
        return _timelines(
            cls.cassandra_cluster, table, cls.key_prefix(), activity_table,
            cls.activity_key_prefix,
        )

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        table = identifier(cls.activity_table, "table")
        return _activities(cls.cassandra_cluster, table, cls.activity_key_prefix)

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        table = identifier(cls.activity_table, "table")
        return ("cassandra", cls.cassandra_cluster, table, cls.activity_key_prefix)

    @classmethod
    def storage_tables(cls) -> list[tuple[str, schema.Table]]:
        """The ``(name, table)`` pairs this class writes, for ``setup``."""
        main = (
            (cls.group_table, schema.GROUPS)
            if issubclass(cls, AggregatedFeed)
            else (cls.timeline_table, schema.TIMELINE)
        )
        return [
            main,
            (cls.activity_table, schema.ACTIVITIES),
            (schema.REGISTRY_TABLE, schema.REGISTRY),
        ]

    @classmethod
    async def setup_storage(cls) -> None:
        """Create the keyspace and this class's tables if they are missing (idempotent)."""
        await schema.setup(get_client(cls.cassandra_cluster), cls.storage_tables())


class CassandraFeed(_CassandraBinding, Feed[ActivityT]):
    """A flat feed in Cassandra: one partition per feed, rows holding whole activities."""


class CassandraAggregatedFeed(_CassandraBinding, AggregatedFeed[AggregatedT]):
    """An aggregated feed in Cassandra: one row per feed, committed by lightweight transaction."""

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        table = identifier(cls.group_table, "table")
        return _groups(cls.cassandra_cluster, table, cls.key_prefix(), None, 0.0)


class CassandraNotificationFeed(_CassandraBinding, NotificationFeed[NotificationT]):
    """A notification feed in Cassandra, seen and read markers in the same row as the groups.

    ``subscribe()`` hears changes from other processes through the Redis named
    ``redis_server`` when one is configured, else by polling every
    ``subscribe_poll_interval`` seconds.
    """

    redis_server: ClassVar[str] = "default"
    subscribe_poll_interval: ClassVar[float] = 1.0

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        table = identifier(cls.group_table, "table")
        return _groups(
            cls.cassandra_cluster, table, cls.key_prefix(), cls.redis_server,
            cls.subscribe_poll_interval,
        )
