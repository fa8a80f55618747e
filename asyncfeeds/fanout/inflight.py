"""A bounded set of concurrent writes: up to ``limit`` fanout chunks in flight at once.

Submitting waits while the set is full; the first failure stops new submissions
and, once the writes in flight have ended, is raised by ``submit`` or ``drain``.
Each chunk's write is versioned, so chunks landing in any order are exact.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any


class InFlight:
    """Runs awaitables with at most ``limit`` of them pending; ``on_done`` gets each result."""

    def __init__(self, limit: int, on_done: Callable[[Any], object] | None = None) -> None:
        self.limit = limit
        self.on_done = on_done
        self.pending: set[asyncio.Task[Any]] = set()
        self.error: BaseException | None = None

    async def submit(self, write: Awaitable[Any]) -> None:
        """Start ``write``, first waiting for room; raises the first failure seen."""
        try:
            while len(self.pending) >= self.limit and self.error is None:
                await self._wait(asyncio.FIRST_COMPLETED)
        except BaseException:  # cancelled while waiting: the writes in flight go too
            _close(write)
            await self._abort()
            raise
        if self.error is not None:
            _close(write)
            await self.drain()
        if self.limit <= 1:
            self._done(await write)
            return
        self.pending.add(asyncio.ensure_future(write))

    async def drain(self) -> None:
        """Wait for every write in flight; raises the first failure seen."""
        try:
            while self.pending:
                await self._wait(asyncio.ALL_COMPLETED)
        except BaseException:
            await self._abort()
            raise
        if self.error is not None:
            error, self.error = self.error, None
            raise error

    async def _abort(self) -> None:
        """Cancel the writes in flight and wait until they have ended."""
        pending, self.pending = self.pending, set()
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _wait(self, when: str) -> None:
        done, self.pending = await asyncio.wait(self.pending, return_when=when)
        for task in done:
            if task.cancelled():
                self.error = self.error or asyncio.CancelledError()
            elif task.exception() is not None:
                self.error = self.error or task.exception()
            else:
                self._done(task.result())

    def _done(self, result: Any) -> None:
        if self.on_done is not None:
            self.on_done(result)


def _close(write: Awaitable[Any]) -> None:
    """Drop a write that will not run (a coroutine never awaited would warn)."""
    close = getattr(write, "close", None)
    if close is not None:
        close()
