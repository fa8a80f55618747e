"""Push vs pull (API.md "Large accounts: push and pull"): publish cost and read_feed latency.

    .venv/bin/python bench/hybrid.py [--reads 2000] [--out bench/results]

Starts its OWN redis-server on a free port (``--save "" --appendonly no``), never the
shared test Redis, and stops it by its pid on exit. Two parts:

1. Publish: one ``add_user_activity`` (eager) by an author with 1k / 100k / 1M followers,
   pushed (``pull_threshold = None``) and pulled (``pull_threshold = 500``, follower
   count from ``get_user_follower_count``). Seconds and feed writes (follower feeds + the
   author's own). Push to 1M is NOT run: it is estimated from the per-write cost measured
   at 100k (and said so in the output).
2. Read: p50/p99 of ``read_feed(reader, limit=25)`` for readers following 0 / 5 / 50
   pulled authors (plus 150 pushed ones), against ``feed[:25]`` of the same pushed feed,
   interleaved round-robin so drift hits every variant alike.

Prints a Markdown table and writes ``<out>/<stamp>-hybrid.json`` (the simulation in
``bench/simulate_fanout.py`` reads its unit costs from there).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import redis.asyncio as redis_asyncio

import asyncfeeds
from asyncfeeds import Activity, FanoutPriority, Manager, RedisFeed

HIGH = FanoutPriority.HIGH
START = datetime(2025, 1, 1, tzinfo=UTC)
PULL_THRESHOLD = 500
READER_PUSHED_AUTHORS = 150


# -- a private redis-server ---------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class PrivateRedis:
    """A redis-server of this script's own, on a free port, stopped by its pid."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        if binary is None:
            sys.exit("bench/hybrid.py needs redis-server (apt-get install redis-server)")
        self.port = free_port()
        self.dir = tempfile.mkdtemp(prefix="hybrid-bench-")
        self.process = subprocess.Popen(
            [binary, "--port", str(self.port), "--bind", "127.0.0.1", "--save", "",
             "--appendonly", "no", "--dir", self.dir],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    return
            except OSError:
                time.sleep(0.05)
        self.stop()
        sys.exit(f"redis-server did not start on port {self.port}")

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        shutil.rmtree(self.dir, ignore_errors=True)


# -- feeds and managers ----------------------------------------------------------------------


class TimelineFeed(RedisFeed):
    key_format = "hb:feed:{user_id}"
    activity_key_prefix = "hb:activity"
    max_length = 1000


class OwnFeed(RedisFeed):
    key_format = "hb:own:{user_id}"
    activity_key_prefix = "hb:activity"
    max_length = 1000


class BenchManager(Manager):
    """Followers are ranges; the follower count comes from the same table, for free."""

    feed_classes = {"timeline": TimelineFeed}
    user_feed_class = OwnFeed
    fanout_chunk_size = 100
    audience: dict[int, int] = {}
    following: dict[int, list[int]] = {}
    writes = 0

    async def get_user_follower_ids(self, user_id: Any) -> dict[FanoutPriority, range]:
        return {HIGH: range(1_000_000, 1_000_000 + self.audience.get(user_id, 0))}

    async def get_user_follower_count(self, user_id: Any) -> int | None:
        return self.audience.get(user_id, 0)

    async def get_user_following_ids(self, user_id: Any) -> list[int]:
        return self.following.get(user_id, [])

    async def fanout(self, feed_class: Any, user_ids: Any, operation: str, activities: Any) -> int:
        BenchManager.writes += len(user_ids)
        return await super().fanout(feed_class, user_ids, operation, activities)


class PushManager(BenchManager):
    pull_threshold = None


class PullManager(BenchManager):
    pull_threshold = PULL_THRESHOLD


class CountingPullManager(PullManager):
    """No follower-count hook: the manager reads up to ``PULL_THRESHOLD + 1`` ids itself."""

    async def get_user_follower_count(self, user_id: Any) -> int | None:
        return None


def activity(actor: int, n: int) -> Activity:
    return Activity(actor=actor, verb=1, object=n, time=START + timedelta(seconds=n),
                    extra_context={"title": f"pin {n} by {actor}", "board": "dinner ideas"})


# -- 1. publish ---------------------------------------------------------------------------------


async def publish_once(manager: BenchManager, author: int, n: int) -> tuple[float, int]:
    """Seconds of one publish and the feeds it wrote (follower feeds + the author's own)."""
    BenchManager.writes = 0
    started = time.perf_counter()
    await manager.add_user_activity(author, activity(author, n))
    return time.perf_counter() - started, BenchManager.writes + 1


async def publish_costs(redis: Any) -> dict[str, Any]:
    sizes = {"1k": 1_000, "100k": 100_000, "1M": 1_000_000}
    repeats = {"1k": 7, "100k": 2, "1M": 0}
    results: dict[str, Any] = {}
    n = 0
    BenchManager.audience[7] = 10_000  # warm up: scripts loaded, connections open
    for manager in (PushManager(), PullManager(), CountingPullManager()):
        n += 1
        await publish_once(manager, 7, n)
    await redis.flushdb()
    for label, followers in sizes.items():
        author = followers  # one author per audience size
        BenchManager.audience[author] = followers
        row: dict[str, Any] = {"followers": followers}
        push_times = []
        for _ in range(repeats[label]):
            n += 1
            seconds, writes = await publish_once(PushManager(), author, n)
            push_times.append(seconds)
            row["push_writes"] = writes
            await redis.flushdb()
        if push_times:
            row["push_seconds"] = statistics.median(push_times)
            row["push_estimated"] = False
        # Pull: the first post crosses the threshold (count, record), the next ones do not.
        pulled = author + 1
        BenchManager.audience[pulled] = followers
        n += 1
        crossing, _ = await publish_once(PullManager(), pulled, n)
        counted = author + 2  # the same without get_user_follower_count: ids are read
        BenchManager.audience[counted] = followers
        n += 1
        counting, _ = await publish_once(CountingPullManager(), counted, n)
        steady = []
        for _ in range(20):
            n += 1
            seconds, writes = await publish_once(PullManager(), pulled, n)
            steady.append(seconds)
        row["pull_first_counted_seconds"] = counting
        row["pull_first_seconds"] = crossing
        row["pull_seconds"] = statistics.median(steady)
        row["pull_writes"] = writes
        results[label] = row
        await redis.flushdb()
    per_write = results["100k"]["push_seconds"] / results["100k"]["push_writes"]
    results["1M"]["push_seconds"] = per_write * (1_000_000 + 1)
    results["1M"]["push_writes"] = 1_000_000 + 1
    results["1M"]["push_estimated"] = True
    results["per_write_seconds"] = per_write
    return results


# -- 2. read ------------------------------------------------------------------------------------


async def read_costs(redis: Any, reads: int) -> dict[str, Any]:
    manager = PullManager()
    pulled_authors = list(range(10, 60))
    pushed_authors = list(range(100, 100 + READER_PUSHED_AUTHORS))
    for author in pulled_authors:  # pulled: an own feed of 200 activities each
        BenchManager.audience[author] = 10_000_000
        await manager.batch_import(author, [activity(author, author * 1000 + k)
                                            for k in range(200)])
    readers = {"0 pulled": 1, "5 pulled": 2, "50 pulled": 3}
    counts = {"0 pulled": 0, "5 pulled": 5, "50 pulled": 50}
    for label, reader in readers.items():
        BenchManager.following[reader] = pushed_authors + pulled_authors[: counts[label]]
        # The pushed feed: 1000 activities of the pushed authors, already fanned out.
        pushed = [activity(pushed_authors[k % len(pushed_authors)], 500_000 + k)
                  for k in range(1000)]
        await TimelineFeed(reader).add_many(pushed)
    plain = TimelineFeed(readers["5 pulled"])
    variants: dict[str, Callable[[], Awaitable[Any]]] = {"feed[:25]": lambda: plain[:25]}
    for label, reader in readers.items():
        variants[f"read_feed, {label}"] = (
            lambda reader=reader: manager.read_feed(reader, "timeline", limit=25)
        )
    for call in variants.values():  # warm up: scripts loaded, connections open
        for _ in range(50):
            await call()
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(reads):
        for name, call in variants.items():
            started = time.perf_counter()
            await call()
            samples[name].append(time.perf_counter() - started)
    base = statistics.median(samples["feed[:25]"])
    result = {}
    for name, values in samples.items():
        values.sort()
        p50 = statistics.median(values)
        result[name] = {
            "p50_us": p50 * 1e6,
            "p99_us": values[int(len(values) * 0.99)] * 1e6,
            "ratio_to_plain": p50 / base,
        }
    return result


def table(publish: dict[str, Any], read: dict[str, Any]) -> str:
    lines = [
        "| author's followers | push: seconds | push: feed writes | pull: seconds "
        "(steady / first) | pull: feed writes |",
        "| --- | --- | --- | --- | --- |",
    ]
    note = "first = the post that crosses the threshold (count from the hook; by reading ids: "
    for label in ("1k", "100k", "1M"):
        row = publish[label]
        push = f"{row['push_seconds']:.4f}" + (" (estimated)" if row["push_estimated"] else "")
        lines.append(
            f"| {row['followers']:,} | {push} | {row['push_writes']:,} | "
            f"{row['pull_seconds'] * 1e3:.2f} ms / {row['pull_first_seconds'] * 1e3:.2f} ms | "
            f"{row['pull_writes']} |"
        )
        note += f"{row['pull_first_counted_seconds'] * 1e3:.2f} ms for {label}, "
    lines.append("")
    lines.append(note.rstrip(", ") + ")")
    lines += ["", "| read | p50 us | p99 us | p50 / feed[:25] |", "| --- | --- | --- | --- |"]
    for name, row in read.items():
        lines.append(f"| {name} | {row['p50_us']:.0f} | {row['p99_us']:.0f} | "
                     f"{row['ratio_to_plain']:.2f} |")
    return "\n".join(lines)


async def measure(args: argparse.Namespace) -> tuple[dict[str, Any], dict[str, Any]]:
    server = PrivateRedis()
    try:
        asyncfeeds.configure(redis={"default": server.url})
        redis = redis_asyncio.from_url(server.url)
        publish = await publish_costs(redis)
        await redis.flushdb()
        read = await read_costs(redis, args.reads)
        await redis.aclose()
        await asyncfeeds.aclose()
    finally:
        server.stop()
    return publish, read


def main(args: argparse.Namespace) -> None:
    publish, read = asyncio.run(measure(args))
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    document = {"stamp": stamp, "pull_threshold": PULL_THRESHOLD, "reads": args.reads,
                "publish": publish, "read": read, "cpus": os.cpu_count()}
    path = out / f"{stamp}-hybrid.json"
    path.write_text(json.dumps(document, indent=2))
    print(table(publish, read))
    print(f"\nwritten: {path}")


def parse(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reads", type=int, default=2000, help="reads per variant")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    return parser.parse_args(argv)


if __name__ == "__main__":
    main(parse())
