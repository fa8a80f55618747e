"""Connecting to the arq queue with the JSON job codec, failing fast when Redis is away."""

from __future__ import annotations

import os
from typing import Any

from arq.connections import ArqRedis, RedisSettings, create_pool
from redis.exceptions import RedisError

from ..exceptions import StorageUnavailableError
from . import jobs

DEFAULT_QUEUE_URL = "redis://127.0.0.1:6379/0"


def queue_settings(url: str | None = None) -> RedisSettings:
    """Settings for the queue's Redis: ``url``, else ``ASYNCFEEDS_QUEUE_URL``, else the
    ``ASYNCFEEDS_REDIS_URL`` the feeds use, else a local Redis."""
    url = (
        url
        or os.environ.get("ASYNCFEEDS_QUEUE_URL")
        or os.environ.get("ASYNCFEEDS_REDIS_URL")
        or DEFAULT_QUEUE_URL
    )
    if not url.startswith(("redis://", "rediss://", "unix://")):
        raise ValueError(
            f"the fanout queue needs a standalone Redis URL (redis://host:port/db), got {url!r}"
        )
    settings = RedisSettings.from_dsn(url)
    settings.conn_retries = 1
    settings.conn_retry_delay = 1
    return settings


async def create_queue(
    redis_settings: RedisSettings | str | None = None, **kwargs: Any
) -> ArqRedis:
    """An arq pool for ``Manager(queue=...)`` that writes JSON jobs (never pickle).

    ``redis_settings`` is arq's ``RedisSettings`` or a URL; an unreachable Redis
    raises ``StorageUnavailableError`` naming host and port within seconds.
    """
    if redis_settings is None or isinstance(redis_settings, str):
        redis_settings = queue_settings(redis_settings)
    try:
        return await create_pool(
            redis_settings,
            job_serializer=jobs.dumps,
            job_deserializer=jobs.loads,
            **kwargs,
        )
    except (RedisError, OSError, TimeoutError) as error:
        where = f"{redis_settings.host}:{redis_settings.port}"
        raise StorageUnavailableError(
            f"cannot reach the fanout queue's Redis at {where}: {error}"
        ) from error
