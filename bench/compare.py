#!/usr/bin/env python3
"""Merge per-invocation result files and print the asyncfeeds / Stream Framework ratio table.

    python3 bench/compare.py merge --out merged.json run-*.json   # one driver's invocations
    python3 bench/compare.py table sf.json asyncfeeds.json [--cassandra c.json]  # markdown
    python3 bench/compare.py show run.json                        # one line per workload

Ratios are asyncfeeds / SF of the medians. The "paired" column is the median of
the per-repetition ratios, each repetition of one library set against the
repetition of the other run right beside it (run.sh interleaves A B A B), which
cancels most of the host's drift.

The table starts with issue 11's rows (plus issue 13's retention row), each with its
target and "met" / "missed"; the detailed metrics follow.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import aggregate_raw

HIGHER = "higher"
LOWER = "lower"

ROWS: list[tuple[str, tuple[str, ...], str] | tuple[str, tuple[str, ...], str, tuple[str, ...]]]
ROWS = []
"""(label, path inside ``results``, which way is better[, SF's path when it differs])."""
for size, label in (("1000", "1k"), ("10000", "10k"), ("100000", "100k")):
    ROWS += [
        (f"W1 fanout {label}: writes/s", ("W1_fanout", size, "writes_per_s"), HIGHER),
        (f"W1 fanout {label}: seconds", ("W1_fanout", size, "seconds"), LOWER),
        (f"W1 fanout {label}: client peak RSS MiB", ("W1_fanout", size, "client_peak_rss_mb"),
         LOWER),
        (f"W1 fanout {label}: Redis used_memory MiB",
         ("W1_fanout", size, "redis_used_memory_end_mb"), LOWER),
    ]
ROWS += [
    ("W1 arq, 2 workers, 10k: writes/s (SF: eager W1)", ("W1_arq", "10000", "writes_per_s"),
     HIGHER),
    ("W1 arq, 2 workers, 10k: seconds (SF: eager W1)", ("W1_arq", "10000", "seconds"), LOWER),
    ("W2 read [:25]: p50 us", ("W2_read", "p50_us"), LOWER),
    ("W2 read [:25]: p99 us", ("W2_read", "p99_us"), LOWER),
    ("W2 read [:25]: reads/s", ("W2_read", "reads_per_s"), HIGHER),
    ("W2 100 concurrent readers: reads/s (SF: sequential)", ("W2_concurrent", "reads_per_s"),
     HIGHER, ("W2_read", "reads_per_s")),
    ("W2 read: client peak RSS MiB", ("W2_read", "client_peak_rss_mb"), LOWER),
    ("W2 after setup: Redis used_memory MiB", ("W2_read", "redis_used_memory_setup_mb"), LOWER),
    ("W3 aggregated add: adds/s", ("W3_aggregated_add", "adds_per_s"), HIGHER),
    ("W3: client peak RSS MiB", ("W3_aggregated_add", "client_peak_rss_mb"), LOWER),
    ("W3 end: Redis used_memory MiB", ("W3_aggregated_add", "redis_used_memory_end_mb"), LOWER),
    ("W4 notification add: adds/s", ("W4_notification", "adds_per_s"), HIGHER),
    ("W4 mark_all(seen): ms", ("W4_notification", "mark_all_ms"), LOWER),
    ("W4: client peak RSS MiB", ("W4_notification", "client_peak_rss_mb"), LOWER),
    ("W4 end: Redis used_memory MiB", ("W4_notification", "redis_used_memory_end_mb"), LOWER),
    ("Redis bytes per activity in activity storage (10,000 stored)",
     ("MEM_activity_storage", "10000", "bytes_per_activity"), LOWER),
    ("  the same by MEMORY USAGE of the keys", ("MEM_activity_storage", "10000",
                                               "memory_usage_per_activity"), LOWER),
    ("Redis bytes per aggregated group, W3 shape", ("MEM_aggregated_group", "bytes_per_group"),
     LOWER),
    ("  the same by MEMORY USAGE of the keys", ("MEM_aggregated_group", "memory_usage_per_group"),
     LOWER),
    ("Retention (issue 13): Redis bytes after import and trims",
     ("RET_retention", "redis_bytes_after_trim"), LOWER),
    ("Retention (issue 13): Redis bytes at the end (half removed)",
     ("RET_retention", "redis_bytes_end"), LOWER),
    ("  the same by MEMORY USAGE of the keys", ("RET_retention", "memory_usage_end"), LOWER),
    ("W5 Python client: ZADD round trips/s",
     ("W5_redis_ceiling", "python_client_ops_per_s", "zadd_single_per_s"), HIGHER),
    ("W5 Python client: ZADD pipelined x100/s",
     ("W5_redis_ceiling", "python_client_ops_per_s", "zadd_pipeline100_per_s"), HIGHER),
]


# -- merging ----------------------------------------------------------------------------
def merge(paths: list[Path]) -> dict[str, Any]:
    """One result file from several invocations of the same driver, repetitions pooled."""
    docs = [json.loads(p.read_text()) for p in paths]
    drivers = {d["driver"] for d in docs}
    if len(drivers) != 1:
        raise SystemExit(f"merge takes files of one driver, got {sorted(drivers)}")
    docs.sort(key=lambda d: (d["params"].get("first_rep", 0), d["started_utc"]))
    raw: dict[str, list[dict[str, Any]]] = {}
    for doc in docs:
        for key, runs in doc.get("raw_runs", {}).items():
            raw.setdefault(key, []).extend(runs)
    envs = [d["environment"] for d in docs]
    merged: dict[str, Any] = {
        "driver": docs[0]["driver"],
        "started_utc": min(d["started_utc"] for d in docs),
        "finished_utc": max(d.get("finished_utc", d["started_utc"]) for d in docs),
        "versions": docs[0]["versions"],
        "environment": {
            "pin_mode": sorted({e.get("pin_mode", "unset") for e in envs}),
            "client_cpus": envs[0].get("client_cpus"),
            "redis_server_cpus": sorted({str(e.get("redis_server_cpus")) for e in envs}),
            "steal_pct_during_run": _spread([e.get("steal_pct_during_run") for e in envs]),
            "cpu_calibration_ms_at_start": _spread(
                [e.get("cpu_calibration_ms_at_start") for e in envs]),
            "cpu_calibration_ms_at_end": _spread(
                [e.get("cpu_calibration_ms_at_end") for e in envs]),
        },
        "params": {
            "harness_sha256": sorted({d["params"].get("harness_sha256") for d in docs}),
            "redis": docs[0]["params"].get("redis"),
            "runner": docs[0]["params"].get("runner"),
            "interleaved_invocations": len(docs),
        },
        "invocations": [
            {"started_utc": d["started_utc"], "only": d["params"].get("only"),
             "fanout_sizes": d["params"].get("fanout_sizes"),
             "first_rep": d["params"].get("first_rep"),
             "steal_pct": d["environment"].get("steal_pct_during_run"),
             "calibration_ms": d["environment"].get("cpu_calibration_ms_at_start")}
            for d in docs
        ],
    }
    probes = [d["probes"] for d in docs if "probes" in d]
    if probes:
        merged["probes"] = probes[0]
    merged["results"] = aggregate_raw(raw)
    merged["raw_runs"] = raw
    return merged


def _spread(values: list[Any]) -> dict[str, Any] | None:
    numbers = [v for v in values if isinstance(v, int | float)]
    if not numbers:
        return None
    return {"median": statistics.median(numbers), "min": min(numbers), "max": max(numbers)}


# -- the table --------------------------------------------------------------------------
def dig(results: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any] | None:
    node: Any = results
    for part in path:
        if not isinstance(node, dict) or part not in node:
            return None
        node = node[part]
    return node if isinstance(node, dict) and "median" in node else None


def fmt(value: float | None) -> str:
    if value is None:
        return "-"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.3g}"


def verdict(ratio: float | None, better: str, what: str) -> str:
    """``3.2x faster`` / ``1.4x slower`` / ``1.1x more memory`` from an af/sf ratio."""
    if ratio is None or ratio <= 0:
        return "-"
    good = ratio > 1 if better == HIGHER else ratio < 1
    factor = ratio if ratio >= 1 else 1 / ratio
    if 0.95 <= ratio <= 1.05:
        return "same"
    if what == "memory":
        return f"{factor:.2f}x {'less' if good else 'more'} memory"
    return f"{factor:.2f}x {'faster' if good else 'slower'}"


def pair(sf: dict[str, Any], af: dict[str, Any], af_path: tuple[str, ...],
         sf_path: tuple[str, ...] | None = None) -> tuple[float | None, str] | None:
    """The af/sf ratio of the medians and the paired ratios' "median (min-max)", or None."""
    a, b = dig(sf["results"], sf_path or af_path), dig(af["results"], af_path)
    if a is None or b is None:
        return None
    ratio = b["median"] / a["median"] if a["median"] else None
    pairs = [y / x for x, y in zip(a["runs"], b["runs"], strict=False) if x]
    paired = (f"{statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})"
              if pairs else "-")
    return ratio, paired


@dataclass(frozen=True)
class Target:
    """One row of issue 11's table: an af/sf ratio of medians against a bound."""

    label: str
    path: tuple[str, ...]
    at_least: float | None = None
    at_most: float | None = None
    sf_path: tuple[str, ...] | None = None
    also: Callable[[dict[str, Any]], tuple[str, bool] | None] | None = None
    """A further absolute condition on the asyncfeeds results: (what it says, met)."""
    cross: tuple[str, ...] | None = None
    """The same quantity measured another way (memory rows: the keys' MEMORY USAGE); shown
    beside the ratio, and a verdict it contradicts is marked "disputed"."""

    def bound_met(self, ratio: float | None) -> bool | None:
        """Whether ``ratio`` is within the bound (None: no ratio or no bound)."""
        if ratio is None:
            return None
        if self.at_least is not None:
            return ratio >= self.at_least
        if self.at_most is not None:
            return ratio <= self.at_most
        return None

    def text(self) -> str:
        bound = (f">= {self.at_least:g}x" if self.at_least is not None
                 else f"<= {self.at_most:g}x" if self.at_most is not None else "none set")
        return bound + (" and < 0.5 s" if self.also else "")


def _w1_100k_seconds(af: dict[str, Any]) -> tuple[str, bool] | None:
    seconds = dig(af["results"], ("W1_fanout", "100000", "seconds"))
    if seconds is None:
        return None
    return f"{seconds['median']:.3f} s", seconds["median"] < 0.5


TARGETS = [
    Target("W1 fanout, 100k followers, eager: writes/s",
           ("W1_fanout", "100000", "writes_per_s"), at_least=30, also=_w1_100k_seconds),
    Target("W1 through 2 arq worker processes, 10k followers, defaults: writes/s "
           "(SF: its eager W1 at 10k)", ("W1_arq", "10000", "writes_per_s"), at_least=10),
    Target("W2 feed[:25] p50", ("W2_read", "p50_us"), at_most=0.33),
    Target("W2, 100 concurrent asyncio readers vs SF sequential: reads/s",
           ("W2_concurrent", "reads_per_s"), at_least=4, sf_path=("W2_read", "reads_per_s")),
    Target("W3 aggregated add: adds/s", ("W3_aggregated_add", "adds_per_s"), at_least=12),
    Target("W4 notification add: adds/s", ("W4_notification", "adds_per_s"), at_least=10),
    Target("W4 mark_all: ms", ("W4_notification", "mark_all_ms"), at_most=1.0),
    Target("Redis memory: activity in activity storage (bytes each, 10,000 stored)",
           ("MEM_activity_storage", "10000", "bytes_per_activity"), at_most=1.1,
           cross=("MEM_activity_storage", "10000", "memory_usage_per_activity")),
    Target("Redis memory: aggregated group, W3 shape (bytes each)",
           ("MEM_aggregated_group", "bytes_per_group"), at_most=1.5,
           cross=("MEM_aggregated_group", "memory_usage_per_group")),
    Target("Issue 13, retention: Redis bytes after 10,000 activities to 50 followers, "
           "trims to 100, half removed", ("RET_retention", "redis_bytes_end"),
           cross=("RET_retention", "memory_usage_end")),
]
CASSANDRA_TARGET = 25_000
"""Issue 11: eager fanout to 10,000 feeds on the Cassandra test node, writes/s (absolute)."""


EXPECTED: dict[str, Callable[[dict[str, Any]], bool]] = {
    "verified_all_found": lambda r: r["verified_all_found"] == r["verified_all_checked"],
    "verified_sample_found": lambda r: r["verified_sample_found"] == r["verified_sample_checked"],
    "result_ok": lambda r: r["result_ok"] is True,
    "short_pages": lambda r: r["short_pages"] == 0,
    "duplicate_group_entries": lambda r: r["duplicate_group_entries"] == 0,
    "activities_accounted": lambda r: r["activities_accounted"] == r.get("adds", 2000),
    "count_unseen_after": lambda r: r["count_unseen_after"] == 0,
    "user_feed_count": lambda r: r["user_feed_count"] == r["follower_feed_count"] == 50,
}
"""The untimed checks a run records, and what they must say (a failed one voids the row)."""
SIZED = ("W1_fanout", "W1_arq", "MEM_activity_storage")


def failed_checks(doc: dict[str, Any], path: tuple[str, ...]) -> list[str]:
    """Names of the checks that failed in any repetition of the runs behind ``path``."""
    key = f"{path[0]}/{path[1]}" if path[0] in SIZED else path[0]
    failed = set()
    for run in doc.get("raw_runs", {}).get(key, []):
        failed.update(name for name, ok in EXPECTED.items() if name in run and not ok(run))
    return sorted(failed)


def target_table(sf: dict[str, Any], af: dict[str, Any],
                 cassandra: dict[str, Any] | None = None) -> str:
    """Issue 11's rows: SF, asyncfeeds, ratio, paired ratios, target, met / missed."""
    lines = ["| workload | SF median | asyncfeeds median | ratio af/sf | paired ratios (min-max) "
             "| target | target met / missed |", "|---|---|---|---|---|---|---|"]
    for target in TARGETS:
        a = dig(sf["results"], target.sf_path or target.path)
        b = dig(af["results"], target.path)
        found = pair(sf, af, target.path, target.sf_path)
        if a is None or b is None or found is None:
            lines.append(f"| {target.label} | - | - | - | - | {target.text()} | not run |")
            continue
        ratio, paired = found
        met = target.bound_met(ratio)
        extra = target.also(af) if target.also else None
        shown = fmt(b["median"])
        if extra is not None:
            shown += f" ({extra[0]})"
            met = bool(met) and extra[1]
        verdict_text = "-" if met is None else "met" if met else "missed"
        ratio_text = "-" if ratio is None else f"{ratio:.2f}x"
        crossed = pair(sf, af, target.cross) if target.cross else None
        if crossed is not None and crossed[0] is not None:
            ratio_text += f" (MEMORY USAGE {crossed[0]:.2f}x)"
            other = target.bound_met(crossed[0])
            if met is not None and other is not None and other != met:
                verdict_text = (f"disputed: {verdict_text} by used_memory, "
                                f"{'met' if other else 'missed'} by MEMORY USAGE")
        failed = failed_checks(af, target.path) + failed_checks(sf, target.sf_path or target.path)
        if failed:
            verdict_text = f"VOID: check failed ({', '.join(failed)})"
        lines.append(f"| {target.label} | {fmt(a['median'])} | {shown} | "
                     f"{ratio_text} | {paired} | {target.text()} | {verdict_text} |")
    lines.append(cassandra_row(cassandra))
    return "\n".join(lines)


def cassandra_row(cassandra: dict[str, Any] | None) -> str:
    """The absolute Cassandra row from ``cassandra_fanout.py --json``, or "not run"."""
    label = "Cassandra fanout to 10,000 feeds (single test node; absolute, no SF)"
    bound = f">= {CASSANDRA_TARGET:,} writes/s"
    rows = [r for r in (cassandra or {}).get("rows", [])
            if r.get("kind") == "flat" and r.get("setup") == "single"]
    if not rows:
        why = (cassandra or {}).get("not_run", "not run")
        return f"| {label} | - | - | - | - | {bound} | {why} |"
    row = rows[0]
    speed = row["writes_per_s"]
    return (f"| {label} | - | {speed:,.0f} writes/s "
            f"({row['median_s']:.3f} s) | - | runs {row['range']} | {bound} | "
            f"{'met' if speed >= CASSANDRA_TARGET else 'missed'} |")


def table(sf: dict[str, Any], af: dict[str, Any]) -> str:
    lines = [
        "| metric | SF median | asyncfeeds median | ratio af/sf | paired ratios (min-max) "
        "| asyncfeeds is |",
        "|---|---|---|---|---|---|",
    ]
    for label, path, better, *other in ROWS:
        sf_path = other[0] if other else path
        a, b = dig(sf["results"], sf_path), dig(af["results"], path)
        found = pair(sf, af, path, sf_path)
        if a is None or b is None or found is None:
            continue
        ratio, paired = found
        what = "memory" if any(w in label for w in ("MiB", "bytes", "MEMORY")) else "speed"
        lines.append(
            f"| {label} | {fmt(a['median'])} | {fmt(b['median'])} | "
            f"{'-' if ratio is None else f'{ratio:.2f}'} | {paired} | "
            f"{verdict(ratio, better, what)} |"
        )
    return "\n".join(lines)


def ceiling_table(sf: dict[str, Any], af: dict[str, Any]) -> str:
    """redis-benchmark numbers measured in each library's invocations (the box, not a library)."""
    path = ("W5_redis_ceiling", "redis_benchmark_ops_per_s")
    a = (sf["results"].get(path[0]) or {}).get(path[1]) or {}
    b = (af["results"].get(path[0]) or {}).get(path[1]) or {}
    lines = ["| redis-benchmark | during SF runs | during asyncfeeds runs | ratio |",
             "|---|---|---|---|"]
    for key in a:
        if key in b and isinstance(a[key], dict):
            x, y = a[key]["median"], b[key]["median"]
            lines.append(f"| {key} ops/s | {fmt(x)} | {fmt(y)} | {y / x:.2f} |")
    return "\n".join(lines) if len(lines) > 2 else ""


def environment_lines(sf: dict[str, Any], af: dict[str, Any]) -> str:
    out = []
    for doc in (sf, af):
        env = doc["environment"]
        calib = env.get("cpu_calibration_ms_at_start") or {}
        steal = env.get("steal_pct_during_run") or {}
        out.append(
            f"- {doc['driver']}: {doc['params'].get('interleaved_invocations', 1)} invocations, "
            f"pin {env.get('pin_mode')}, client CPUs {env.get('client_cpus')}, redis-server CPUs "
            f"{env.get('redis_server_cpus')}, calibration ms median {fmt(calib.get('median'))} "
            f"({fmt(calib.get('min'))}-{fmt(calib.get('max'))}), steal % median "
            f"{fmt(steal.get('median'))} (max {fmt(steal.get('max'))})"
        )
    return "\n".join(out)


def report(sf: dict[str, Any], af: dict[str, Any],
           cassandra: dict[str, Any] | None = None) -> str:
    parts = ["## Issue 11 targets", "", target_table(sf, af, cassandra), "",
             "## All metrics", "", table(sf, af), "", environment_lines(sf, af)]
    ceiling = ceiling_table(sf, af)
    if ceiling:
        parts += ["", ceiling]
    return "\n".join(parts)


SHOWN = ("seconds", "writes_per_s", "p50_us", "reads_per_s", "adds_per_s", "mark_all_ms",
         "zadd_single_per_s", "client_peak_rss_mb", "redis_used_memory_end_mb",
         "bytes_per_activity", "bytes_per_group", "redis_bytes_after_trim", "redis_bytes_end")


def show(doc: dict[str, Any]) -> str:
    """A progress line per workload of one invocation file."""
    lines = []
    for key, runs in doc.get("raw_runs", {}).items():
        for run in runs:
            shown = {k: round(v, 1) for k, v in run.items() if k in SHOWN}
            lines.append(f"{doc['driver']:>16} {key} rep {doc['params'].get('first_rep')}: {shown}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    commands = parser.add_subparsers(dest="command", required=True)
    merging = commands.add_parser("merge", help="pool one driver's invocation files")
    merging.add_argument("--out", type=Path, required=True)
    merging.add_argument("files", type=Path, nargs="+")
    tabling = commands.add_parser("table", help="markdown ratio table asyncfeeds / SF")
    tabling.add_argument("sf", type=Path)
    tabling.add_argument("asyncfeeds", type=Path)
    tabling.add_argument("--cassandra", type=Path,
                         help="cassandra_fanout.py --json output (absent: the row says not run)")
    showing = commands.add_parser("show", help="progress lines of one invocation file")
    showing.add_argument("file", type=Path)
    args = parser.parse_args(argv)
    if args.command == "show":
        print(show(json.loads(args.file.read_text())))
        return 0
    if args.command == "merge":
        merged = merge(args.files)
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(merged, indent=2) + "\n")
        return 0
    sf = json.loads(args.sf.read_text())
    af = json.loads(args.asyncfeeds.read_text())
    if sf["driver"] != "stream_framework" or af["driver"] != "asyncfeeds":
        parser.error("give the Stream Framework file first, then the asyncfeeds file")
    cassandra = (json.loads(args.cassandra.read_text())
                 if args.cassandra and args.cassandra.is_file() else None)
    print(report(sf, af, cassandra))
    return 0


if __name__ == "__main__":
    sys.exit(main())
