"""A notification feed's counts over Redis pub/sub, as an async iterator that cleans up.

The subscription starts as soon as the iterator is created (inside a running
loop) and is confirmed by the server before the first item is awaited. Its
connection is closed by ``aclose()``, by ``async with``, when the consumer's
task is cancelled, or when the consumer drops the iterator (``async for ...:
break``), so a web handler never leaks a subscribed connection.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ...exceptions import StorageUnavailableError
from ..base import Counts
from .connection import SOCKET_TIMEOUT, RedisServer

POLL_SECONDS = 30.0
"""How long one read waits for a message before waiting again (idle is fine)."""

_closing: set[asyncio.Task[None]] = set()


class _Listener:
    """The connection side of a subscription; kept apart so the iterator has no cycles."""

    def __init__(self, server: RedisServer, channel: str) -> None:
        self.server = server
        self.channel = channel
        self.pubsub: PubSub | None = None
        self.own_client: Redis | None = None
        self.ready: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.closed = False

    def start(self) -> asyncio.Task[None]:
        """Subscribe in the background, once."""
        if self.ready is None:
            self.loop = asyncio.get_running_loop()
            self.ready = self.loop.create_task(self._subscribe())
        return self.ready

    async def _subscribe(self) -> None:
        self.pubsub, self.own_client = self.server.pubsub()
        with self.server.errors():
            await self.pubsub.subscribe(self.channel)
            message = await self.pubsub.get_message(timeout=SOCKET_TIMEOUT)
        if message is None or message["type"] != "subscribe":
            raise StorageUnavailableError(
                f"Redis {self.server.name!r} at {self.server.address} did not confirm "
                f"the subscription to {self.channel!r}"
            )

    async def next(self) -> Counts:
        """The next counts published on the channel."""
        if self.closed:
            raise StopAsyncIteration
        try:
            await self.start()
            assert self.pubsub is not None
            while True:
                with self.server.errors():
                    message = await self.pubsub.get_message(
                        ignore_subscribe_messages=True, timeout=POLL_SECONDS
                    )
                if message is not None and message["type"] == "message":
                    return _counts(message["data"])
        except BaseException:
            await self.close()
            raise

    async def close(self) -> None:
        """Unsubscribe by closing the connection; safe to call twice."""
        self.closed = True
        ready, self.ready = self.ready, None
        if ready is not None:
            ready.cancel()
            with contextlib.suppress(BaseException):
                await ready
        pubsub, own_client = self.pubsub, self.own_client
        self.pubsub = self.own_client = None
        with contextlib.suppress(Exception):
            if pubsub is not None:
                await pubsub.aclose()
            if own_client is not None:
                await own_client.aclose()

    def close_soon(self) -> None:
        """Schedule ``close`` on the subscription's loop (from ``__del__``)."""
        loop = self.loop
        if self.closed or loop is None or loop.is_closed():
            self.closed = True
            return
        self.closed = True
        loop.call_soon_threadsafe(_spawn_close, self)


def _spawn_close(listener: _Listener) -> None:
    task = asyncio.get_running_loop().create_task(listener.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


def _counts(data: Any) -> Counts:
    counts = orjson.loads(data)
    return {key: int(counts[key]) for key in ("unseen_count", "unread_count")}


class CountsSubscription:
    """``async for counts in subscription``: counts after each change of one feed."""

    def __init__(self, server: RedisServer, channel: str) -> None:
        self._listener = _Listener(server, channel)
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return
        self._listener.start()

    def __aiter__(self) -> CountsSubscription:
        return self

    async def __anext__(self) -> Counts:
        return await self._listener.next()

    async def aclose(self) -> None:
        """Stop listening and close the connection."""
        await self._listener.close()

    async def __aenter__(self) -> CountsSubscription:
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        await self.aclose()

    def __del__(self) -> None:
        self._listener.close_soon()
