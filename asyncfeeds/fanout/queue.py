"""The arq queue: which Redis, pools with the JSON job codec and bounded waits, enqueueing.

Every client made here has a connect timeout and a socket timeout, so a Redis
that is down or hung (say SIGSTOPped) raises within seconds instead of hanging
the app or the worker. arq's own ``create_pool`` passes no socket timeout, so
the pool is built here with the same options arq would use plus the timeouts.
All of the manager's queue I/O goes through here (and ``clock``, ``deadletters``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from typing import Any
from urllib.parse import urlsplit

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry

from ..config import redis_url
from ..exceptions import StorageUnavailableError
from ..feeds.base import Feed
from . import release
from .payload import JOB_FUNCTION, FanoutJob, dumps, encode, loads

CONNECT_TIMEOUT = 2.0
"""Seconds to wait for a TCP connect to the queue's Redis (one more attempt follows)."""
SOCKET_TIMEOUT = 5.0
"""Seconds to wait for a reply: queue commands are small, so a longer wait means a hung server."""
STANDALONE_SCHEMES = ("redis", "rediss", "unix")


class QueueConfigError(ValueError):
    """The fanout queue's Redis is not set up in a way arq can use."""


def queue_url(url: str | None = None) -> str:
    """The URL of the queue's Redis: ``url``, else ``ASYNCFEEDS_QUEUE_URL``, else the
    ``default`` Redis the feeds use (``configure(redis={"default": ...})``, else
    ``ASYNCFEEDS_REDIS_URL``, else ``redis://127.0.0.1:6379/0``).

    arq needs a standalone Redis: when the rule lands on a Redis Cluster URL this
    raises ``QueueConfigError`` saying which variable to set, rather than guessing a node.
    """
    if url:
        chosen, source = url, "the queue URL given"
    elif os.environ.get("ASYNCFEEDS_QUEUE_URL"):
        chosen, source = os.environ["ASYNCFEEDS_QUEUE_URL"], "ASYNCFEEDS_QUEUE_URL"
    else:
        chosen, source = redis_url("default"), "the default Redis of the feeds"
    scheme = urlsplit(chosen).scheme
    if scheme.endswith("+cluster"):
        raise QueueConfigError(
            f"the fanout queue needs a standalone Redis, but {source} is a Redis Cluster "
            f"({chosen}); set ASYNCFEEDS_QUEUE_URL (or Manager.queue_url) to a "
            "redis://host:port/db URL"
        )
    if scheme not in STANDALONE_SCHEMES:
        raise QueueConfigError(
            f"the fanout queue needs a standalone Redis URL (redis://host:port/db), "
            f"but {source} is {chosen!r}"
        )
    return chosen


def queue_settings(url: str | None = None) -> RedisSettings:
    """arq ``RedisSettings`` for the queue's Redis (see ``queue_url``), with bounded connects."""
    chosen = queue_url(url)
    try:
        settings = RedisSettings.from_dsn(chosen)
    except (RuntimeError, ValueError) as error:
        raise QueueConfigError(f"bad fanout queue URL {chosen!r}: {error}") from None
    settings.conn_timeout = CONNECT_TIMEOUT  # type: ignore[assignment]
    settings.conn_retries = 1
    settings.conn_retry_delay = 1
    return settings


def queue_address(settings: RedisSettings) -> str:
    """``host:port/db`` (or the socket path) of the queue's Redis, for messages."""
    if settings.unix_socket_path:
        return settings.unix_socket_path
    return f"{settings.host}:{settings.port}/{settings.database}"


def pool_address(pool: Any) -> str:
    """``host:port`` of an arq pool's Redis, for messages."""
    options = pool.connection_pool.connection_kwargs
    if options.get("path"):
        return str(options["path"])
    return f"{options.get('host', '?')}:{options.get('port', '?')}"


def queue_client(
    settings: RedisSettings,
    *,
    default_queue_name: str | None = None,
    expires_extra_ms: int | None = None,
) -> ArqRedis:
    """A JSON arq client for ``settings`` with connect and socket timeouts; not yet connected."""
    options: dict[str, Any] = {}
    if default_queue_name is not None:
        options["default_queue_name"] = default_queue_name
    if expires_extra_ms is not None:
        options["expires_extra_ms"] = expires_extra_ms
    return ArqRedis(
        host=settings.host,
        port=settings.port,
        unix_socket_path=settings.unix_socket_path,
        db=settings.database,
        username=settings.username,
        password=settings.password,
        ssl=settings.ssl,
        ssl_keyfile=settings.ssl_keyfile,
        ssl_certfile=settings.ssl_certfile,
        ssl_cert_reqs=settings.ssl_cert_reqs,
        ssl_ca_certs=settings.ssl_ca_certs,
        ssl_ca_data=settings.ssl_ca_data,
        ssl_check_hostname=settings.ssl_check_hostname,
        socket_connect_timeout=settings.conn_timeout or CONNECT_TIMEOUT,
        socket_timeout=SOCKET_TIMEOUT,
        retry=settings.retry or Retry(ExponentialBackoff(cap=0.2, base=0.05), 1),
        retry_on_timeout=settings.retry_on_timeout,
        retry_on_error=settings.retry_on_error,
        max_connections=settings.max_connections,
        job_serializer=dumps,
        job_deserializer=loads,
        lib_name=None,
        lib_version=None,
        **options,
    )


async def create_queue(
    redis_settings: RedisSettings | str | None = None,
    *,
    default_queue_name: str | None = None,
    expires_extra_ms: int | None = None,
) -> ArqRedis:
    """An arq pool for ``Manager(queue=...)`` that writes JSON jobs (never pickle).

    ``redis_settings`` is arq's ``RedisSettings`` or a URL (default: ``queue_url()``).
    A Redis that is down or does not answer raises ``StorageUnavailableError``
    naming host and port within seconds; every later call of the pool is bounded
    by the same timeouts.
    """
    if redis_settings is None or isinstance(redis_settings, str):
        redis_settings = queue_settings(redis_settings)
    where = queue_address(redis_settings)
    if redis_settings.sentinel:  # arq resolves the master; its pool has no socket timeout
        try:
            return await create_pool(redis_settings, job_serializer=dumps,
                                     job_deserializer=loads)
        except (RedisError, OSError, TimeoutError) as error:
            raise StorageUnavailableError(
                f"cannot reach the fanout queue's Redis at {where}: {error}"
            ) from error
    pool = queue_client(redis_settings, default_queue_name=default_queue_name,
                        expires_extra_ms=expires_extra_ms)
    try:
        await pool.ping()
    except (RedisError, OSError, TimeoutError) as error:
        await pool.aclose()
        raise StorageUnavailableError(
            f"cannot reach the fanout queue's Redis at {where}: {error}"
        ) from error
    return pool


def json_client(pool: ArqRedis) -> ArqRedis:
    """An arq client on ``pool``'s connections that always writes JSON jobs, never pickle."""
    return ArqRedis(pool_or_conn=pool.connection_pool, job_serializer=dumps,
                    job_deserializer=loads)


@asynccontextmanager
async def queue_errors(pool: Any) -> AsyncIterator[None]:
    """Turn a failed connection to the queue's Redis into ``StorageUnavailableError``."""
    try:
        yield
    except (RedisConnectionError, RedisTimeoutError, OSError) as error:
        raise StorageUnavailableError(
            f"cannot reach the fanout queue's Redis at {pool_address(pool)}: {error}"
        ) from error


class Enqueuer:
    """Hands the jobs of one queue to arq ``concurrency`` at a time.

    A job whose id is still queued or running is not enqueued again (arq keeps
    the first); ``enqueued`` and ``duplicates`` count both outcomes.
    ``on_batch`` is called with the number of follower feeds of each batch handed over.
    """

    def __init__(
        self,
        client: ArqRedis,
        queue_name: str,
        concurrency: int,
        on_batch: Callable[[int], object] | None = None,
    ) -> None:
        self.client = client
        self.queue_name = queue_name
        self.concurrency = concurrency
        self.on_batch = on_batch
        self.pending: list[tuple[FanoutJob, type[Feed[Any]]]] = []
        self.enqueued = 0
        self.duplicates = 0

    async def submit(self, job: FanoutJob, feed_class: type[Feed[Any]]) -> None:
        """Queue a job; a full batch is handed to Redis at once."""
        self.pending.append((job, feed_class))
        if len(self.pending) >= self.concurrency:
            await self.flush()

    async def flush(self) -> None:
        """Hand every pending job to Redis, concurrently."""
        pending, self.pending = self.pending, []
        if not pending:
            return
        async with queue_errors(self.client):
            tracked: dict[str, list[str]] = {}
            for job, _ in pending:
                if job.release is not None:
                    tracked.setdefault(job.release, []).append(job.job_id)
            for key, job_ids in tracked.items():  # before the jobs can run
                await release.track(self.client, key, job_ids)
            results = await asyncio.gather(*(self._enqueue(*item) for item in pending))
        new = sum(results)
        self.enqueued += new
        self.duplicates += len(results) - new
        if self.on_batch is not None:
            self.on_batch(sum(len(job.user_ids) for job, _ in pending))

    async def _enqueue(self, job: FanoutJob, feed_class: type[Feed[Any]]) -> bool:
        queued = await self.client.enqueue_job(
            JOB_FUNCTION, encode(job, feed_class), _job_id=job.job_id, _queue_name=self.queue_name
        )
        return queued is not None
