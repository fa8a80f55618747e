"""Connection settings and the registry of live clients, created lazily per event loop."""

from __future__ import annotations

import asyncio
import os
import weakref
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from . import cassandra_settings
from .redis_urls import parse_redis_url

_redis: dict[str, tuple[str, dict[str, Any]]] = {}
_cassandra: dict[str, dict[str, Any]] = {}
Closer = Callable[[Any], Awaitable[None]]
_clients: weakref.WeakKeyDictionary[
    asyncio.AbstractEventLoop, dict[tuple[str, str], tuple[Any, Closer]]
] = weakref.WeakKeyDictionary()
_retired: list[tuple[Any, Closer]] = []

CASSANDRA_DEFAULTS = cassandra_settings.DEFAULTS
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"


def configure(
    redis: Mapping[str, str | Mapping[str, Any]] | None = None,
    cassandra: Mapping[str, Mapping[str, Any]] | None = None,
) -> None:
    """Set connection settings by name; names mentioned replace earlier ones, others stay.

    A Redis is a URL, or a dict with ``url`` and options of the URL query's names
    (``ssl_ca_certs``, ``password``...). Everything is checked before anything
    changes, so a bad call leaves the settings as they were; a Cassandra
    consistency that works only while every replica is up gives a
    ``ConsistencyWarning``.
    """
    redis_settings = {name: _redis_setting(name, value) for name, value in (redis or {}).items()}
    for name, options in (cassandra or {}).items():
        if not isinstance(options, Mapping):
            raise TypeError(f"cassandra cluster {name!r} needs a dict of options")
        cassandra_settings.check(name, options)
    for name, setting in redis_settings.items():
        _redis[name] = setting
        _retire("redis", name)
    for name, options in (cassandra or {}).items():
        _cassandra[name] = dict(options)
        _retire("cassandra", name)
        cassandra_settings.warn_about(name, cassandra_settings.check(name, options))


def _redis_setting(name: str, value: Any) -> tuple[str, dict[str, Any]]:
    """``(url, options)`` of one Redis setting, checked (``ValueError``/``TypeError``)."""
    if isinstance(value, Mapping):
        options = dict(value)
        url = options.pop("url", None)
        if not isinstance(url, str):
            raise TypeError(f"redis server {name!r}: a dict of options needs a 'url'")
    elif isinstance(value, str):
        url, options = value, {}
    else:
        raise TypeError(f"redis server {name!r} needs a URL like redis://host:port/db")
    try:
        parse_redis_url(url, options)
    except ValueError as exc:
        raise ValueError(f"redis server {name!r}: {exc}") from None
    return url, options


def _retire(kind: str, name: str) -> None:
    """Stop handing out clients of a re-configured name; ``aclose`` closes them later."""
    for clients in _clients.values():
        entry = clients.pop((kind, name), None)
        if entry is not None:
            _retired.append(entry)


def redis_url(name: str) -> str:
    """The URL of a configured Redis, falling back to ``ASYNCFEEDS_REDIS_URL``."""
    if name in _redis:
        return _redis[name][0]
    return os.environ.get("ASYNCFEEDS_REDIS_URL") or DEFAULT_REDIS_URL


def redis_options(name: str) -> dict[str, Any]:
    """The options ``configure`` gave a Redis beside its URL (none for the environment's)."""
    return dict(_redis[name][1]) if name in _redis else {}


def redis_configured(name: str) -> bool:
    """Whether a Redis of this name was configured or ``ASYNCFEEDS_REDIS_URL`` is set."""
    return name in _redis or bool(os.environ.get("ASYNCFEEDS_REDIS_URL"))


def cassandra_configured(name: str) -> bool:
    """Whether a Cassandra of this name was configured or ``ASYNCFEEDS_CASSANDRA_HOSTS`` is set."""
    return name in _cassandra or bool(os.environ.get("ASYNCFEEDS_CASSANDRA_HOSTS"))


def configured_names(kind: str) -> list[str]:
    """Names configured for ``redis`` or ``cassandra``, then those with a client in this loop."""
    names = list(_redis if kind == "redis" else _cassandra)
    if "default" not in names and (
        redis_configured("default") if kind == "redis" else cassandra_configured("default")
    ):
        names.append("default")
    try:
        clients = _clients.get(asyncio.get_running_loop(), {})
    except RuntimeError:
        clients = {}
    names.extend(n for k, n in clients if k == kind and n not in names)
    return names


def cassandra_options(name: str) -> dict[str, Any]:
    """The checked options of a Cassandra cluster: configured ones over the environment's.

    Every option can come from ``ASYNCFEEDS_CASSANDRA_<OPTION>`` (hosts as a comma
    list); ``ValueError`` names a variable or option that cannot work.
    """
    from_env = cassandra_settings.from_environment()
    options = {**from_env, **_cassandra.get(name, {})}
    source = "configure and ASYNCFEEDS_CASSANDRA_* variables" if from_env else "configure"
    return cassandra_settings.check(name, options, source)


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
