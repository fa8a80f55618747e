"""Counts carried over Redis pub/sub for storages without their own (Cassandra feeds).

``RedisCountsNotifier`` implements ``asyncfeeds.storage.notifier.CountsNotifier``.

Changes made in this process reach its subscribers at once. Changes made by
other processes (fanout workers) travel through Redis pub/sub when a Redis is
configured; without one, a subscription polls the counts in Cassandra every
``poll_interval`` seconds and reports them when they differ, so it still
works, only later.
"""

from __future__ import annotations

import asyncio
import logging
import uuid

import orjson

from ... import config
from ...exceptions import StorageUnavailableError
from ...types import Counts
from ..notifier import ReadCounts
from ..subscription import Item, QueueSubscription
from .connection import get_server
from .pubsub import RECONNECT_SECONDS, ChannelListener, parse_counts

logger = logging.getLogger(__name__)

_ORIGIN = uuid.uuid4().hex
"""Marks this process's messages, which its subscribers already got directly."""

_local: dict[str, set[asyncio.Queue[Item]]] = {}


def channel(key: str) -> str:
    """The Redis channel of one feed's counts."""
    return f"asyncfeeds:counts:{key}"


class RedisCountsNotifier:
    """Publishes a feed's counts after each change and hands out subscriptions: in-process at
    once, to other processes through the Redis ``redis_server`` if one is configured, else
    by polling every ``poll_interval`` seconds."""

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
            queue.put_nowait(("change", counts.copy()))
        if self.uses_redis:
            message = orjson.dumps({"origin": _ORIGIN, "counts": counts})
            try:
                await get_server(self.redis_server).call("PUBLISH", channel(key), message)
            except StorageUnavailableError as exc:
                # The change is stored; only other processes' subscribers miss this message.
                logger.warning("could not publish the counts of %s: %s", key, exc)

    def subscribe(self, key: str, read_counts: ReadCounts) -> CountsSubscription:
        """The counts of ``key`` once live, then after each change."""
        return CountsSubscription(self, key, read_counts)


def _foreign_counts(data: bytes) -> Counts | None:
    """The counts of another process's message; ``None`` for this process's own."""
    try:
        payload = orjson.loads(data)
        if payload.get("origin") == _ORIGIN:
            return None
        return parse_counts(orjson.dumps(payload["counts"]))
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        logger.warning("ignored a malformed counts message: %r", data[:200])
        return None


class CountsSubscription(QueueSubscription):
    """Counts of a Cassandra notification feed, heard in-process, through Redis or by polling.

    Nothing orders a Redis message against a Cassandra read, so a change made
    while the counts are read may also arrive as an item; an equal change
    right after a read is dropped as the one the read already counted.
    """

    changes_may_repeat_snapshots = True

    def __init__(self, notifier: RedisCountsNotifier, key: str, read_counts: ReadCounts) -> None:
        super().__init__()
        self._notifier = notifier
        self._key = key
        self._read_counts = read_counts
        self._listener: ChannelListener | None = None
        self._poller: asyncio.Task[None] | None = None

    async def _go_live(self) -> Counts:
        _local.setdefault(self._key, set()).add(self._queue)
        notifier = self._notifier
        if notifier.uses_redis:
            read_counts = self._read_counts

            async def snapshot(_marker: str | None) -> Counts:
                return await read_counts()

            server = get_server(notifier.redis_server)
            self._listener = ChannelListener(
                server, channel(self._key), self._queue, _foreign_counts, snapshot, marked=False
            )
            counts = await self._listener.connect()
            self._listener.start()
            return counts
        logger.info(
            "no Redis %r is configured to carry the counts of %s between processes: "
            "other processes' changes are polled from Cassandra every %s s",
            notifier.redis_server, self._key, notifier.poll_interval,
        )
        while not self._queue.empty():
            self._queue.get_nowait()  # superseded by the read below
        counts = await self._read_counts()
        poll = _poll(self._queue, self._read_counts, notifier.poll_interval, counts)
        self._poller = asyncio.get_running_loop().create_task(poll)
        return counts

    def _explain(self, error: BaseException) -> BaseException:
        if isinstance(error, StorageUnavailableError) and self._listener is not None:
            return StorageUnavailableError(
                f"subscribe() on a Cassandra notification feed hears other processes' changes "
                f"through Redis pub/sub, and {error}"
            )
        return error

    async def _release(self) -> None:
        self._unregister()
        if self._listener is not None:
            await self._listener.close()
        if self._poller is not None:
            self._poller.cancel()
            await asyncio.wait([self._poller])

    def _release_soon(self) -> None:
        self._unregister()
        if self._listener is not None:
            self._listener.close_soon()
        poller = self._poller
        if poller is not None and not poller.get_loop().is_closed():
            poller.get_loop().call_soon_threadsafe(poller.cancel)

    def _unregister(self) -> None:
        listeners = _local.get(self._key)
        if listeners is not None:
            listeners.discard(self._queue)
            if not listeners:
                del _local[self._key]


async def _poll(
    queue: asyncio.Queue[Item], read_counts: ReadCounts, interval: float, last: Counts
) -> None:
    """Queue the counts whenever a read finds them changed; give up after a long outage."""
    failing_since: float | None = None
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval)
        try:
            counts = await read_counts()
        except StorageUnavailableError as exc:
            failing_since = failing_since or loop.time()
            if loop.time() - failing_since > RECONNECT_SECONDS:
                queue.put_nowait(exc)
                return
            logger.warning("could not poll the counts: %s", exc)
            continue
        except Exception as exc:
            queue.put_nowait(exc)
            return
        failing_since = None
        if counts != last:
            last = counts
            queue.put_nowait(("snapshot", counts))
