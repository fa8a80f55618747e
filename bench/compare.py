#!/usr/bin/env python3
"""Merge per-invocation result files and print the asyncfeeds / Stream Framework ratio table.

    python3 bench/compare.py merge --out merged.json run-*.json   # one driver's invocations
    python3 bench/compare.py table sf.json asyncfeeds.json        # markdown on stdout
    python3 bench/compare.py show run.json                        # one line per workload

Ratios are asyncfeeds / SF of the medians. The "paired" column is the median of
the per-repetition ratios, each repetition of one library set against the
repetition of the other run right beside it (run.sh interleaves A B A B), which
cancels most of the host's drift.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stats import aggregate_raw

HIGHER = "higher"
LOWER = "lower"

ROWS: list[tuple[str, tuple[str, ...], str]] = []
"""(label, path inside ``results``, which way is better)."""
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
    ("W2 read [:25]: p50 us", ("W2_read", "p50_us"), LOWER),
    ("W2 read [:25]: p99 us", ("W2_read", "p99_us"), LOWER),
    ("W2 read [:25]: reads/s", ("W2_read", "reads_per_s"), HIGHER),
    ("W2 read: client peak RSS MiB", ("W2_read", "client_peak_rss_mb"), LOWER),
    ("W2 after setup: Redis used_memory MiB", ("W2_read", "redis_used_memory_setup_mb"), LOWER),
    ("W3 aggregated add: adds/s", ("W3_aggregated_add", "adds_per_s"), HIGHER),
    ("W3: client peak RSS MiB", ("W3_aggregated_add", "client_peak_rss_mb"), LOWER),
    ("W3 end: Redis used_memory MiB", ("W3_aggregated_add", "redis_used_memory_end_mb"), LOWER),
    ("W4 notification add: adds/s", ("W4_notification", "adds_per_s"), HIGHER),
    ("W4 mark_all(seen): ms", ("W4_notification", "mark_all_ms"), LOWER),
    ("W4: client peak RSS MiB", ("W4_notification", "client_peak_rss_mb"), LOWER),
    ("W4 end: Redis used_memory MiB", ("W4_notification", "redis_used_memory_end_mb"), LOWER),
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


def table(sf: dict[str, Any], af: dict[str, Any]) -> str:
    lines = [
        "| metric | SF median | asyncfeeds median | ratio af/sf | paired ratios (min-max) "
        "| asyncfeeds is |",
        "|---|---|---|---|---|---|",
    ]
    for label, path, better in ROWS:
        a, b = dig(sf["results"], path), dig(af["results"], path)
        if a is None or b is None:
            continue
        ratio = b["median"] / a["median"] if a["median"] else None
        pairs = [y / x for x, y in zip(a["runs"], b["runs"], strict=False) if x]
        paired = (f"{statistics.median(pairs):.2f} ({min(pairs):.2f}-{max(pairs):.2f})"
                  if pairs else "-")
        what = "memory" if "MiB" in label else "speed"
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


def report(sf: dict[str, Any], af: dict[str, Any]) -> str:
    parts = [table(sf, af), "", environment_lines(sf, af)]
    ceiling = ceiling_table(sf, af)
    if ceiling:
        parts += ["", ceiling]
    return "\n".join(parts)


SHOWN = ("seconds", "writes_per_s", "p50_us", "reads_per_s", "adds_per_s", "mark_all_ms",
         "zadd_single_per_s", "client_peak_rss_mb", "redis_used_memory_end_mb")


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
    print(report(sf, af))
    return 0


if __name__ == "__main__":
    sys.exit(main())
