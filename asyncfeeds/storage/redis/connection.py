"""Redis clients by configured name: one per event loop, bounded connects, errors made clear.

``RedisServer`` is what the storages talk to: it resolves the running loop's
client, sends many commands as one pipeline (one round trip per node), runs Lua
scripts by SHA and turns connection failures into ``StorageUnavailableError``.
"""

from __future__ import annotations

import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from urllib.parse import urlsplit

from redis.asyncio import Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.backoff import ExponentialBackoff
from redis.commands.core import AsyncScript
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...config import cached_client, redis_url
from ...exceptions import StorageUnavailableError
from .scripts import Lua

Client = Redis | RedisCluster
Command = tuple[Any, ...]

CLUSTER_SCHEMES = {"redis+cluster": "redis", "rediss+cluster": "rediss"}
CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connect; with one retry an unreachable server fails in ~4 s."""
SOCKET_TIMEOUT = 10.0
"""Seconds to wait for a reply; a hung server raises instead of blocking forever."""

_scripts: weakref.WeakKeyDictionary[Any, dict[str, AsyncScript]] = weakref.WeakKeyDictionary()


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://host:port``)."""
    return urlsplit(url).scheme in CLUSTER_SCHEMES


def address_of(url: str) -> str:
    """``host:port`` (or the socket path) of a Redis URL, for error messages."""
    parts = urlsplit(url)
    if parts.scheme == "unix":
        return parts.path
    return f"{parts.hostname or '127.0.0.1'}:{parts.port or 6379}"


def _options(**overrides: Any) -> dict[str, Any]:
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),  # one more connect attempt
        "lib_name": None,
        "lib_version": None,
    }
    options.update(overrides)
    return options


def create_client(url: str, **overrides: Any) -> Client:
    """A new, not yet connected client for ``url``; URL query options win over the defaults."""
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        plain = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
        return RedisCluster.from_url(
            plain,
            **_options(
                cluster_error_retry_attempts=1, connection_error_retry_attempts=1, **overrides
            ),
        )
    if scheme not in ("redis", "rediss", "unix"):
        raise ValueError(f"unsupported Redis URL scheme {scheme!r} in {url!r}")
    return Redis.from_url(url, **_options(**overrides))


def create_pubsub_client(url: str) -> Redis:
    """A plain client for pub/sub; for a cluster, one connected to its seed node."""
    scheme = urlsplit(url).scheme
    if scheme in CLUSTER_SCHEMES:
        url = CLUSTER_SCHEMES[scheme] + url[len(scheme) :]
    return Redis.from_url(url, **_options())


async def close_client(client: Client) -> None:
    """Close a client and its connections."""
    await client.aclose()


def _is_connect_failure(exc: RedisClusterException) -> bool:
    """Whether a cluster error means "cannot reach or use the cluster" (not a usage bug)."""
    cause = exc.__cause__
    return (
        isinstance(exc, SlotNotCoveredError)
        or isinstance(cause, RedisConnectionError | RedisTimeoutError | OSError)
        or "cannot be connected" in str(exc)
        or "slots are not covered" in str(exc)
    )


class RedisServer:
    """A configured Redis by name, as the storages use it (the client is per event loop)."""

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return f"<RedisServer {self.name!r} {address_of(redis_url(self.name))}>"

    @property
    def address(self) -> str:
        """``host:port`` of the configured server (or cluster seed node)."""
        return address_of(redis_url(self.name))

    @property
    def is_cluster(self) -> bool:
        """Whether this name points at a Redis Cluster."""
        return is_cluster_url(redis_url(self.name))

    def client(self) -> Client:
        """The running loop's client, created on first use."""
        url = redis_url(self.name)
        return cached_client("redis", self.name, lambda: create_client(url), close_client)

    def pubsub(self) -> tuple[PubSub, Redis | None]:
        """A pub/sub handle and the client to close with it (``None``: the shared client's).

        On a cluster the handle talks to the seed node: classic pub/sub messages
        reach every node, so any node will do.
        """
        url = redis_url(self.name)
        if not is_cluster_url(url):
            return self.client().pubsub(), None  # type: ignore[union-attr]
        client = create_pubsub_client(url)
        return client.pubsub(), client

    @contextmanager
    def errors(self) -> Iterator[None]:
        """Turn connection failures into ``StorageUnavailableError`` naming the address."""
        try:
            yield
        except (RedisConnectionError, RedisTimeoutError, ClusterDownError, OSError) as exc:
            raise StorageUnavailableError(
                f"Redis {self.name!r} at {self.address} is unavailable: {exc}"
            ) from exc
        except RedisClusterException as exc:
            if _is_connect_failure(exc):
                raise StorageUnavailableError(
                    f"Redis Cluster {self.name!r} at {self.address} is unavailable: {exc}"
                ) from exc
            raise

    def script(self, lua: Lua) -> AsyncScript:
        """The client's registered ``Script`` for ``lua`` (its SHA is computed once)."""
        client = self.client()
        registry = _scripts.setdefault(client, {})
        script = registry.get(lua.name)
        if script is None:
            script = registry[lua.name] = client.register_script(lua.source)
        return script

    def evalsha(self, lua: Lua, keys: Sequence[str], args: Sequence[Any]) -> Command:
        """The ``EVALSHA`` command running ``lua`` on ``keys`` (all of one hash tag)."""
        return ("EVALSHA", self.script(lua).sha, len(keys), *keys, *args)

    async def call(self, *args: Any) -> Any:
        """Send one command and return its reply."""
        with self.errors():
            return await self.client().execute_command(*args)

    async def run(self, commands: Sequence[Command]) -> list[Any]:
        """Send commands as one pipeline (one round trip per node); the replies in order.

        A script the server does not know yet (``NOSCRIPT``) is loaded and only the
        commands that failed for that reason are sent again.
        """
        if not commands:
            return []
        client = self.client()
        with self.errors():
            results = await _pipeline(client, commands)
            missing = [i for i, result in enumerate(results) if isinstance(result, NoScriptError)]
            if missing:
                await self._load_scripts(client, {commands[i][1] for i in missing})
                retried = await _pipeline(client, [commands[i] for i in missing])
                for i, result in zip(missing, retried, strict=True):
                    results[i] = result
            for result in results:  # a cluster pipeline reports a lost node here, too
                if isinstance(result, Exception):
                    raise result
        return results

    async def scan(self, pattern: str) -> list[str]:
        """Every key matching a glob ``pattern``, from every node of a cluster."""
        client = self.client()
        with self.errors():
            return [key.decode() async for key in client.scan_iter(match=pattern, count=1000)]

    async def delete(self, keys: Sequence[str], batch: int = 2048) -> None:
        """Delete keys, a pipeline per ``batch`` keys (one DEL each, so any slot works)."""
        for start in range(0, len(keys), batch):
            await self.run([("DEL", key) for key in keys[start : start + batch]])

    async def _load_scripts(self, client: Client, shas: set[Any]) -> None:
        for script in _scripts.get(client, {}).values():
            if script.sha in shas:
                await client.script_load(script.script)


async def _pipeline(client: Client, commands: Sequence[Command]) -> list[Any]:
    if len(commands) == 1:  # a lone command skips the pipeline's bookkeeping
        try:
            return [await client.execute_command(*commands[0])]
        except NoScriptError as exc:
            return [exc]
    pipe = client.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    return await pipe.execute(raise_on_error=False)


_servers: dict[str, RedisServer] = {}


def get_server(name: str) -> RedisServer:
    """The ``RedisServer`` handle of a configured name (cheap; clients are resolved per call)."""
    server = _servers.get(name)
    if server is None:
        server = _servers[name] = RedisServer(name)
    return server
