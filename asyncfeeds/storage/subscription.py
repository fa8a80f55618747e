"""The machinery every backend's ``subscribe()`` shares: live on entry, a queue, clean ends.

A backend says how to go live (subscribe, wait for the server's confirmation,
read the current counts) and how to let go; its listeners put items on the
subscription's queue. ``anext`` only ever waits on that queue, so cancelling
it (a heartbeat timeout) loses nothing and ends nothing.
"""

from __future__ import annotations

import abc
import asyncio
from typing import ClassVar, Literal, NoReturn

from ..types import Counts

Kind = Literal["change", "snapshot"]
"""``change``: counts a change published; ``snapshot``: counts read from storage."""

Item = tuple[Kind, Counts] | BaseException | None
"""What listeners queue: counts, an error that ends the subscription, or ``None`` (closed)."""


class QueueSubscription(abc.ABC):
    """Counts after each change of one feed; implements ``asyncfeeds.types.Subscription``."""

    changes_may_repeat_snapshots: ClassVar[bool] = False
    """True where a change can arrive after a snapshot that already counted it: an equal
    change right after a snapshot is then dropped, so a badge never sees one change twice."""

    def __init__(self) -> None:
        self._queue: asyncio.Queue[Item] = asyncio.Queue()
        self._starting: asyncio.Task[Counts] | None = None
        self._first_sent = False
        self._last: Counts | None = None
        self._last_was_snapshot = False
        self._closed = False

    @abc.abstractmethod
    async def _go_live(self) -> Counts:
        """Subscribe, confirmed by the server, then return the current counts."""

    @abc.abstractmethod
    async def _release(self) -> None:
        """Let go of the listeners and connections."""

    @abc.abstractmethod
    def _release_soon(self) -> None:
        """Let go without awaiting (the subscription was dropped unclosed)."""

    def _explain(self, error: BaseException) -> BaseException:
        """The error the consumer sees for ``error`` (backends add what they were doing)."""
        return error

    def __aiter__(self) -> QueueSubscription:
        return self

    async def __aenter__(self) -> QueueSubscription:
        if self._closed:
            raise RuntimeError("this subscription is closed: call subscribe() again")
        try:
            await self._live()
        except StopAsyncIteration:
            raise RuntimeError("the subscription was closed while it started") from None
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    async def __anext__(self) -> Counts:
        if self._closed:
            raise StopAsyncIteration
        first = await self._live()
        if not self._first_sent:
            self._first_sent = True
            return self._remember("snapshot", first)
        while True:
            item = await self._queue.get()
            if item is None:
                self._queue.put_nowait(None)  # for any other waiting consumer
                raise StopAsyncIteration
            if isinstance(item, BaseException):
                await self.aclose()
                self._raise(item)
            kind, counts = item
            if self._accepts(kind, counts):
                return self._remember(kind, counts)

    async def aclose(self) -> None:
        """End the subscription and release its connection; safe to call twice."""
        if self._closed:
            return
        self._closed = True
        self._queue.put_nowait(None)
        starting = self._starting
        if starting is not None and not starting.done():
            starting.cancel()
            await asyncio.wait([starting])
        await self._release()

    async def _live(self) -> Counts:
        """Go live once; a cancelled caller leaves the start running for the next one."""
        if self._starting is None:
            self._starting = asyncio.get_running_loop().create_task(self._go_live())
        try:
            return await asyncio.shield(self._starting)
        except asyncio.CancelledError:
            if self._starting.cancelled():  # aclose() cancelled the start
                raise StopAsyncIteration from None
            raise
        except Exception as exc:
            await self.aclose()
            self._raise(exc)

    def _raise(self, error: BaseException) -> NoReturn:
        explained = self._explain(error)
        if explained is error:
            raise error
        raise explained from error

    def _accepts(self, kind: Kind, counts: Counts) -> bool:
        if kind == "snapshot":
            return counts != self._last
        return not (
            self.changes_may_repeat_snapshots and self._last_was_snapshot and counts == self._last
        )

    def _remember(self, kind: Kind, counts: Counts) -> Counts:
        self._last, self._last_was_snapshot = counts, kind == "snapshot"
        return Counts(unseen_count=counts["unseen_count"], unread_count=counts["unread_count"])

    def __del__(self) -> None:
        if not getattr(self, "_closed", True):
            self._closed = True
            self._release_soon()
