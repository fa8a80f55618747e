"""Helpers for the test suites of applications built on asyncfeeds."""

from __future__ import annotations

from .storage import memory


def reset_memory_backend() -> None:
    """Forget every memory feed and stored activity of this process, so tests start empty.

    Call it between tests (an autouse pytest fixture); Redis and Cassandra feeds are
    emptied with ``await FeedClass.flush()`` instead.
    """
    memory.reset()


__all__ = ["reset_memory_backend"]
