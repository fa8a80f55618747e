"""``ping()``: does every configured server answer? For start-up and readiness probes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

from .config import configured_names
from .exceptions import StorageUnavailableError
from .storage.cassandra.connection import get_client
from .storage.redis.connection import get_server

PING_TIMEOUT = 10.0
"""Seconds a server has to answer ``ping`` whatever the driver's own timeouts say."""


async def ping(within: float = PING_TIMEOUT) -> None:
    """Check every configured Redis and Cassandra (all at once); raise for the first that fails.

    Checked are the names given to ``configure`` and ``default`` when an
    ``ASYNCFEEDS_REDIS_URL`` or ``ASYNCFEEDS_CASSANDRA_HOSTS`` variable points
    at it (and any name already in use in this event loop). A server that does
    not answer (within ``within`` seconds at most) raises ``StorageUnavailableError``
    naming it and its address.
    """
    checks: list[tuple[str, Callable[[], Awaitable[None]]]] = []
    for name in configured_names("redis"):
        server = get_server(name)
        checks.append((f"Redis {name!r} at {server.address}", server.ping))
    for name in configured_names("cassandra"):
        client = get_client(name)
        checks.append((f"Cassandra cluster {name!r} at {client.address}", client.ping))
    results = await asyncio.gather(
        *(_answers(label, check, within) for label, check in checks), return_exceptions=True
    )
    for result in results:
        if isinstance(result, BaseException):
            raise result


async def _answers(label: str, check: Callable[[], Awaitable[None]], seconds: float) -> None:
    try:
        async with asyncio.timeout(seconds):
            await check()
    except TimeoutError:
        raise StorageUnavailableError(f"{label} did not answer within {seconds:g} s") from None
