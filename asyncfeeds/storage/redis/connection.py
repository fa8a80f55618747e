"""Redis clients by configured name: one per event loop, bounded connects, errors made clear.

``RedisServer`` is what the storages talk to: it resolves the running loop's
client, sends many commands as one pipeline (one round trip per node), runs Lua
scripts by SHA and turns connection failures into ``StorageUnavailableError``.
A single server's client sends every script ahead of the commands of the first
pipeline it runs (the same round trip), so no call meets ``NOSCRIPT`` unless the
server lost its scripts since (a restart; then they are loaded on use).
"""

from __future__ import annotations

import traceback
import weakref
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

from redis.asyncio import ConnectionPool, Redis, RedisCluster
from redis.asyncio.client import PubSub
from redis.asyncio.cluster import ClusterNode
from redis.asyncio.connection import Connection, SSLConnection, UnixDomainSocketConnection
from redis.backoff import ExponentialBackoff
from redis.exceptions import (
    ClusterDownError,
    NoScriptError,
    RedisClusterException,
    ResponseError,
    SlotNotCoveredError,
)
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ...config import cached_client, redis_options, redis_url
from ...exceptions import StorageUnavailableError
from ...redis_urls import CLUSTER_SCHEMES, RedisTarget, parse_redis_url
from .calls import Command as Command
from .calls import script_call
from .scripts import REGISTRY, Lua

__all__ = ["RedisServer", "create_client", "get_server"]

Client = Redis | RedisCluster

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connect; with one retry an unreachable server fails in ~4 s."""
SOCKET_TIMEOUT = 5.0
"""Seconds to wait for a reply; a hung server raises instead of blocking forever."""

_primed: weakref.WeakSet[Any] = weakref.WeakSet()
"""Clients whose server was sent every script (in the first pipeline the client ran)."""


def is_cluster_url(url: str) -> bool:
    """Whether ``url`` names a Redis Cluster (``redis+cluster://host:port,...``)."""
    return url.split("://", 1)[0].lower() in CLUSTER_SCHEMES


def address_of(url: str) -> str:
    """``host:port`` of every seed (or the socket path) of a Redis URL, for error messages."""
    try:
        return parse_redis_url(url).address
    except ValueError:
        return url


def _options(target: RedisTarget, overrides: dict[str, Any]) -> dict[str, Any]:
    """Client arguments: our bounded defaults, then the URL's and configure's options."""
    options: dict[str, Any] = {
        "socket_connect_timeout": CONNECT_TIMEOUT,
        "socket_timeout": SOCKET_TIMEOUT,
        "retry": Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),  # one more connect attempt
        "lib_name": None,
        "lib_version": None,
    }
    options.update(target.options)
    options.update(overrides)
    return options


def create_client(url: str, options: dict[str, Any] | None = None, **overrides: Any) -> Client:
    """A new, not yet connected client for ``url`` and ``configure`` ``options``.

    ``overrides`` go to redis-py as they are (say a ``connection_class`` in tests).
    """
    target = parse_redis_url(url, options)
    if target.cluster:
        kwargs = _options(
            target, {"cluster_error_retry_attempts": 1, "connection_error_retry_attempts": 1}
        )
        kwargs.update(overrides)
        nodes = [ClusterNode(host, port) for host, port in target.seeds]
        cluster: RedisCluster = RedisCluster(startup_nodes=nodes, ssl=target.tls, **kwargs)
        return cluster
    kwargs = _options(target, overrides)
    if target.path is not None:
        kwargs.setdefault("connection_class", UnixDomainSocketConnection)
        kwargs["path"] = target.path
    else:
        kwargs.setdefault("connection_class", SSLConnection if target.tls else Connection)
        kwargs["host"], kwargs["port"] = target.seeds[0]
    return Redis.from_pool(ConnectionPool(**kwargs))


class _SeedsConnection(Connection):
    """A connection that tries each seed of a cluster URL in turn until one accepts it."""

    seeds: tuple[tuple[str, int], ...] = ()

    async def _connect(self) -> None:
        # redis-py's connect() retries and wraps errors around this per-address step.
        failures = []
        for host, port in self.seeds:
            self.host, self.port = host, port
            try:
                await super()._connect()  # type: ignore[no-untyped-call]
                return
            except (TimeoutError, OSError) as exc:
                failures.append(f"{host}:{port} ({exc or type(exc).__name__})")
        raise OSError(f"no seed node answered: {', '.join(failures)}")


class _SeedsSSLConnection(_SeedsConnection, SSLConnection):
    """``_SeedsConnection`` over TLS."""


def create_pubsub_client(url: str, options: dict[str, Any] | None = None) -> Redis:
    """A plain client for pub/sub; for a cluster, one that connects to the first live seed.

    Classic pub/sub messages reach every node of a cluster, so any node will do.
    """
    target = parse_redis_url(url, options)
    if not target.cluster:
        return create_client(url, options)  # type: ignore[return-value]
    base = _SeedsSSLConnection if target.tls else _SeedsConnection
    seeded = type(base.__name__, (base,), {"seeds": target.seeds})
    kwargs = _options(target, {"connection_class": seeded})
    kwargs["host"], kwargs["port"] = target.seeds[0]
    return Redis.from_pool(ConnectionPool(**kwargs))


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
        return f"<RedisServer {self.name!r} {self.address}>"

    @property
    def address(self) -> str:
        """``host:port`` of the configured server (every seed node of a cluster)."""
        return address_of(redis_url(self.name))

    @property
    def is_cluster(self) -> bool:
        """Whether this name points at a Redis Cluster."""
        return is_cluster_url(redis_url(self.name))

    def client(self) -> Client:
        """The running loop's client, created on first use."""
        client: Client = cached_client("redis", self.name, self._create, close_client)
        return client

    def _create(self) -> Client:
        return create_client(redis_url(self.name), redis_options(self.name))

    def pubsub(self) -> tuple[PubSub, Redis | None]:
        """A pub/sub handle and the client to close with it (``None``: the shared client's).

        On a cluster the handle talks to the first seed node that answers: classic
        pub/sub messages reach every node, so any node will do.
        """
        url = redis_url(self.name)
        if not is_cluster_url(url):
            return self.client().pubsub(), None  # type: ignore[union-attr]
        client = create_pubsub_client(url, redis_options(self.name))
        return client.pubsub(), client

    async def ping(self) -> None:
        """Ask the server (every primary of a cluster) to answer; errors as for any call."""
        client = self.client()
        with self.errors():
            if isinstance(client, RedisCluster):
                await client.ping(target_nodes=RedisCluster.PRIMARIES)
            else:
                await client.ping()

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
        except AttributeError as exc:
            if _raised_in_cluster_client(exc):
                raise StorageUnavailableError(
                    f"Redis Cluster {self.name!r} at {self.address} is unavailable: its node "
                    f"table was reset by a failure during this call ({exc})"
                ) from exc
            raise
        except ResponseError as exc:
            if "DB index is out of range" in str(exc):  # sent by SELECT when connecting
                raise StorageUnavailableError(
                    f"Redis {self.name!r} at {self.address} refused database "
                    f"{redis_options_db(self.name)}: {exc} (the server has fewer databases; "
                    f"check the /db part of the URL)"
                ) from exc
            raise

    def evalsha(self, lua: Lua, keys: Sequence[str], args: Sequence[Any]) -> Command:
        """The ``EVALSHA`` command running ``lua`` on ``keys`` (all of one hash tag)."""
        return ("EVALSHA", lua.sha, len(keys), *keys, *args)

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
            results = await self._run_priming(client, commands)
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

    async def _run_priming(self, client: Client, commands: Sequence[Command]) -> list[Any]:
        """``_pipeline``, led by a SCRIPT LOAD of every script on a client's first run (a
        single server: a cluster pipeline cannot route them; it loads scripts on use)."""
        if client in _primed or isinstance(client, RedisCluster):
            return await _pipeline(client, commands)
        loads = [("SCRIPT", "LOAD", lua.source) for lua in REGISTRY.values()]
        _primed.add(client)
        try:
            results = await _pipeline(client, [*loads, *commands])
        except BaseException:
            _primed.discard(client)
            raise
        return results[len(loads) :]  # a refused load leaves that script to load on use

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
        """Load scripts the server lost since the connection loaded them (SCRIPT FLUSH)."""
        for sha in shas:
            await client.script_load(REGISTRY[sha].source)


async def _pipeline(client: Client, commands: Sequence[Command]) -> list[Any]:
    if len(commands) == 1:  # a lone command skips the pipeline's bookkeeping
        try:
            if commands[0][0] == "EVALSHA" and type(client) is Redis and client.connection is None:
                return [await script_call(client, commands[0])]
            return [await client.execute_command(*commands[0])]
        except NoScriptError as exc:
            return [exc]
    pipe = client.pipeline(transaction=False)
    for args in commands:
        pipe.execute_command(*args)
    return await pipe.execute(raise_on_error=False)


def _raised_in_cluster_client(exc: BaseException) -> bool:
    """Whether ``exc`` comes from redis-py's cluster client itself: during a failover a call
    can meet the node table another call just cleared (``None`` where a node was)."""
    frames = traceback.extract_tb(exc.__traceback__)
    return bool(frames) and frames[-1].filename.replace("\\", "/").endswith(
        "redis/asyncio/cluster.py"
    )


def redis_options_db(name: str) -> int:
    """The database number a configured Redis name selects."""
    try:
        return int(parse_redis_url(redis_url(name), redis_options(name)).options.get("db", 0))
    except ValueError:
        return 0


_servers: dict[str, RedisServer] = {}


def get_server(name: str) -> RedisServer:
    """The ``RedisServer`` handle of a configured name (cheap; clients are resolved per call)."""
    server = _servers.get(name)
    if server is None:
        server = _servers[name] = RedisServer(name)
    return server
