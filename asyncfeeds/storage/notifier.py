"""The counts notifier: how a storage without its own pub/sub tells subscribers of changes.

A group storage whose server cannot push (Cassandra) is handed a notifier when
its feed class is bound: it publishes a notification feed's counts after each
change and hands out subscriptions. The interface lives here, so a storage
never imports another backend; the binding picks the implementation (today
``asyncfeeds.storage.redis.notifier.RedisCountsNotifier``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Protocol

from ..types import Counts, Subscription

ReadCounts = Callable[[], Awaitable[Counts]]
"""Reads a feed's current counts from its own storage."""


class CountsNotifier(Protocol):
    """Publishes a feed's counts after each change and hands out subscriptions."""

    async def publish(self, key: str, counts: Counts) -> None:
        """Deliver the counts of feed ``key`` to every subscriber, in this process and others."""

    def subscribe(self, key: str, read_counts: ReadCounts) -> Subscription:
        """The counts of ``key`` once live (read with ``read_counts``), then after each change."""
