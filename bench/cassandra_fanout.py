"""Eager fanout on Cassandra: the single test node beside the 2-node test cluster.

    .venv/bin/python bench/cassandra_fanout.py [--followers 5000] [--aggregated 1000] [--repeat 3]
        [--single-node]

Needs the nodes of ``services/cassandra.sh start`` (127.0.0.1:9042) and
``start-cluster 2`` (127.0.0.2-3). Times ``Manager.add_user_activity`` in eager
mode (store the activity, the user's feed, then every follower feed in chunks of
100) for flat feeds and, separately, aggregated feeds (one lightweight
transaction per follower), on: the single node (replication factor 1, ONE), and
the cluster (replication factor 2) at ONE and at QUORUM. Every follower feed is
checked afterwards. Prints a Markdown table and writes it to
``bench/results/<stamp>-cassandra-fanout.md``. Indicative only: every node and
the client share one machine (say 2 cores), so the cluster does twice the work
on the same CPUs. ``--single-node`` runs only the single node (no cluster needed);
``--aggregated 0`` skips the aggregated feeds.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import time
import uuid
import warnings
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncfeeds
from asyncfeeds import (
    Activity,
    CassandraAggregatedFeed,
    CassandraFeed,
    FanoutPriority,
    Manager,
)
from asyncfeeds.cassandra_settings import ConsistencyWarning
from asyncfeeds.verbs import Love

FIRST = os.environ.get("CASSANDRA_CLUSTER_FIRST", "127.0.0.2")
PREFIX, LAST = FIRST.rsplit(".", 1)
CLUSTER = [FIRST, f"{PREFIX}.{int(LAST) + 1}"]
SETUPS = {
    "single node, RF 1, ONE": {"hosts": ["127.0.0.1"], "consistency": "ONE",
                               "keyspace": "asyncfeeds_bench"},
    "2 nodes, RF 2, ONE": {"hosts": CLUSTER, "consistency": "ONE", "keyspace": "asyncfeeds_bench",
                           "replication": {"class": "SimpleStrategy", "replication_factor": 2}},
    "2 nodes, RF 2, QUORUM": {"hosts": CLUSTER, "consistency": "QUORUM",
                              "keyspace": "asyncfeeds_bench",
                              "replication": {"class": "SimpleStrategy",
                                              "replication_factor": 2}},
}


def classes(cluster: str, kind: str, followers: int) -> tuple[type, type[Manager]]:
    """A follower feed class of ``kind`` and an eager manager fanning out to it."""
    run = uuid.uuid4().hex[:8]
    base = CassandraFeed if kind == "flat" else CassandraAggregatedFeed
    attrs = {"cassandra_cluster": cluster, "activity_key_prefix": f"b{run}:activity"}
    follower = type("BenchFollower", (base,), {**attrs, "key_format": f"b{run}:f:{{user_id}}"})
    user = type("BenchUser", (CassandraFeed,), {**attrs, "key_format": f"b{run}:u:{{user_id}}"})

    class BenchManager(Manager):
        feed_classes = {kind: follower}
        user_feed_class = user

        async def get_user_follower_ids(self, user_id: Any) -> dict[FanoutPriority, range]:
            return {FanoutPriority.HIGH: range(1, followers + 1)}

    return follower, BenchManager


async def one_run(cluster: str, kind: str, followers: int) -> float:
    follower, manager_class = classes(cluster, kind, followers)
    await asyncfeeds.setup(follower, manager_class.user_feed_class)
    activity = Activity(actor=0, verb=Love, object=1, time=datetime(2024, 1, 1, tzinfo=UTC))
    started = time.perf_counter()
    await manager_class().add_user_activity(0, activity)
    seconds = time.perf_counter() - started
    counts = await asyncio.gather(*(follower(i).count() for i in range(1, followers + 1)))
    assert counts == [1] * followers, "a follower feed misses the activity"
    await follower.flush()
    await manager_class.user_feed_class.flush()
    return seconds


async def main(args: argparse.Namespace) -> str:
    with warnings.catch_warnings():  # replication factor 2 is what is measured here
        warnings.simplefilter("ignore", ConsistencyWarning)
        asyncfeeds.configure(cassandra=SETUPS)
    rows = []
    try:
        setups = list(SETUPS)[:1] if args.single_node else list(SETUPS)
        for kind, followers in (("flat", args.followers), ("aggregated", args.aggregated)):
            if followers <= 0:
                continue
            for name in setups:
                await one_run(name, kind, min(followers, 100))  # warm up: connect and prepare
                times = [await one_run(name, kind, followers) for _ in range(args.repeat)]
                median = statistics.median(times)
                rows.append(f"| {kind} | {followers} | {name} | {median:.2f} s | "
                            f"{followers / median:,.0f} | {min(times):.2f}-{max(times):.2f} s |")
                print(rows[-1], flush=True)
    finally:
        await asyncfeeds.aclose()
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
    cores = os.cpu_count()
    table = "\n".join([
        f"# Eager fanout on Cassandra ({stamp}, {cores} cores, client and nodes on one machine)",
        "",
        "Indicative only: the nodes and the client share the same CPUs, so the 2-node",
        "cluster does twice the writing on the same cores as the single node.",
        f"Median of {args.repeat} runs after a warm-up; every follower feed checked after each.",
        "",
        "| feeds | followers | cluster | median | followers/s | range |",
        "| --- | --- | --- | --- | --- | --- |",
        *rows,
        "",
    ])
    out = Path(__file__).parent / "results" / f"{stamp}-cassandra-fanout.md"
    out.write_text(table)
    return str(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=5000, help="flat follower feeds")
    parser.add_argument("--aggregated", type=int, default=1000, help="aggregated follower feeds")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--single-node", action="store_true", help="skip the 2-node cluster")
    print("written to", asyncio.run(main(parser.parse_args())))
