"""asyncfeeds driver for the peer benchmark harness (shared/bench/peer/harness.py).

Maps the harness vocabulary (ActivitySpec, user ids) onto asyncfeeds' Redis
backend: RedisFeed for W1/W2, RedisAggregatedFeed for W3, RedisNotificationFeed
for W4, and W1 published through an eager ``asyncfeeds.Manager``. Timed methods
return the library's own awaitable so the harness measures the library only.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Sequence
from importlib.metadata import version
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio

import asyncfeeds
from asyncfeeds import (
    Activity,
    FanoutPriority,
    Manager,
    RedisAggregatedFeed,
    RedisFeed,
    RedisNotificationFeed,
    Verb,
    register_verb,
)
from asyncfeeds.fanout import create_queue
from asyncfeeds.storage.redis.keys import timeline_key

HERE = Path(__file__).resolve().parent

VERB_IDS = range(11, 21)
"""The verb ids the workloads use (harness.VERB_IDS)."""


def _register_bench_verbs() -> None:
    for verb_id in VERB_IDS:
        verb = type(f"BenchVerb{verb_id}", (Verb,), {
            "id": verb_id, "infinitive": f"bench{verb_id}", "past_tense": f"bench{verb_id}ed",
        })
        try:
            register_verb(verb)
        except ValueError:
            pass  # registered by an earlier driver in this process


_register_bench_verbs()


class FanoutFeed(RedisFeed):
    """W1 follower feeds: library defaults (max_length 100, trimmed on every add)."""

    key_format = "feed_{user_id}"


class UserFeed(RedisFeed):
    """W1 actor's own feed."""

    key_format = "user_feed:{user_id}"
    max_length = 10**6


class ReadFeed(RedisFeed):
    """W2: holds 1,000 activities (the default max_length of 100 would trim it)."""

    key_format = "read_feed:{user_id}"
    max_length = 1000


class AggFeed(RedisAggregatedFeed):
    """W3: library defaults (RecentVerbAggregator, merge_max_length 20, max_length 100)."""


class NotifFeed(RedisNotificationFeed):
    """W4: library defaults (NotificationAggregator, max_length 99)."""


FOLLOWERS: dict[int, list[int]] = {}
"""The follower "database": actor id -> follower ids."""


class BenchManager(Manager):
    """Eager manager: every fanout chunk is written inline before ``add_user_activity`` returns."""

    feed_classes = {"normal": FanoutFeed}
    user_feed_class = UserFeed
    fanout_chunk_size = 100

    async def get_user_follower_ids(self, user_id: int) -> dict[FanoutPriority, list[int]]:
        return {FanoutPriority.HIGH: FOLLOWERS.get(user_id, [])}


class ArqBenchManager(Manager):
    """W1 through arq workers: the library's defaults (chunk size, queue names, job settings)."""

    feed_classes = {"normal": FanoutFeed}
    user_feed_class = UserFeed

    async def get_user_follower_ids(self, user_id: int) -> dict[FanoutPriority, list[int]]:
        return {FanoutPriority.HIGH: FOLLOWERS.get(user_id, [])}


WARM_UP_ACTOR = 2
"""Publishes to 1,000 other followers before the timed arq run: workers up, scripts loaded."""


def to_activity(spec: Any) -> Activity:
    """An asyncfeeds Activity from a harness ActivitySpec (naive UTC time)."""
    return Activity(
        actor=spec.actor_id,
        verb=spec.verb_id,
        object=spec.object_id,
        target=spec.target_id,
        time=spec.time,
        extra_context=dict(spec.extra) if spec.extra else {},
    )


class AsyncfeedsDriver:
    """The harness driver contract, implemented with asyncfeeds on one Redis."""

    name = "asyncfeeds"

    def __init__(self, host: str = "127.0.0.1", port: int = 6391, db: int = 0) -> None:
        self.url = f"redis://{host}:{port}/{db}"
        asyncfeeds.configure(redis={"default": self.url})
        self.manager = BenchManager()
        self._raw: redis_asyncio.Redis | None = None
        self._agg_acts: dict[int, Activity] = {}
        self._notif_acts: dict[int, Activity] = {}
        self._workers: list[asyncio.subprocess.Process] = []
        self._worker_log: Any = None

    @property
    def raw(self) -> redis_asyncio.Redis:
        """A plain client for checks outside the library (FLUSHDB, raw ZSCORE, INFO)."""
        if self._raw is None:
            self._raw = redis_asyncio.Redis.from_url(self.url)
        return self._raw

    async def aclose(self) -> None:
        """Close the library's pools and the raw client."""
        await asyncfeeds.aclose()
        if self._raw is not None:
            await self._raw.aclose()
            self._raw = None

    # -- misc ----------------------------------------------------------------------
    async def versions(self) -> dict[str, Any]:
        info = await self.raw.info("server")
        return {
            "python": sys.version.split()[0],
            "platform": platform.platform(),
            "redis_server": info.get("redis_version"),
            "redis_py": version("redis"),
            "hiredis": _installed("hiredis"),
            "asyncfeeds": version("asyncfeeds"),
            "pydantic": version("pydantic"),
            "orjson": version("orjson"),
            "cpu_count": os.cpu_count(),
            "event_loop": "asyncio (default selector loop)",
            "fanout_mode": "eager Manager: chunks of 100 written inline, one pipeline per chunk",
        }

    async def reset(self) -> None:
        await self.raw.flushdb()
        FOLLOWERS.clear()

    @staticmethod
    def activity_key(activity: Activity) -> tuple[Any, int, Any]:
        return (activity.actor, activity.verb.id, activity.object)

    # -- W1 ------------------------------------------------------------------------
    def fanout_prepare(self, actor_id: int, follower_ids: Sequence[int], chunk_size: int = 100):
        FOLLOWERS[actor_id] = list(follower_ids)
        BenchManager.fanout_chunk_size = chunk_size

    def fanout_add(self, actor_id: int, spec: Any) -> Awaitable[None]:
        return self.manager.add_user_activity(actor_id, to_activity(spec))

    async def feed_contains(self, user_id: int, spec: Any) -> bool:
        """Library read path: ``FanoutFeed(user)[:25]``, hydrated, compared by id and fields."""
        wanted = to_activity(spec)
        key = (spec.actor_id, spec.verb_id, spec.object_id)
        return any(
            a.activity_id == wanted.activity_id and self.activity_key(a) == key
            for a in await FanoutFeed(user_id)[:25]
        )

    async def count_feeds_containing(self, user_ids: Sequence[int], spec: Any) -> int:
        """Raw check of every follower timeline: pipelined ZSCORE."""
        member = to_activity(spec).activity_id
        found = 0
        for start in range(0, len(user_ids), 1000):
            async with self.raw.pipeline(transaction=False) as pipe:
                for user_id in user_ids[start : start + 1000]:
                    pipe.zscore(timeline_key(FanoutFeed.feed_key(user_id)), member)
                found += sum(1 for score in await pipe.execute() if score is not None)
        return found

    # -- W1 through arq worker processes -------------------------------------------
    async def start_workers(self, count: int, cpus: str | None = None) -> None:
        """Start ``count`` ``asyncfeeds worker`` processes on the high queue of this Redis
        (on ``cpus``, a taskset list; None: this process's) and wait until they have run a
        warm-up publish (1,000 other followers)."""
        env = {**os.environ, "ASYNCFEEDS_REDIS_URL": self.url}
        command = [sys.executable, "-m", "asyncfeeds.cli", "worker", "--manager",
                   "asyncfeeds_driver:ArqBenchManager", "--priority", "high"]
        if cpus is not None:
            command = ["taskset", "-c", cpus, *command]
        self._worker_log = tempfile.TemporaryFile()
        for _ in range(count):
            self._workers.append(await asyncio.create_subprocess_exec(
                *command, cwd=HERE, env=env, stdout=subprocess.DEVNULL, stderr=self._worker_log,
            ))
        FOLLOWERS[WARM_UP_ACTOR] = list(range(5_000_001, 5_001_001))
        warm_up = Activity(actor=WARM_UP_ACTOR, verb=VERB_IDS[0], object=1,
                           time=dt.datetime(2023, 1, 1))
        await self.arq_fanout(WARM_UP_ACTOR, FOLLOWERS[WARM_UP_ACTOR], warm_up, limit_s=60)

    async def stop_workers(self) -> None:
        """Stop the worker processes started by ``start_workers`` (by their pids)."""
        for proc in self._workers:
            if proc.returncode is None:
                proc.terminate()
        try:
            await asyncio.wait_for(asyncio.gather(*(p.wait() for p in self._workers)), 30)
        except TimeoutError:
            for proc in self._workers:
                if proc.returncode is None:
                    proc.kill()
            await asyncio.gather(*(p.wait() for p in self._workers))
        self._workers = []
        if self._worker_log is not None:
            self._worker_log.close()
            self._worker_log = None

    def worker_log_tail(self, lines: int = 20) -> str:
        """The last lines the workers wrote to stderr (for a failed run's message)."""
        if self._worker_log is None:
            return ""
        self._worker_log.seek(0)
        return b"\n".join(self._worker_log.read().splitlines()[-lines:]).decode(errors="replace")

    async def arq_fanout(self, actor_id: int, follower_ids: Sequence[int], item: Any,
                         limit_s: float = 600.0) -> float:
        """Seconds from the publish call until the queue is empty: arq keeps a job in the
        queue's sorted set until it finished, so every follower feed is written by then."""
        FOLLOWERS[actor_id] = list(follower_ids)
        activity = item if isinstance(item, Activity) else to_activity(item)
        queue = await create_queue(self.url)
        name = ArqBenchManager.queue_names[FanoutPriority.HIGH]
        try:
            manager = ArqBenchManager(queue)
            started = time.perf_counter()
            await manager.add_user_activity(actor_id, activity)
            while await self.raw.zcard(name):
                if time.perf_counter() - started > limit_s:
                    raise RuntimeError("arq fanout did not finish; workers' stderr:\n"
                                       + self.worker_log_tail())
                await asyncio.sleep(0.001)
            return time.perf_counter() - started
        finally:
            await queue.aclose()

    # -- W2 ------------------------------------------------------------------------
    async def read_prepare(self, user_id: int, specs: Sequence[Any]) -> ReadFeed:
        feed = ReadFeed(user_id)
        await feed.add_many([to_activity(s) for s in specs], trim=False)  # stores the data too
        return feed

    async def feed_count(self, feed: ReadFeed) -> int:
        return await feed.count()

    def read(self, feed: ReadFeed, start: int, stop: int) -> Awaitable[list[Activity]]:
        return feed[start:stop]

    # -- memory and retention (bench/af_bench.py) ----------------------------------
    async def store_activities(self, specs: Sequence[Any]) -> None:
        """Put activities into activity storage only (the memory-per-activity row)."""
        await ReadFeed.insert_activities([to_activity(s) for s in specs])

    async def retention_import(self, actor_id: int, follower_ids: Sequence[int],
                               specs: Sequence[Any]) -> None:
        """``Manager.batch_import`` of the actor's activities, fanned out to the followers."""
        FOLLOWERS[actor_id] = list(follower_ids)
        await self.manager.batch_import(actor_id, [to_activity(s) for s in specs],
                                        chunk_size=500)

    async def retention_trim(self, actor_id: int, follower_ids: Sequence[int],
                             length: int) -> None:
        """Trim the actor's own feed and every follower feed to ``length``."""
        await UserFeed(actor_id).trim(length)
        for user_id in follower_ids:
            await FanoutFeed(user_id).trim(length)

    async def retention_remove(self, actor_id: int, specs: Sequence[Any]) -> None:
        """``Manager.remove_user_activity`` of each activity, one after the other."""
        for spec in specs:
            await self.manager.remove_user_activity(actor_id, to_activity(spec))

    async def retention_counts(self, actor_id: int, follower_id: int) -> dict[str, int]:
        return {"user_feed_count": await UserFeed(actor_id).count(),
                "follower_feed_count": await FanoutFeed(follower_id).count()}

    # -- W3 ------------------------------------------------------------------------
    async def agg_prepare(self, user_id: int, specs: Sequence[Any]) -> AggFeed:
        self._agg_acts = {id(s): to_activity(s) for s in specs}
        await AggFeed.insert_activities(list(self._agg_acts.values()))
        return AggFeed(user_id)

    def agg_add(self, feed: AggFeed, spec: Any) -> Awaitable[Any]:
        return feed.add(self._agg_acts[id(spec)])

    async def agg_summary(self, feed: AggFeed) -> dict[str, Any]:
        groups = await feed[: feed.max_length]
        names = [g.group for g in groups]
        stored = sum(len(g.activities) for g in groups)
        minimized = sum(g.minimized_activities for g in groups)
        return {
            "aggregated_count": await feed.count(),
            "distinct_groups": len(set(names)),
            "duplicate_group_entries": len(names) - len(set(names)),
            "activities_stored": stored,
            "activities_minimized": minimized,
            "activities_accounted": stored + minimized,
        }

    # -- W4 ------------------------------------------------------------------------
    async def notif_prepare(self, user_id: int, specs: Sequence[Any]) -> NotifFeed:
        self._notif_acts = {id(s): to_activity(s) for s in specs}
        return NotifFeed(user_id)

    def notif_add(self, feed: NotifFeed, spec: Any) -> Awaitable[Any]:
        return feed.add(self._notif_acts[id(spec)])

    def notif_count_unseen(self, feed: NotifFeed) -> Awaitable[int]:
        return feed.count_unseen()

    def notif_mark_all_seen(self, feed: NotifFeed) -> Awaitable[None]:
        return feed.mark_all(seen=True)

    async def notif_summary(self, feed: NotifFeed) -> dict[str, Any]:
        groups = await feed[: feed.max_length]
        names = [g.group for g in groups]
        return {
            "feed_class": "asyncfeeds.RedisNotificationFeed",
            "aggregated_count": await feed.count(),
            "distinct_groups": len(set(names)),
            "duplicate_group_entries": len(names) - len(set(names)),
            "activities_accounted": sum(g.activity_count for g in groups),
            "seen_after_mark_all": sum(1 for g in groups if g.is_seen),
            "unread_count": await feed.count_unread(),
        }

    # -- W5 ------------------------------------------------------------------------
    async def w5_python_client(self, port: int, n: int = 20_000, batch: int = 100) -> dict:
        """The W5 client ceiling for the client asyncfeeds uses (redis.asyncio): ZADD to
        ``n`` distinct keys, one awaited round trip each, then in pipelines of ``batch``."""
        client = redis_asyncio.Redis(host="127.0.0.1", port=port, db=0)
        try:
            await client.flushdb()
            started = time.perf_counter()
            for i in range(n):
                await client.execute_command("ZADD", f"w5py:feed:{i}", 1700000000000, "act:1")
            single = n / (time.perf_counter() - started)
            await client.flushdb()
            started = time.perf_counter()
            for first in range(0, n, batch):
                pipe = client.pipeline(transaction=False)
                for i in range(first, first + batch):
                    pipe.execute_command("ZADD", f"w5py:feed:{i}", 1700000000000, "act:1")
                await pipe.execute()
            piped = n / (time.perf_counter() - started)
            await client.flushdb()
        finally:
            await client.aclose()
        return {"zadd_single_per_s": single, f"zadd_pipeline{batch}_per_s": piped,
                "redis_py": f"{version('redis')} (redis.asyncio)"}

    # -- probes --------------------------------------------------------------------
    async def probes(self) -> dict[str, Any]:
        """asyncfeeds-specific checks beside the SF driver's (not timed)."""
        out: dict[str, Any] = {}
        await self.reset()
        moment = dt.datetime(2024, 1, 1, 12, 0, 0, 123000)
        first = Activity(actor=1, verb=VERB_IDS[0], object=555, time=moment)
        second = Activity(actor=2, verb=VERB_IDS[0], object=555, time=moment)
        feed = FanoutFeed(99)
        await feed.add_many([first, second])
        out["same_ms_same_object_two_actors"] = {
            "activity_ids_equal": first.activity_id == second.activity_id,
            "feed_count_after_adding_2": await feed.count(),
            "actors_read_back": sorted(a.actor for a in await feed[:10]),
        }
        await self.reset()
        self.fanout_prepare(1, list(range(1001, 2001)))
        spec_time = dt.datetime(2024, 1, 2)
        activity = Activity(actor=1, verb=VERB_IDS[0], object=777, time=spec_time)
        with _CountSends() as sends:
            await self.manager.add_user_activity(1, activity)
        out["fanout_1000_followers_round_trips"] = {"sends": sends.count}
        await self.reset()
        return out


class _CountSends:
    """Counts socket writes of redis.asyncio connections (one per command or pipeline)."""

    def __enter__(self) -> _CountSends:
        from redis.asyncio.connection import AbstractConnection

        self.count = 0
        self._cls = AbstractConnection
        self._original = original = AbstractConnection.send_packed_command

        async def counting(connection: Any, *args: Any, **kwargs: Any) -> Any:
            self.count += 1
            return await original(connection, *args, **kwargs)

        AbstractConnection.send_packed_command = counting  # type: ignore[method-assign]
        return self

    def __exit__(self, *exc_info: object) -> None:
        self._cls.send_packed_command = self._original  # type: ignore[method-assign]


def _installed(name: str) -> str | None:
    try:
        return version(name)
    except Exception:
        return None
