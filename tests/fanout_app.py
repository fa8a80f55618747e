"""A small fanout app importable by path (``fanout_app:AppManager``) for worker tests.

Worker subprocesses import it with ``PYTHONPATH`` pointing at ``tests/`` and
the same ``FANOUT_APP_RUN`` as the test process, so both sides use the same
Redis keys and queues, which no other test run shares.
``FANOUT_APP_STALL=1`` (set only in a subprocess) makes the stalling managers
write half of each flat chunk and then stall, so a test can kill or stop the
worker with a chunk in hand. While ``FLAKY_KEY`` exists, every chunk of the
flaky managers fails.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Sequence
from typing import Any

import redis.asyncio as redis_asyncio
from helpers import Like, Pin

import asyncfeeds
from asyncfeeds import FanoutPriority, Manager, RedisAggregatedFeed, RedisFeed

VERBS = (Pin, Like)  # importing them registers the test verbs in worker processes too

RUN = os.environ.setdefault("FANOUT_APP_RUN", uuid.uuid4().hex[:10])
REDIS_URL = os.environ.get("ASYNCFEEDS_TEST_REDIS_URL", "redis://127.0.0.1:6390/0")
QUEUE_URL = os.environ.get("FANOUT_APP_QUEUE_URL", REDIS_URL)
SERVER = "fanout_app"
PREFIX = f"fa{RUN}"
STALLED_KEY = f"{PREFIX}:stalled"
RELEASE_KEY = f"{PREFIX}:release"
FLAKY_KEY = f"{PREFIX}:flaky"


def configure() -> None:
    """Point the app's feeds at the test Redis (tests call it again after each reset)."""
    asyncfeeds.configure(redis={SERVER: REDIS_URL})


configure()


class AppFeed(RedisFeed):
    key_format = f"{PREFIX}:flat:{{user_id}}"
    activity_key_prefix = f"{PREFIX}:activity"
    redis_server = SERVER
    max_length = 100


class AppAggregatedFeed(RedisAggregatedFeed):
    key_format = f"{PREFIX}:aggregated:{{user_id}}"
    activity_key_prefix = f"{PREFIX}:activity"
    redis_server = SERVER


class AppUserFeed(RedisFeed):
    key_format = f"{PREFIX}:user:{{user_id}}"
    activity_key_prefix = f"{PREFIX}:activity"
    redis_server = SERVER
    max_length = 1000


class AppManager(Manager):
    """Followers come from a dict the test fills in; queues are private to this run."""

    feed_classes = {"flat": AppFeed, "aggregated": AppAggregatedFeed}
    user_feed_class = AppUserFeed
    fanout_chunk_size = 50
    fanout_chunks_per_job = 1  # one chunk a job: the tests count jobs by chunk
    queue_names = {
        FanoutPriority.HIGH: f"{PREFIX}:fanout:high",
        FanoutPriority.LOW: f"{PREFIX}:fanout:low",
    }
    queue_url = QUEUE_URL
    dead_letter_key = f"{PREFIX}:fanout:dead"
    retry_delay = 0.05
    job_timeout = 10

    def __init__(self, queue: Any = None, followers: dict[Any, Any] | None = None,
                 **kwargs: Any) -> None:
        super().__init__(queue, **kwargs)
        self.followers = followers or {}

    async def get_user_follower_ids(self, user_id: int | str) -> dict[FanoutPriority, Any]:
        return self.followers.get(user_id, {})


class UnreachableManager(AppManager):
    """Its queue's Redis does not exist."""

    queue_url = "redis://127.0.0.1:1/0"


class _StallingMixin:
    """With ``FANOUT_APP_STALL=1``: write half of a flat chunk, flag it, then ``stall()``."""

    async def fanout(
        self, feed_class: type[Any], user_ids: Sequence[Any], operation: str,
        activities: Sequence[Any],
    ) -> int:
        if not os.environ.get("FANOUT_APP_STALL") or feed_class is not AppFeed:
            return await super().fanout(feed_class, user_ids, operation, activities)  # type: ignore[misc]
        half = len(user_ids) // 2
        written = await super().fanout(feed_class, user_ids[:half], operation, activities)  # type: ignore[misc]
        client = redis_asyncio.from_url(REDIS_URL)
        try:
            await client.set(STALLED_KEY, "1", ex=300)
            await self.stall(client)
        finally:
            await client.aclose()
        rest = await super().fanout(feed_class, user_ids[half:], operation, activities)  # type: ignore[misc]
        return written + rest

    async def stall(self, client: Any) -> None:
        raise NotImplementedError


class KilledManager(_StallingMixin, AppManager):
    """Stalls for good: the test kills the worker. A short timeout keeps arq's in-progress
    key (job timeout + 11 s) short, so a new worker re-runs the chunk soon after."""

    job_timeout = 1

    async def stall(self, client: Any) -> None:
        await asyncio.sleep(3600)


class GracefulManager(_StallingMixin, AppManager):
    """Stalls until the test pushes to the release key (after it has sent SIGTERM)."""

    async def stall(self, client: Any) -> None:
        await client.blpop([RELEASE_KEY], timeout=60)


class DefaultStallingManager(_StallingMixin, AppManager):
    """The library's default timeouts, lease and retries; with ``FANOUT_APP_STALL=1`` it
    stalls for good on flat chunks, so a test can kill its worker mid-job."""

    job_timeout = Manager.job_timeout
    job_lease = Manager.job_lease
    retry_delay = Manager.retry_delay
    max_tries = Manager.max_tries

    async def stall(self, client: Any) -> None:
        await asyncio.sleep(3600)


class FlakyManager(AppManager):
    """Every chunk fails while ``FLAKY_KEY`` exists on the test Redis."""

    async def fanout(
        self, feed_class: type[Any], user_ids: Sequence[Any], operation: str,
        activities: Sequence[Any],
    ) -> int:
        client = redis_asyncio.from_url(REDIS_URL)
        try:
            flaky = await client.exists(FLAKY_KEY)
        finally:
            await client.aclose()
        if flaky:
            raise ConnectionError(f"injected failure: {FLAKY_KEY} is set")
        return await super().fanout(feed_class, user_ids, operation, activities)


class SlowRetryFlakyManager(FlakyManager):
    """Waits a minute before another try, so a failed job is seen waiting for it."""

    retry_delay = 60


class OneTryFlakyManager(FlakyManager):
    """Gives up after the first failure."""

    max_tries = 1
