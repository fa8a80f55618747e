"""What a pull threshold costs per day: a simulated follower graph, measured unit costs.

    pip install -e ".[bench]"        # numpy and matplotlib, for this script only
    .venv/bin/python bench/simulate_fanout.py [--costs bench/results/<stamp>-hybrid.json]

The graph: ``--users`` users (1M); each user's audience (follower count) is drawn
from a Zipf distribution with exponent ``--exponent`` (2), capped at users - 1, and
the followers are drawn uniformly. Every user posts ``--posts`` times a day; a
fraction ``--active`` of users read their feed ``--reads`` times a day, the others
never (their pushed copies are written for nobody).

For each threshold, from "always push" (None) to "always pull" (0), authors with
more followers than the threshold are pulled, and the day costs:

* writes: one own-feed write per post, plus one feed write per follower for a
  pushed author; seconds = posts x a publish without fanout (a pulled post, measured
  by ``hybrid.py``) + follower writes x the measured per-write cost (eager fanout,
  100-feed chunks);
* reads: each read of a user following k pulled authors costs ``read_feed`` with k
  pulled authors, interpolated from the measured 0 / 5 / 50 (a plain ``feed[:25]``
  when the threshold is None); storage reads = 1 + k timelines per read;
* the largest fanout of a single post (feed writes, and seconds until its last
  follower has it, eager).

Prints the tables (Markdown) and writes ``<out>/<stamp>-simulate-fanout.{md,png}``.
Client-observed seconds on one asyncio client against one local Redis stand in for
capacity: they rank the thresholds, they do not size a cluster.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

try:
    import numpy as np
except ImportError:  # bench-only dependencies
    raise SystemExit('bench/simulate_fanout.py needs numpy and matplotlib: '
                     'pip install -e ".[bench]"') from None

RESULTS = Path(__file__).parent / "results"
THRESHOLDS: list[int | None] = [None, 1_000_000, 100_000, 10_000, 1_000, 100, 10, 0]


@dataclass(frozen=True)
class Costs:
    """Measured unit costs in seconds (defaults: the committed hybrid.py run)."""

    per_write: float = 14.1e-6
    publish: float = 0.40e-3
    """A publish that writes no follower feed (measured: a pulled author's post)."""
    plain_read: float = 352e-6
    read_0: float = 439e-6
    read_5: float = 478e-6
    read_50: float = 834e-6

    def read(self, pulled: Any) -> Any:
        """``read_feed`` seconds for readers following ``pulled`` pulled authors (array)."""
        points = np.array([0, 5, 50], dtype=float)
        seconds = np.array([self.read_0, self.read_5, self.read_50])
        slope = (self.read_50 - self.read_5) / 45  # beyond 50: the last slope goes on
        inside = np.interp(pulled, points, seconds)
        return np.where(pulled > 50, self.read_50 + (pulled - 50) * slope, inside)

    @classmethod
    def from_hybrid(cls, path: Path) -> Costs:
        document = json.loads(path.read_text())
        publish, read = document["publish"], document["read"]
        return cls(
            per_write=publish["per_write_seconds"],
            publish=publish["100k"]["pull_seconds"],
            plain_read=read["feed[:25]"]["p50_us"] * 1e-6,
            read_0=read["read_feed, 0 pulled"]["p50_us"] * 1e-6,
            read_5=read["read_feed, 5 pulled"]["p50_us"] * 1e-6,
            read_50=read["read_feed, 50 pulled"]["p50_us"] * 1e-6,
        )


@dataclass(frozen=True)
class Scenario:
    users: int
    exponent: float
    posts: float
    reads: float
    active: float
    seed: int


def simulate(scenario: Scenario, costs: Costs) -> list[dict[str, Any]]:
    """One row per threshold: the day's writes, reads and their seconds."""
    rng = np.random.default_rng(scenario.seed)
    users = scenario.users
    audience = np.minimum(rng.zipf(scenario.exponent, size=users), users - 1).astype(np.int64)
    followers = rng.integers(0, users, size=int(audience.sum()), dtype=np.int32)
    author_of_edge = np.repeat(np.arange(users, dtype=np.int32), audience)
    reads_per_user = np.where(rng.random(users) < scenario.active, scenario.reads, 0.0)
    total_reads = reads_per_user.sum()
    rows = []
    for threshold in THRESHOLDS:
        pulled = np.zeros(users, dtype=bool) if threshold is None else audience > threshold
        pushed_audience = audience[~pulled]
        posts = scenario.posts * users
        writes = posts + scenario.posts * pushed_audience.sum()
        # Every post pays a publish without fanout (stored, the author's feed, the pulled
        # check); a pushed author's post also one feed write per follower.
        write_seconds = posts * costs.publish + scenario.posts * pushed_audience.sum() * (
            costs.per_write
        )
        pulled_followed = np.bincount(
            followers[pulled[author_of_edge]], minlength=users
        ).astype(float)
        if threshold is None:
            read_seconds = total_reads * costs.plain_read
        else:
            read_seconds = float((reads_per_user * costs.read(pulled_followed)).sum())
        timeline_reads = float((reads_per_user * (1 + pulled_followed)).sum())
        largest = int(pushed_audience.max()) if pushed_audience.size else 0
        rows.append({
            "threshold": threshold,
            "pulled_authors": int(pulled.sum()),
            "readers_with_pulled": float((pulled_followed[reads_per_user > 0] > 0).mean()),
            "feed_writes": float(writes),
            "write_seconds": float(write_seconds),
            "timeline_reads": timeline_reads,
            "read_seconds": read_seconds,
            "total_seconds": float(write_seconds + read_seconds),
            "largest_fanout": largest,
            "largest_fanout_seconds": largest * costs.per_write,
        })
    return rows


def label(threshold: int | None) -> str:
    if threshold is None:
        return "None (always push)"
    if threshold == 0:
        return "0 (always pull)"
    return f"{threshold:,}"


def table(rows: Sequence[dict[str, Any]]) -> str:
    lines = [
        "| pull_threshold | pulled authors | active readers following one | feed writes/day "
        "| write s/day | timeline reads/day | read s/day | total s/day | largest post fanout |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for row in rows:
        lines.append(
            f"| {label(row['threshold'])} | {row['pulled_authors']:,} | "
            f"{row['readers_with_pulled']:.0%} | {row['feed_writes']:,.0f} | "
            f"{row['write_seconds']:,.0f} | {row['timeline_reads']:,.0f} | "
            f"{row['read_seconds']:,.0f} | {row['total_seconds']:,.0f} | "
            f"{row['largest_fanout']:,} writes, {row['largest_fanout_seconds']:.1f} s |"
        )
    return "\n".join(lines)


def plot(scenarios: dict[str, list[dict[str, Any]]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (costs_axis, latency_axis) = plt.subplots(1, 2, figsize=(12, 4.5))
    positions = list(range(len(THRESHOLDS)))
    names = [label(t).replace(" (", "\n(") for t in THRESHOLDS]
    for (name, rows), colour in zip(scenarios.items(), ("tab:blue", "tab:orange"), strict=False):
        costs_axis.plot(positions, [r["total_seconds"] for r in rows], "o-", color=colour,
                        label=f"{name}: total")
        costs_axis.plot(positions, [r["write_seconds"] for r in rows], "s--", color=colour,
                        alpha=0.6, label=f"{name}: writes")
        costs_axis.plot(positions, [r["read_seconds"] for r in rows], "^:", color=colour,
                        alpha=0.6, label=f"{name}: reads")
    costs_axis.set_yscale("log")
    costs_axis.set_ylabel("client seconds per day")
    costs_axis.set_title("Cost of a day by pull_threshold")
    first = next(iter(scenarios.values()))
    latency_axis.bar(positions, [max(r["largest_fanout_seconds"], 1e-3) for r in first],
                     color="tab:gray")
    latency_axis.set_yscale("log")
    latency_axis.set_ylabel("seconds (eager fanout)")
    latency_axis.set_title("Largest single post: time to its last follower")
    for axis in (costs_axis, latency_axis):
        axis.set_xticks(positions, names, fontsize=8)
        axis.set_xlabel("pull_threshold (authors with more followers are pulled)")
        axis.grid(True, which="both", alpha=0.3)
    costs_axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=110)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=1_000_000)
    parser.add_argument("--exponent", type=float, default=2.0)
    parser.add_argument("--posts", type=float, default=1.0, help="posts per user per day")
    parser.add_argument("--reads", type=float, default=10.0, help="reads per active user per day")
    parser.add_argument("--active", type=float, default=0.5, help="fraction of users who read")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--costs", type=Path, help="a hybrid.py JSON (default: built-in costs)")
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args(argv)
    costs = Costs.from_hybrid(args.costs) if args.costs else Costs()
    main_scenario = Scenario(args.users, args.exponent, args.posts, args.reads, args.active,
                             args.seed)
    # The same graph where few read and authors post more: pushed copies go mostly unread.
    write_heavy = Scenario(args.users, args.exponent, args.posts * 5, 2.0, 0.1, args.seed)
    scenarios = {
        f"posts {main_scenario.posts:g}/day, {main_scenario.active:.0%} read "
        f"{main_scenario.reads:g}/day": simulate(main_scenario, costs),
        f"posts {write_heavy.posts:g}/day, {write_heavy.active:.0%} read "
        f"{write_heavy.reads:g}/day": simulate(write_heavy, costs),
    }
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%MZ")
    args.out.mkdir(parents=True, exist_ok=True)
    text = [f"Costs (seconds): {costs}", ""]
    for name, rows in scenarios.items():
        text += [f"### {args.users:,} users, Zipf exponent {args.exponent:g}, {name}", "",
                 table(rows), ""]
    report = "\n".join(text)
    (args.out / f"{stamp}-simulate-fanout.md").write_text(report)
    plot(scenarios, args.out / f"{stamp}-simulate-fanout.png")
    print(report)
    print(f"written: {args.out / f'{stamp}-simulate-fanout.md'} and .png")


if __name__ == "__main__":
    main()
