"""Eager fanout on Cassandra: the single test node beside the 2-node test cluster.

    .venv/bin/python bench/cassandra_fanout.py [--followers 5000] [--aggregated 1000] [--repeat 3]
    .venv/bin/python bench/cassandra_fanout.py --setups single --followers 10000 --aggregated 0 \
        --json out.json                                  # issue 11's row (bench/run.sh)

Needs the nodes of ``services/cassandra.sh start`` (127.0.0.1:9042) and
``start-cluster 2`` (127.0.0.2-3). Times ``Manager.add_user_activity`` in eager
mode (store the activity, the user's feed, then every follower feed in chunks of
100) for flat feeds and, separately, aggregated feeds (one lightweight
transaction per follower), on: the single node (replication factor 1, ONE), and
the cluster (replication factor 2) at ONE and at QUORUM. Every follower feed is
checked afterwards. Prints a Markdown table and writes it to
``bench/results/<stamp>-cassandra-fanout.md``. Indicative only: every node and
the client share one machine (say 2 cores), so the cluster does twice the work
on the same CPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
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
SHORT = {"single": "single node, RF 1, ONE", "cluster-one": "2 nodes, RF 2, ONE",
         "cluster-quorum": "2 nodes, RF 2, QUORUM"}
"""``--setups`` names of the setups below."""
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
    chosen = {SHORT[s]: SETUPS[SHORT[s]] for s in args.setups}
    with warnings.catch_warnings():  # replication factor 2 is what is measured here
        warnings.simplefilter("ignore", ConsistencyWarning)
        asyncfeeds.configure(cassandra=chosen)
    rows, found = [], []
    short = {name: key for key, name in SHORT.items()}
    try:
        for kind, followers in (("flat", args.followers), ("aggregated", args.aggregated)):
            if followers < 1:
                continue
            for name in chosen:
                await one_run(name, kind, min(followers, 100))  # warm up: connect and prepare
                times = [await one_run(name, kind, followers) for _ in range(args.repeat)]
                median = statistics.median(times)
                spread = f"{min(times):.2f}-{max(times):.2f} s"
                rows.append(f"| {kind} | {followers} | {name} | {median:.2f} s | "
                            f"{followers / median:,.0f} | {spread} |")
                found.append({"kind": kind, "followers": followers, "setup": short[name],
                              "cluster": name, "median_s": median,
                              "writes_per_s": followers / median, "runs_s": times,
                              "range": spread})
                print(rows[-1], flush=True)
    finally:
        await asyncfeeds.aclose()
    if args.json:
        args.json.write_text(json.dumps({"rows": found, "repeat": args.repeat}, indent=2) + "\n")
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
    out = args.md or Path(__file__).parent / "results" / f"{stamp}-cassandra-fanout.md"
    out.write_text(table)
    return str(out)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--followers", type=int, default=5000, help="flat follower feeds")
    parser.add_argument("--aggregated", type=int, default=1000, help="aggregated follower feeds")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--setups", default=",".join(SHORT),
                        type=lambda text: [s for s in text.split(",") if s],
                        help=f"comma list of {', '.join(SHORT)}")
    parser.add_argument("--json", type=Path, help="also write the rows here as JSON")
    parser.add_argument("--md", type=Path,
                        help="the Markdown table (default results/<stamp>-cassandra-fanout.md)")
    print("written to", asyncio.run(main(parser.parse_args())))
