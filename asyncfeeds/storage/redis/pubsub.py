"""A notification feed's counts over Redis pub/sub, live on entry and exact.

``ChannelListener`` owns one pub/sub connection: it subscribes, waits for the
server's confirmation, reads the current counts, then a background task
forwards each message to the subscription's queue. A dropped or silent
connection (a PING goes unanswered) is replaced, and the counts read again,
for up to ``RECONNECT_SECONDS``; after that the consumer's ``anext`` raises
``StorageUnavailableError``. It is never left hanging.

Redis feeds read their counts with a script that also publishes a marker on
the subscription's private channel, on the same connection: every counts
message before the marker is already in what was read, every one after it is
news, so the first item is exact and no change is delivered twice.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import uuid
from collections.abc import Awaitable, Callable
from typing import Any

import orjson
from redis.asyncio import Redis
from redis.asyncio.client import PubSub

from ...exceptions import StorageUnavailableError
from ...types import Counts
from ..subscription import Item, QueueSubscription
from .connection import SOCKET_TIMEOUT, RedisServer
from .scripts import Lua

logger = logging.getLogger(__name__)

HEARTBEAT_SECONDS = 5.0
"""Idle seconds after which the connection is PINGed, so a hung server is noticed."""
RECONNECT_SECONDS = 10.0
"""How long a lost subscription tries to come back before the consumer gets an error."""

Parse = Callable[[bytes], Counts | None]
"""Counts from a message's data; ``None`` skips the message."""
Snapshot = Callable[[str | None], Awaitable[Counts]]
"""Reads the current counts once subscribed; given the marker channel to publish, if any."""

READ_COUNTS_WITH_MARKER = Lua(
    "read_counts_with_marker",
    """
-- KEYS: unseen, unread. ARGV: the subscription's marker channel.
-- Publishes the marker and reads the counts in one atomic step.
redis.call('PUBLISH', ARGV[1], '')
return {redis.call('SCARD', KEYS[1]), redis.call('SCARD', KEYS[2])}
""",
)

_closing: set[asyncio.Task[None]] = set()


def parse_counts(data: bytes) -> Counts | None:
    """Counts from a ``{"unseen_count": n, "unread_count": m}`` message; ``None`` if malformed."""
    try:
        counts = orjson.loads(data)
        return Counts(
            unseen_count=int(counts["unseen_count"]), unread_count=int(counts["unread_count"])
        )
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError):
        logger.warning("ignored a malformed counts message: %r", data[:200])
        return None


class ChannelListener:
    """One pub/sub connection forwarding a channel's counts into a queue; reconnects.

    It holds the queue, never the subscription, so a dropped subscription is collected.
    """

    def __init__(
        self,
        server: RedisServer,
        channel: str,
        queue: asyncio.Queue[Item],
        parse: Parse,
        snapshot: Snapshot,
        marked: bool,
    ) -> None:
        self.server = server
        self.channel = channel
        self.queue = queue
        self.parse = parse
        self.snapshot = snapshot
        self.marker = f"asyncfeeds:subscription:{uuid.uuid4().hex}" if marked else None
        self.pubsub: PubSub | None = None
        self.own_client: Redis | None = None
        self.reader: asyncio.Task[None] | None = None
        self.loop: asyncio.AbstractEventLoop | None = None
        self.before_marker = False
        self.closed = False

    async def connect(self) -> Counts:
        """Subscribe on a new connection, confirmed by the server; then the current counts.

        Counts already queued are superseded by what is read, so they are dropped.
        """
        self.loop = asyncio.get_running_loop()
        await self._disconnect()
        self.pubsub, self.own_client = self.server.pubsub()
        channels = [self.channel] if self.marker is None else [self.channel, self.marker]
        with self.server.errors():
            await self.pubsub.subscribe(*channels)
        await self._confirm(self.pubsub, len(channels))
        while not self.queue.empty():
            self.queue.get_nowait()
        self.before_marker = self.marker is not None
        return await self.snapshot(self.marker)

    def start(self) -> None:
        """Forward messages in the background (after ``connect``)."""
        assert self.loop is not None
        self.reader = self.loop.create_task(self._read())

    async def _confirm(self, pubsub: PubSub, expected: int) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + SOCKET_TIMEOUT
        while expected:
            remaining = deadline - loop.time()
            with self.server.errors():
                message = await pubsub.get_message(timeout=remaining) if remaining > 0 else None
            if message is None:
                raise StorageUnavailableError(
                    f"Redis {self.server.name!r} at {self.server.address} did not confirm "
                    f"the subscription to {self.channel!r} within {SOCKET_TIMEOUT:g} s"
                )
            if message["type"] == "subscribe":
                expected -= 1

    async def _read(self) -> None:
        try:
            while True:
                try:
                    await self._forward()
                except StorageUnavailableError as exc:
                    logger.warning("subscription to %s lost: %s; reconnecting", self.channel, exc)
                    counts = await self._reconnect(exc)
                    logger.info("subscription to %s is back", self.channel)
                    self.queue.put_nowait(("snapshot", counts))
        except asyncio.CancelledError:
            raise
        except BaseException as exc:
            self.queue.put_nowait(exc)
            await self._disconnect()

    async def _forward(self) -> None:
        """Queue each message until the connection fails or stops answering."""
        pubsub, loop = self.pubsub, asyncio.get_running_loop()
        assert pubsub is not None
        pong_due: float | None = None
        while True:
            timeout = HEARTBEAT_SECONDS if pong_due is None else max(pong_due - loop.time(), 0)
            with self.server.errors():
                message = await pubsub.get_message(timeout=timeout)
                if message is None and pong_due is None:
                    await pubsub.ping()
                    pong_due = loop.time() + SOCKET_TIMEOUT
                    continue
            if message is None:
                raise StorageUnavailableError(
                    f"Redis {self.server.name!r} at {self.server.address} did not answer "
                    f"a PING within {SOCKET_TIMEOUT:g} s"
                )
            if message["type"] == "pong":
                pong_due = None
            elif message["type"] == "message":
                self._take(message)

    def _take(self, message: dict[str, Any]) -> None:
        channel = message["channel"]
        if isinstance(channel, bytes):
            channel = channel.decode()
        if channel == self.marker:
            self.before_marker = False
        elif not self.before_marker:
            counts = self.parse(message["data"])
            if counts is not None:
                self.queue.put_nowait(("change", counts))

    async def _reconnect(self, error: StorageUnavailableError) -> Counts:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + RECONNECT_SECONDS
        delay = 0.1
        while True:
            await self._disconnect()
            if loop.time() + delay > deadline:
                raise StorageUnavailableError(
                    f"a subscription lost Redis {self.server.name!r} at {self.server.address} "
                    f"and could not subscribe again within {RECONNECT_SECONDS:g} s: {error}"
                ) from error
            await asyncio.sleep(delay)
            delay = min(delay * 2, 1.0)
            try:
                return await self.connect()
            except StorageUnavailableError as exc:
                error = exc

    async def _disconnect(self) -> None:
        pubsub, own_client = self.pubsub, self.own_client
        self.pubsub = self.own_client = None
        if pubsub is not None:
            with contextlib.suppress(Exception):
                await pubsub.aclose()  # type: ignore[no-untyped-call]
        if own_client is not None:
            with contextlib.suppress(Exception):
                await own_client.aclose()

    async def close(self) -> None:
        """Stop forwarding and close the connection; safe to call twice."""
        self.closed = True
        reader, self.reader = self.reader, None
        if reader is not None and not reader.done():
            reader.cancel()
            await asyncio.wait([reader])
        await self._disconnect()

    def close_soon(self) -> None:
        """Schedule ``close`` on the listener's loop (from a finaliser)."""
        loop = self.loop
        if self.closed or loop is None or loop.is_closed():
            self.closed = True
            return
        self.closed = True
        loop.call_soon_threadsafe(_spawn_close, self)


def _spawn_close(listener: ChannelListener) -> None:
    task = asyncio.get_running_loop().create_task(listener.close())
    _closing.add(task)
    task.add_done_callback(_closing.discard)


class CountsSubscription(QueueSubscription):
    """A Redis notification feed's counts: exact first item, then one per change."""

    def __init__(self, server: RedisServer, channel: str, unseen_key: str, unread_key: str):
        super().__init__()
        keys = [unseen_key, unread_key]

        async def snapshot(marker: str | None) -> Counts:
            command = server.evalsha(READ_COUNTS_WITH_MARKER, keys, [marker])
            ((unseen, unread),) = await server.run([command])
            return Counts(unseen_count=int(unseen), unread_count=int(unread))

        self._listener = ChannelListener(
            server, channel, self._queue, parse_counts, snapshot, marked=True
        )

    async def _go_live(self) -> Counts:
        counts = await self._listener.connect()
        self._listener.start()
        return counts

    async def _release(self) -> None:
        await self._listener.close()

    def _release_soon(self) -> None:
        self._listener.close_soon()
