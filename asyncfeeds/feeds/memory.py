"""Feeds on the embedded memory backend: one process, no server."""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from ..storage.base import ActivityStorage, GroupStorage, PulledStorage, TimelineStorage
from ..storage.memory import (
    MemoryActivityStorage,
    MemoryGroupStorage,
    MemoryPulledStorage,
    MemoryTimelineStorage,
)
from .aggregated import AggregatedFeed
from .base import Feed
from .notification import NotificationFeed


@lru_cache(maxsize=1024)
def _activities(prefix: str, ttl: int | None) -> MemoryActivityStorage:
    return MemoryActivityStorage(prefix, ttl)


@lru_cache(maxsize=1024)
def _groups(ttl: int | None) -> MemoryGroupStorage:
    return MemoryGroupStorage(ttl)


@lru_cache(maxsize=1024)
def _timelines(prefix: str, ttl: int | None) -> MemoryTimelineStorage:
    return MemoryTimelineStorage(_activities(prefix, ttl))


_pulled = MemoryPulledStorage()


class _MemoryBinding:
    """Binds a feed class to the in-process storages."""

    @classmethod
    def get_timeline_storage(cls) -> TimelineStorage:
        return _timelines(cls.activity_key_prefix, cls.ttl_seconds())  # type: ignore[attr-defined]

    @classmethod
    def get_group_storage(cls) -> GroupStorage:
        return _groups(cls.ttl_seconds())  # type: ignore[attr-defined]

    @classmethod
    def get_pulled_storage(cls) -> PulledStorage:
        return _pulled

    @classmethod
    def get_activity_storage(cls) -> ActivityStorage:
        return _activities(cls.activity_key_prefix, cls.ttl_seconds())  # type: ignore[attr-defined]

    @classmethod
    def activity_storage_identity(cls) -> tuple[Any, ...]:
        return ("memory", cls.activity_key_prefix)  # type: ignore[attr-defined]


class MemoryFeed(_MemoryBinding, Feed):
    """A flat feed held in process memory."""


class MemoryAggregatedFeed(_MemoryBinding, AggregatedFeed):
    """An aggregated feed held in process memory."""


class MemoryNotificationFeed(_MemoryBinding, NotificationFeed):
    """A notification feed held in process memory."""
