"""Unseen and unread counts pushed to subscribers of Cassandra notification feeds.

Changes made in this process reach its subscribers at once. Changes made by
other processes (fanout workers) travel through Redis pub/sub when a Redis is
configured; without one, a subscription polls the counts in Cassandra every
``poll_interval`` seconds and reports them when they differ, so it still
works, only later.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson

from ... import config
from ...exceptions import StorageUnavailableError
from ..base import Counts
from ..redis import get_server

logger = logging.getLogger(__name__)

_ORIGIN = uuid.uuid4().hex
"""Marks this process's messages, which its subscribers already got directly."""

_local: dict[str, set[asyncio.Queue[tuple[str, Any]]]] = {}


def channel(key: str) -> str:
    """The Redis channel of one feed's counts."""
    return f"asyncfeeds:counts:{key}"


class CountsNotifier:
    """Publishes a feed's counts after each change and hands out subscriptions."""

    def __init__(self, redis_server: str = "default", poll_interval: float = 1.0) -> None:
        self.redis_server = redis_server
        self.poll_interval = poll_interval

    @property
    def uses_redis(self) -> bool:
        """True when a Redis is configured to carry counts between processes."""
        return config.redis_configured(self.redis_server)

    async def publish(self, key: str, counts: Counts) -> None:
        """Deliver counts to this process's subscribers, and to others' through Redis."""
        for queue in _local.get(key, ()):
            queue.put_nowait(("local", dict(counts)))
        if self.uses_redis:
            message = orjson.dumps({"origin": _ORIGIN, "counts": counts})
            try:
                await get_server(self.redis_server).call("PUBLISH", channel(key), message)
            except StorageUnavailableError as exc:
                # The change is stored; only other processes' subscribers miss this message.
                logger.warning("could not publish the counts of %s: %s", key, exc)

    def subscribe(
        self, key: str, read_counts: Callable[[], Awaitable[Counts]]
    ) -> CountsSubscription:
        """Counts after each change of ``key``, from the moment of this call."""
        return CountsSubscription(self, key, read_counts)


class CountsSubscription:
    """An async iterator of counts; ``aclose()`` stops it."""

    def __init__(
        self,
        notifier: CountsNotifier,
        key: str,
        read_counts: Callable[[], Awaitable[Counts]],
    ) -> None:
        self._notifier = notifier
        self._key = key
        self._read_counts = read_counts
        self._queue: asyncio.Queue[tuple[str, Any]] = asyncio.Queue()
        self._closed = False
        self._last: Counts | None = None
        self._last_polled = False
        self._listener: asyncio.Task[None] | None = None
        self._polls = not notifier.uses_redis
        if self._polls:
            logger.info(
                "no Redis %r is configured to carry the counts of %s between processes: "
                "other processes' changes are polled from Cassandra every %s s",
                notifier.redis_server, key, notifier.poll_interval,
            )
        _local.setdefault(key, set()).add(self._queue)
        if not self._polls:
            try:
                self._listener = self._start_listening()
            except RuntimeError:
                self._listener = None  # no loop yet: start listening on first use

    def __aiter__(self) -> CountsSubscription:
        return self

    async def __anext__(self) -> Counts:
        if self._closed:
            raise StopAsyncIteration
        if self._polls and self._last is None:
            self._last = await self._read_counts()
        if not self._polls and self._listener is None:
            self._listener = self._start_listening()
        while True:
            if self._polls:
                try:
                    source, value = await asyncio.wait_for(
                        self._queue.get(), self._notifier.poll_interval
                    )
                except TimeoutError:
                    source, value = "poll", await self._read_counts()
                    if value == self._last:
                        continue
            else:
                source, value = await self._queue.get()
            if source == "error":
                raise value
            if source == "local" and self._last_polled and value == self._last:
                self._last_polled = False
                continue  # the change the last poll already reported
            self._last, self._last_polled = value, source == "poll"
            return dict(value)

    def _start_listening(self) -> asyncio.Task[None]:
        # The task holds the queue, not the subscription, so a dropped subscription is collected.
        listen = _listen(self._notifier.redis_server, self._key, self._queue)
        return asyncio.get_running_loop().create_task(listen)

    async def aclose(self) -> None:
        """Stop listening."""
        self._close()
        if self._listener is not None:
            try:
                await self._listener
            except asyncio.CancelledError:
                pass

    def _close(self) -> None:
        self._closed = True
        if self._listener is not None and not self._listener.done():
            try:
                self._listener.cancel()
            except RuntimeError:
                pass  # its loop is closed already
        listeners = _local.get(self._key)
        if listeners is not None:
            listeners.discard(self._queue)
            if not listeners:
                del _local[self._key]

    def __del__(self) -> None:
        self._close()


async def _listen(name: str, key: str, queue: asyncio.Queue[tuple[str, Any]]) -> None:
    """Forward counts other processes publish through Redis to one subscription's queue."""
    server = get_server(name)
    pubsub, own_client = server.pubsub()
    try:
        with server.errors():
            await pubsub.subscribe(channel(key))
            async for message in pubsub.listen():
                if message.get("type") != "message":
                    continue
                payload = orjson.loads(message["data"])
                if payload.get("origin") != _ORIGIN:
                    queue.put_nowait(("redis", payload["counts"]))
    except StorageUnavailableError as exc:
        error = StorageUnavailableError(
            f"subscribe() on a Cassandra notification feed hears other processes' changes "
            f"through Redis pub/sub, and {exc}"
        )
        queue.put_nowait(("error", error))
    finally:
        with contextlib.suppress(Exception):
            await pubsub.aclose()
            if own_client is not None:
                await own_client.aclose()
