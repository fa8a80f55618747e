"""Versions of manager calls: a hybrid logical clock in microseconds.

Every write a manager call makes carries the call's version; storage applies
a write to an (activity, feed) pair only when it is newer than the last one
applied there, so the last call wins whatever order jobs run in. Versions are
microseconds since 1970 that never repeat or go back in this process
(``max(now, last + 1)``), which Cassandra can use as write timestamps as is.
Fanout through arq takes its versions from the queue's Redis instead
(``asyncfeeds.fanout.queue``), one clock for every process that shares it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

_lock = threading.Lock()
_last = 0


def next_version() -> int:
    """A new version: now in microseconds, or one past the last version handed out."""
    global _last
    with _lock:
        _last = max(time.time_ns() // 1000, _last + 1)
        return _last


def observe(version: int) -> None:
    """Move this clock past a version seen elsewhere, so later local versions are newer."""
    global _last
    with _lock:
        _last = max(_last, version)


_call: ContextVar[int | None] = ContextVar("asyncfeeds_call_version", default=None)


@contextmanager
def call_version(version: int) -> Iterator[None]:
    """Make ``version`` the version of every storage write in this block (a manager call)."""
    token = _call.set(version)
    try:
        yield
    finally:
        _call.reset(token)


def current_version() -> int:
    """The version of the manager call in progress, else a new local one."""
    version = _call.get()
    return next_version() if version is None else version
