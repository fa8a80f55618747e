"""Feeds on Apache Cassandra through acsylla: for feeds that outgrow Redis memory.

Every feed class shares the ``timelines`` (flat) or ``aggregated_feeds`` table
by default, one partition per feed key; set ``timeline_table`` or
``group_table`` to give a class its own. ``await asyncfeeds.setup(FeedClass)``
creates the keyspace and tables.
"""

from __future__ import annotations

from functools import lru_cache
from typing import TYPE_CHECKING, Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, PulledStorage, TimelineStorage
from ..storage.cassandra import (
    CassandraActivityStorage,
    CassandraGroupStorage,
    CassandraPulledStorage,
    CassandraTimelineStorage,
    get_client,
    schema,
)
from ..storage.cassandra.connection import identifier
from ..storage.redis.notifier import RedisCountsNotifier
from .aggregated import AggregatedFeed, AggregatedT
from .base import ActivityT, Feed
from .notification import NotificationFeed, NotificationT

GROUP_ROW_ACTIVITY_BYTES = 64 * 1024
"""Aggregated feeds keep every group of a feed in one row (15 activities per group), so their
activities are bounded well below Cassandra's mutation and partition limits."""


@lru_cache(maxsize=1024)
def _activities(
    cluster: str, table: str, prefix: str, ttl: int | None
) -> CassandraActivityStorage:
    return CassandraActivityStorage(cluster, table, prefix, ttl)


@lru_cache(maxsize=1024)
def _timelines(
    cluster: str, table: str, key_prefix: str, activities: CassandraActivityStorage
) -> CassandraTimelineStorage:
    return CassandraTimelineStorage(cluster, table, key_prefix, activities)


@lru_cache(maxsize=1024)
def _pulled(cluster: str, table: str) -> CassandraPulledStorage:
    return CassandraPulledStorage(cluster, table)


@lru_cache(maxsize=1024)
def _groups(
    cluster: str,
    table: str,
    key_prefix: str,
    redis_server: str | None,
    poll_interval: float,
    ttl: int | None,
) -> CassandraGroupStorage:
    notifier = None if redis_server is None else RedisCountsNotifier(redis_server, poll_interval)
    return CassandraGroupStorage(cluster, table, key_prefix, notifier, ttl)


class _CassandraBinding:
    """Binds a feed class to the Cassandra cluster configured as ``cassandra_cluster``."""

    cassandra_cluster: ClassVar[str] = "default"
    timeline_table: ClassVar[str] = "timelines"
    group_table: ClassVar[str] = "aggregated_feeds"
    activity_table: ClassVar[str] = "activities"
    pulled_table: ClassVar[str] = "pulled_authors"
    activity_key_prefix: ClassVar[str]  # the feed class's own

    if TYPE_CHECKING:

        @classmethod
        def key_prefix(cls) -> str: ...  # the feed class's own

        @classmethod
        def ttl_seconds(cls) -> int | None: ...  # the feed class's own

    @classmethod
    def _activities(cls) -> CassandraActivityStorage:
        table = identifier(cls.activity_table, "table")
        return _activities(cls.cassandra_cluster, table, cls.activity_key_prefix, cls.ttl_seconds())

    @classmethod
    def _flat_timelines(cls) -> CassandraTimelineStorage:
        table = identifier(cls.timeline_table, "table")
        return _timelines(cls.cassandra_cluster, table, cls.key_prefix(), cls._activities())

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return cls._flat_timelines()

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return cls._activities()

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        return _pulled(cls.cassandra_cluster, identifier(cls.pulled_table, "table"))

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
        tables = [
            main,
            (cls.activity_table, schema.ACTIVITIES),
            (schema.REGISTRY_TABLE, schema.REGISTRY),
        ]
        if not issubclass(cls, AggregatedFeed):  # a flat class may be a manager's user feed
            tables.append((cls.pulled_table, schema.PULLED))
        return tables

    @classmethod
    async def setup_storage(cls) -> None:
        """Create the keyspace and this class's tables if they are missing (idempotent)."""
        await schema.setup(get_client(cls.cassandra_cluster), cls.storage_tables())


class CassandraFeed(_CassandraBinding, Feed[ActivityT]):
    """A flat feed in Cassandra: one partition per feed, rows of ids by activity id."""


class CassandraAggregatedFeed(_CassandraBinding, AggregatedFeed[AggregatedT]):
    """An aggregated feed in Cassandra: one row per feed, committed by lightweight transaction."""

    max_activity_bytes: ClassVar[int] = GROUP_ROW_ACTIVITY_BYTES

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        table = identifier(cls.group_table, "table")
        return _groups(
            cls.cassandra_cluster, table, cls.key_prefix(), None, 0.0, cls.ttl_seconds()
        )


class CassandraNotificationFeed(_CassandraBinding, NotificationFeed[NotificationT]):
    """A notification feed in Cassandra, seen and read markers in the same row as the groups.

    ``subscribe()`` hears changes from other processes through the Redis named
    ``redis_server`` when one is configured, else by polling every
    ``subscribe_poll_interval`` seconds.
    """

    redis_server: ClassVar[str] = "default"
    subscribe_poll_interval: ClassVar[float] = 1.0
    max_activity_bytes: ClassVar[int] = GROUP_ROW_ACTIVITY_BYTES

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        table = identifier(cls.group_table, "table")
        return _groups(
            cls.cassandra_cluster, table, cls.key_prefix(), cls.redis_server,
            cls.subscribe_poll_interval, cls.ttl_seconds(),
        )
