"""Connection settings and the registry of live clients, created lazily per event loop."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

_redis: dict[str, str] = {}
_cassandra: dict[str, dict[str, Any]] = {}
Closer = Callable[[Any], Awaitable[None]]
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], tuple[Any, Closer]]
] = weakref.WeakKeyDictionary()
_retired: list[tuple[Any, Closer]] = []

CASSANDRA_DEFAULTS: dict[str, Any] = {
    "hosts": ["127.0.0.1"],
    "port": 9042,
    "keyspace": "asyncfeeds",
    "consistency": "LOCAL_QUORUM",
}


def configure(
    redis: Mapping[str, str] | None = None,
    cassandra: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Set connection settings by name; names mentioned replace earlier ones, others stay.

    Everything is checked before anything changes, so a bad call leaves the settings as they were.
    """
    for name, url in (redis or {}).items():
        if not isinstance(url, str) or "://" not in url:
            raise ValueError(f"redis server {name!r} needs a URL like redis://host:port/db")
    for name, options in (cassandra or {}).items():
        if not isinstance(options, Mapping):
            raise TypeError(f"cassandra cluster {name!r} needs a dict of options")
        unknown = set(options) - set(CASSANDRA_DEFAULTS) - {"replication", "connect_timeout"}
        if unknown:
            raise ValueError(f"unknown cassandra options for {name!r}: {sorted(unknown)}")
    for name, url in (redis or {}).items():
        _redis[name] = url
        _retire("redis", name)
    for name, options in (cassandra or {}).items():
        _cassandra[name] = dict(options)
        _retire("cassandra", name)


def _retire(kind: str, name: str) -> None:
    """Stop handing out clients of a re-configured name; ``aclose`` closes them later."""
    for clients in _clients.values():
        entry = clients.pop((kind, name), None)
        if entry is not None:
            _retired.append(entry)


def redis_url(name: str) -> str:
    """The URL of a configured Redis, falling back to ``ASYNCFEEDS_REDIS_URL``."""
    if name in _redis:
        return _redis[name]
    return os.environ.get("ASYNCFEEDS_REDIS_URL", "redis://127.0.0.1:6379/0")


def redis_configured(name: str) -> bool:
    """Whether a Redis of this name was configured or ``ASYNCFEEDS_REDIS_URL`` is set."""
    return name in _redis or bool(os.environ.get("ASYNCFEEDS_REDIS_URL"))


def cassandra_options(name: str) -> dict[str, Any]:
    """The options of a configured Cassandra cluster, completed from the environment."""
    options = dict(CASSANDRA_DEFAULTS)
    hosts = os.environ.get("ASYNCFEEDS_CASSANDRA_HOSTS")
    if hosts:
        options["hosts"] = [h.strip() for h in hosts.split(",") if h.strip()]
    if os.environ.get("ASYNCFEEDS_CASSANDRA_PORT"):
        port = os.environ["ASYNCFEEDS_CASSANDRA_PORT"]
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"ASYNCFEEDS_CASSANDRA_PORT must be a port number, got {port!r}")
        options["port"] = int(port)
    if os.environ.get("ASYNCFEEDS_CASSANDRA_KEYSPACE"):
        options["keyspace"] = os.environ["ASYNCFEEDS_CASSANDRA_KEYSPACE"]
    options.update(_cassandra.get(name, {}))
    return options


def cached_client(kind: str, name: str, create: Callable[[], Any], close: Closer) -> Any:
    """The client of ``kind``/``name`` for the running loop, created by ``create`` on first use."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    entry = clients.get((kind, name))
    if entry is None:
        entry = clients[(kind, name)] = (create(), close)
    return entry[0]


def forget_client(kind: str, name: str) -> None:
    """Drop the running loop's cached client without closing it (after its creation failed)."""
    _clients.get(asyncio.get_running_loop(), {}).pop((kind, name), None)


async def aclose() -> None:
    """Close every client created in the running loop; safe to call twice."""
    clients = _clients.pop(asyncio.get_running_loop(), {})
    entries = list(clients.values()) + _retired
    _retired.clear()
    for client, close in entries:
        try:
            await close(client)
        except RuntimeError:
            pass  # a retired client of a loop that is already closed


def reset() -> None:
    """Forget all settings and cached clients without closing them (tests)."""
    _redis.clear()
    _cassandra.clear()
    _clients.clear()
    _retired.clear()
