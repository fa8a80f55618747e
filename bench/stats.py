"""Summaries of repeated runs, in the shape the peer's result files use.

Kept free of third-party and harness imports so ``compare.py`` can merge result
files anywhere.
"""

from __future__ import annotations

import statistics
from collections.abc import Sequence
from typing import Any

MEMORY_KEYS = [
    "client_rss_before_mb",
    "client_peak_rss_mb",
    "client_peak_growth_mb",
    "redis_used_memory_setup_mb",
    "redis_used_memory_end_mb",
]
"""Memory numbers measured per repetition by af_bench.py (absent ones are skipped)."""

KEY_METRICS: dict[str, list[str]] = {
    "W1_fanout": ["seconds", "writes_per_s", *MEMORY_KEYS],
    "W1_arq": ["seconds", "writes_per_s"],
    "W2_concurrent": ["reads_per_s", "p50_us", "p99_us"],
    "MEM_activity_storage": ["bytes_per_activity", "memory_usage_per_activity"],
    "MEM_aggregated_group": ["bytes_per_group", "memory_usage_per_group"],
    "RET_retention": ["redis_bytes_after_trim", "redis_bytes_end", "memory_usage_after_trim",
                      "memory_usage_end", "seconds_import", "seconds_remove"],
    "W2_read": ["p50_us", "p99_us", "mean_us", "reads_per_s", *MEMORY_KEYS],
    "W3_aggregated_add": ["seconds", "adds_per_s", *MEMORY_KEYS],
    "W4_notification": ["seconds", "adds_per_s", "mark_all_ms", *MEMORY_KEYS],
}
"""Numbers that get a median/min/max summary, by workload (the peer's plus memory)."""


def summarize(values: Sequence[float]) -> dict[str, Any]:
    """Median, min, max, spread (% of the median) and the individual runs."""
    values = list(values)
    median = statistics.median(values)
    low, high = min(values), max(values)
    return {
        "median": median,
        "min": low,
        "max": high,
        "spread_pct": 100.0 * (high - low) / median if median else None,
        "runs": values,
    }


def aggregate(runs: Sequence[dict[str, Any]], keys: Sequence[str]) -> dict[str, Any]:
    """Summaries of ``keys``; any other field as one value if constant, else as the list."""
    out: dict[str, Any] = {}
    for key in keys:
        values = [r[key] for r in runs if r.get(key) is not None]
        if values:
            out[key] = summarize(values)
    for key in runs[0]:
        if key in out or key in keys:
            continue
        values = [r.get(key) for r in runs]
        out[key] = values[0] if all(v == values[0] for v in values) else values
    return out


def workload_name(raw_key: str) -> str:
    """``W1_fanout/1000`` -> ``W1_fanout``."""
    return raw_key.split("/", 1)[0]


def aggregate_raw(raw_runs: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    """The ``results`` section (peer layout) built from raw per-repetition runs."""
    results: dict[str, Any] = {}
    for raw_key, runs in raw_runs.items():
        if not runs:
            continue
        name = workload_name(raw_key)
        if name in ("W1_fanout", "W1_arq", "MEM_activity_storage"):
            size = raw_key.split("/", 1)[1]
            results.setdefault(name, {})[size] = aggregate(runs, KEY_METRICS[name])
        elif name in KEY_METRICS:
            results[name] = aggregate(runs, KEY_METRICS[name])
        elif raw_key == "W5/redis_benchmark":
            ceiling = results.setdefault("W5_redis_ceiling", {})
            ceiling["redis_benchmark_ops_per_s"] = _per_field(runs)
        elif raw_key.startswith("W5/"):
            field = raw_key.split("/", 1)[1] + "_ops_per_s"
            results.setdefault("W5_redis_ceiling", {})[field] = _per_field(runs)
    return results


def _per_field(runs: Sequence[dict[str, Any]]) -> dict[str, Any]:
    return {
        key: summarize([r[key] for r in runs]) if isinstance(value, int | float) else value
        for key, value in runs[0].items()
    }
