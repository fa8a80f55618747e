"""Node failures on the private test clusters: clear errors during the outage, exact retries.

Cassandra: a 2-node cluster (replication factor 2) loses a node (kill -9) while
flat, aggregated and notification feeds are written at QUORUM and at ONE side
by side. During the outage callers see only ``StorageUnavailableError``; once
the node is back and each caller retried what failed, every feed read at ALL
holds each activity exactly once.

Redis: a Redis Cluster with replicas loses a master in the middle of an eager
fanout. The caller gets ``StorageUnavailableError``, a replica takes over, the
retried call completes and every follower feed holds the activity once; a new
process whose seed list starts with the dead node connects all the same.

Each scenario runs once per module (one kill each); the tests check its record.
Select them with ``-m faults``.
"""

from __future__ import annotations

import asyncio
import subprocess
import sys
import time
import uuid
import warnings
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from cluster_nodes import (
    CASSANDRA_CLUSTER,
    REPLICA_CLUSTER_PORTS,
    cassandra_pid,
    kill,
    redis_pid,
    restart_cassandra_cluster,
    restart_redis,
)
from helpers import Like, make_activity

import asyncfeeds
from asyncfeeds import (
    CassandraAggregatedFeed,
    CassandraFeed,
    CassandraNotificationFeed,
    FanoutPriority,
    Manager,
    RedisAggregatedFeed,
    RedisFeed,
    StorageUnavailableError,
)
from asyncfeeds.cassandra_settings import ConsistencyWarning
from asyncfeeds.storage.redis.connection import create_client
from asyncfeeds.verbs import Love

pytestmark = pytest.mark.faults

KEYSPACE = "asyncfeeds_faults"
CONSISTENCIES = ("QUORUM", "ONE")
KINDS = ("flat", "aggregated", "notification")
FEEDS_PER_WRITER = 3
OUTAGE_ROUNDS = 30  # at most, so that no feed reaches its max_length and trims
OUTAGE = 8.0  # seconds of writes while a node is down
GIVE_UP = 10.0  # an operation must fail (or succeed) within this many seconds
RECOVERY = 90.0  # seconds the retries may take once the node is back


# ----------------------------------------------------------------------- Cassandra


@dataclass
class Writer:
    """One sequence of adds to the feeds of one kind at one consistency, and what happened."""

    kind: str
    consistency: str
    feeds: list[Any]
    done: list[tuple[int, Any]] = field(default_factory=list)
    failed: list[tuple[int, Any]] = field(default_factory=list)
    outage_errors: Counter[str] = field(default_factory=Counter)
    raw_errors: list[str] = field(default_factory=list)
    retry_errors: list[str] = field(default_factory=list)
    slow: list[float] = field(default_factory=list)
    rounds: int = 0

    async def add(self, n: int) -> None:
        """Add activity ``n`` to feed ``n % FEEDS_PER_WRITER``, recording the outcome."""
        feed = self.feeds[n % FEEDS_PER_WRITER]
        activity = make_activity(n, actor=n, verb=Like, object=n % 7)
        started = time.monotonic()
        try:
            await feed.add(activity)
        except StorageUnavailableError as exc:
            self.failed.append((n, activity))
            self.outage_errors[type(exc).__name__] += 1
        except Exception as exc:  # anything else is what the test forbids
            self.failed.append((n, activity))
            self.raw_errors.append(f"{type(exc).__module__}.{type(exc).__name__}: {exc}")
        else:
            self.done.append((n, activity))
        if time.monotonic() - started > GIVE_UP:
            self.slow.append(time.monotonic() - started)

    async def run(self, rounds: int, deadline: float) -> None:
        """Rounds of one add to every feed at once, until ``rounds`` or ``deadline``."""
        for _ in range(rounds):
            if time.monotonic() > deadline:
                return
            first = self.rounds * FEEDS_PER_WRITER
            self.rounds += 1
            await asyncio.gather(*(self.add(first + i) for i in range(FEEDS_PER_WRITER)))
            await asyncio.sleep(0.05)

    async def retry_failed(self, deadline: float) -> None:
        """Retry every failed add until it succeeds, as a caller would."""
        pending, self.failed = self.failed, []
        for n, activity in pending:
            feed = self.feeds[n % len(self.feeds)]
            while True:
                try:
                    await feed.add(activity)
                    self.done.append((n, activity))
                    break
                except StorageUnavailableError:
                    if time.monotonic() > deadline:
                        self.failed.append((n, activity))
                        break
                    await asyncio.sleep(0.5)
                except Exception as exc:
                    self.retry_errors.append(f"{type(exc).__name__}: {exc}")
                    if time.monotonic() > deadline or len(self.retry_errors) > 20:
                        self.failed.append((n, activity))
                        break
                    await asyncio.sleep(0.2)


@dataclass
class CassandraRecord:
    writers: dict[tuple[str, str], Writer]
    contents: dict[tuple[str, str], list[Counter[str]]]
    expected: dict[tuple[str, str], list[set[str]]]
    warned: list[str]
    failed_before_the_fault: dict[tuple[str, str], list[tuple[int, Any]]]


def _cassandra_options(consistency: str) -> dict[str, Any]:
    return {
        "hosts": CASSANDRA_CLUSTER,
        "keyspace": KEYSPACE,
        "consistency": consistency,
        "replication": {"class": "SimpleStrategy", "replication_factor": 2},
    }


def _feed_class(kind: str, cluster: str, run: str, consistency: str) -> type:
    base = {"flat": CassandraFeed, "aggregated": CassandraAggregatedFeed,
            "notification": CassandraNotificationFeed}[kind]
    attrs: dict[str, Any] = {
        "cassandra_cluster": cluster,
        "key_format": f"f{run}:{consistency}:{kind}:{{user_id}}",
        "activity_key_prefix": f"f{run}:activity",
        "max_length": 1000,
    }
    if kind == "notification":
        attrs["redis_server"] = f"unconfigured-{run}"  # no pub/sub: Cassandra only
    return type(f"Fault{kind.title()}{consistency}", (base,), attrs)


async def _activity_ids(feed: Any, kind: str) -> Counter[str]:
    """How often each activity id appears in a feed (groups flattened)."""
    if kind == "flat":
        return Counter(a.activity_id for a in await feed[:])
    return Counter(a.activity_id for group in await feed[:] for a in group.activities)


async def _until_whole(check: Callable[[], Awaitable[Any]], seconds: float) -> None:
    """Run ``check`` (a read and write at ALL) until it succeeds: every node is back."""
    deadline = time.monotonic() + seconds
    while True:
        try:
            await check()
            return
        except StorageUnavailableError:
            if time.monotonic() > deadline:
                raise
            await asyncio.sleep(0.5)


async def _cassandra_scenario() -> CassandraRecord:
    run = uuid.uuid4().hex[:8]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        asyncfeeds.configure(
            cassandra={
                **{f"faults-{c}": _cassandra_options(c) for c in CONSISTENCIES},
                "faults-all": _cassandra_options("ALL"),
            }
        )
    warned = [str(w.message) for w in caught if issubclass(w.category, ConsistencyWarning)]
    classes = {
        (kind, c): _feed_class(kind, f"faults-{c}", run, c) for kind in KINDS for c in CONSISTENCIES
    }
    checkers = {
        key: _feed_class(key[0], "faults-all", run, key[1]) for key in classes
    }
    probe = checkers[("flat", "QUORUM")]
    killed = False
    try:
        await _until_whole(lambda: asyncfeeds.setup(*classes.values(), *checkers.values()), 60)

        async def whole() -> None:
            await probe(f"probe-{uuid.uuid4().hex}").add(make_activity(0))
            await probe("probe").count()

        await _until_whole(whole, 60)
        writers = {
            key: Writer(key[0], key[1], [cls(user) for user in range(FEEDS_PER_WRITER)])
            for key, cls in classes.items()
        }
        soon = time.monotonic() + 60
        await asyncio.gather(*(w.run(3, soon) for w in writers.values()))  # all works before
        before = {key: list(w.failed) for key, w in writers.items()}
        kill(cassandra_pid(CASSANDRA_CLUSTER[1]), "CassandraDaemon")
        killed = True
        deadline = time.monotonic() + OUTAGE
        await asyncio.gather(*(w.run(OUTAGE_ROUNDS, deadline) for w in writers.values()))
        await asyncio.to_thread(restart_cassandra_cluster)
        killed = False
        await _until_whole(whole, 120)
        # New adds right away (replicas may still be catching up), then the retries.
        soon = time.monotonic() + 30
        await asyncio.gather(*(w.run(5, soon) for w in writers.values()))
        deadline = time.monotonic() + RECOVERY
        await asyncio.gather(*(w.retry_failed(deadline) for w in writers.values()))
        contents = {}
        expected = {}
        for key, writer in writers.items():
            checker = checkers[key]
            contents[key] = [
                await _activity_ids(checker(user), key[0]) for user in range(FEEDS_PER_WRITER)
            ]
            expected[key] = [
                {a.activity_id for n, a in writer.done if n % FEEDS_PER_WRITER == user}
                for user in range(FEEDS_PER_WRITER)
            ]
        for cls in classes.values():
            await cls.flush()
        return CassandraRecord(writers, contents, expected, warned, before)
    finally:
        await asyncfeeds.aclose()
        if killed:  # the scenario broke off: leave the cluster whole for what comes next
            await asyncio.to_thread(restart_cassandra_cluster)
        asyncfeeds.config.reset()


@pytest.fixture(scope="module")
def cassandra_outage() -> CassandraRecord:
    """Run the Cassandra scenario once (one node killed and brought back) for every test."""
    return asyncio.run(_cassandra_scenario())


@pytest.mark.cassandra
def test_configure_warns_that_rf2_cannot_keep_lightweight_transactions_up(cassandra_outage):
    warned = " ".join(cassandra_outage.warned)
    assert "lightweight transactions" in warned
    assert "consistency QUORUM with replication factor 2 needs every replica" in warned


CASES = [(kind, c) for c in CONSISTENCIES for kind in KINDS]


@pytest.mark.cassandra
@pytest.mark.parametrize(("kind", "consistency"), CASES)
def test_outage_gives_only_storage_unavailable_and_retries_make_feeds_exact(
    cassandra_outage, kind, consistency
):
    writer = cassandra_outage.writers[(kind, consistency)]
    assert cassandra_outage.failed_before_the_fault[(kind, consistency)] == []
    assert writer.raw_errors == [], "callers saw errors other than StorageUnavailableError"
    assert writer.slow == [], f"operations took longer than {GIVE_UP} s to fail"
    assert writer.retry_errors == [], "retries after the node came back failed"
    assert writer.failed == [], "some adds never succeeded after the node came back"
    if kind != "flat" or consistency == "QUORUM":  # these need both replicas of RF 2
        assert sum(writer.outage_errors.values()) > 0, "the outage went unnoticed"
    for held, wanted in zip(
        cassandra_outage.contents[(kind, consistency)],
        cassandra_outage.expected[(kind, consistency)],
        strict=True,
    ):
        assert set(held) == wanted  # nothing lost, nothing that failed for good
        assert all(count == 1 for count in held.values())  # nothing doubled


# ----------------------------------------------------------------------- Redis Cluster

FOLLOWERS = 3000
KILL_AFTER_CHUNKS = 8


def _seed_url(first: int) -> str:
    """A seed list of the replica cluster starting with port ``first``."""
    ports = [first] + [p for p in REPLICA_CLUSTER_PORTS if p != first]
    return "redis+cluster://" + ",".join(f"127.0.0.1:{p}" for p in ports)


@dataclass
class RedisRecord:
    killed_port: int
    first_error: BaseException | None
    seconds_to_error: float
    retries: int
    counts: Counter[int]
    aggregated_counts: Counter[int]
    fresh_process: subprocess.CompletedProcess[str]


async def _masters() -> list[int]:
    """Ports of the masters of the replica cluster, as a live node sees them."""
    for port in REPLICA_CLUSTER_PORTS:
        client = create_client(f"redis://127.0.0.1:{port}")
        try:
            nodes = (await client.execute_command("CLUSTER", "NODES")).decode()
        except Exception:
            continue
        finally:
            await client.aclose()
        return [
            int(line.split()[1].split("@")[0].rsplit(":", 1)[1])
            for line in nodes.splitlines()
            if "master" in line.split()[2] and "fail" not in line.split()[2]
            and len(line.split()) > 8
        ]
    raise AssertionError("no node of the replica cluster answers")


FRESH_PROCESS = """
import asyncio, sys
import asyncfeeds
from asyncfeeds import RedisFeed

class Followers(RedisFeed):
    key_format = sys.argv[2]
    activity_key_prefix = sys.argv[3]

async def main():
    asyncfeeds.configure(redis={"default": sys.argv[1]})
    feed = Followers(1)
    print(len(await feed[:]), await feed.count())
    await asyncfeeds.aclose()

asyncio.run(main())
"""


async def _redis_scenario() -> RedisRecord:
    run = uuid.uuid4().hex[:8]
    masters = await _masters()
    victim = masters[0]
    pid = redis_pid(victim)
    asyncfeeds.configure(redis={"default": _seed_url(victim)})
    flat = type("FaultFollowers", (RedisFeed,), {
        "key_format": f"r{run}:flat:{{user_id}}", "activity_key_prefix": f"r{run}:activity"})
    aggregated = type("FaultAggregated", (RedisAggregatedFeed,), {
        "key_format": f"r{run}:agg:{{user_id}}", "activity_key_prefix": f"r{run}:activity"})
    user = type("FaultUser", (RedisFeed,), {
        "key_format": f"r{run}:user:{{user_id}}", "activity_key_prefix": f"r{run}:activity"})
    chunks = 0
    killed_at = 0.0

    class KillingManager(Manager):
        feed_classes = {"flat": flat, "aggregated": aggregated}
        user_feed_class = user
        fanout_chunk_size = 100

        async def get_user_follower_ids(self, user_id: Any) -> dict[FanoutPriority, list[int]]:
            return {FanoutPriority.HIGH: list(range(1, FOLLOWERS + 1))}

        async def fanout(
            self, feed_class: Any, user_ids: Any, operation: str, activities: Any
        ) -> int:
            nonlocal chunks, killed_at
            written = await super().fanout(feed_class, user_ids, operation, activities)
            chunks += 1
            if chunks == KILL_AFTER_CHUNKS:
                kill(pid, f":{victim}")
                killed_at = time.monotonic()
            return written

    manager = KillingManager()
    activity = make_activity(1, actor=0, verb=Love, object=1)  # a verb the fresh process knows
    first_error: BaseException | None = None
    seconds = 0.0
    try:
        try:
            await manager.add_user_activity(0, activity)
        except BaseException as exc:  # recorded; the test names what it must be
            first_error = exc
            seconds = time.monotonic() - killed_at
        retries = 0
        deadline = time.monotonic() + 60
        while True:  # the caller retries until the replica has taken over
            retries += 1
            try:
                await manager.add_user_activity(0, activity)
                break
            except StorageUnavailableError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
        fresh = await asyncio.to_thread(
            subprocess.run,
            [sys.executable, "-c", FRESH_PROCESS, _seed_url(victim), f"r{run}:flat:{{user_id}}",
             f"r{run}:activity"],
            capture_output=True, text=True, timeout=60, check=False,
        )
        ids = list(range(1, FOLLOWERS + 1))
        counts = Counter(await asyncio.gather(*(flat(i).count() for i in ids)))
        agg_counts = Counter(
            await asyncio.gather(*(_held(aggregated(i), activity.activity_id) for i in ids))
        )
        for cls in (flat, aggregated, user):
            await cls.flush()
        return RedisRecord(victim, first_error, seconds, retries, counts, agg_counts, fresh)
    finally:
        await asyncfeeds.aclose()
        asyncfeeds.config.reset()
        await asyncio.to_thread(restart_redis)


async def _held(feed: Any, activity_id: str) -> int:
    """How many times an aggregated feed holds ``activity_id``."""
    return sum(a.activity_id == activity_id for g in await feed[:] for a in g.activities)


@pytest.fixture(scope="module")
def redis_master_killed() -> RedisRecord:
    """Run the Redis Cluster scenario once (a master killed mid-fanout, restarted after)."""
    return asyncio.run(_redis_scenario())


@pytest.mark.redis_cluster
def test_a_master_killed_mid_fanout_raises_storage_unavailable_at_once(redis_master_killed):
    error = redis_master_killed.first_error
    assert isinstance(error, StorageUnavailableError), repr(error)
    assert f"127.0.0.1:{redis_master_killed.killed_port}" in str(error)
    assert redis_master_killed.seconds_to_error < GIVE_UP


@pytest.mark.redis_cluster
def test_after_failover_the_retry_completes_and_every_follower_holds_the_activity_once(
    redis_master_killed,
):
    assert redis_master_killed.counts == Counter({1: FOLLOWERS})
    assert redis_master_killed.aggregated_counts == Counter({1: FOLLOWERS})


@pytest.mark.redis_cluster
def test_a_new_process_connects_through_a_seed_list_whose_first_node_is_dead(
    redis_master_killed,
):
    fresh = redis_master_killed.fresh_process
    assert fresh.returncode == 0, fresh.stderr
    assert fresh.stdout.split() == ["1", "1"]

