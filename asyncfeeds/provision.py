"""``await asyncfeeds.setup(*feed_classes)``: create what each backend needs, idempotently."""

from __future__ import annotations

from typing import Any


async def setup(*feed_classes: type[Any]) -> None:
    """Create keyspaces and tables (Cassandra); nothing is needed for Redis or memory."""
    for feed_class in feed_classes:
        prepare = getattr(feed_class, "setup_storage", None)
        if prepare is not None:
            await prepare()
