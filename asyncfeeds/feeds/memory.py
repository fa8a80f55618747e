"""Feeds on the embedded memory backend: one process, no server."""

from __future__ import annotations

from functools import cache
from typing import TYPE_CHECKING, Any, ClassVar

from ..storage.base import ActivityStorage, GroupStorage, PulledStorage, TimelineStorage
from ..storage.memory import (
    MemoryActivityStorage,
    MemoryGroupStorage,
    MemoryPulledStorage,
    MemoryTimelineStorage,
)
from .aggregated import AggregatedFeed, AggregatedT
from .base import ActivityT, Feed
from .notification import NotificationFeed, NotificationT

_pulled = MemoryPulledStorage()


@cache
def _activities(prefix: str, ttl: int | None) -> MemoryActivityStorage:
    return MemoryActivityStorage(prefix, ttl)


@cache
def _timelines(prefix: str, ttl: int | None) -> MemoryTimelineStorage:
    return MemoryTimelineStorage(_activities(prefix, ttl))


@cache
def _groups(ttl: int | None) -> MemoryGroupStorage:
    return MemoryGroupStorage(ttl)


class _MemoryBinding:
    """Binds a feed class to the in-process storages."""

    activity_key_prefix: ClassVar[str]  # the feed class's own

    if TYPE_CHECKING:

        @classmethod
        def ttl_seconds(cls) -> int | None: ...  # the feed class's own

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return _timelines(cls.activity_key_prefix, cls.ttl_seconds())

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        return _groups(cls.ttl_seconds())

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        return _pulled

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return _activities(cls.activity_key_prefix, cls.ttl_seconds())

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        return ("memory", cls.activity_key_prefix)


class MemoryFeed(_MemoryBinding, Feed[ActivityT]):
    """A flat feed held in process memory."""


class MemoryAggregatedFeed(_MemoryBinding, AggregatedFeed[AggregatedT]):
    """An aggregated feed held in process memory."""


class MemoryNotificationFeed(_MemoryBinding, NotificationFeed[NotificationT]):
    """A notification feed held in process memory."""
