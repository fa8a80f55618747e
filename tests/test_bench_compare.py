"""bench/compare.py's issue 11 table: met / missed against each target, VOID when a run's
untimed check failed, "not run" for rows without runs (so `make bench` cannot mislead)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parents[1] / "bench"
sys.path.insert(0, str(BENCH))

import compare  # noqa: E402
from stats import aggregate_raw  # noqa: E402


def doc(driver: str, raw: dict[str, list[dict[str, Any]]]) -> dict[str, Any]:
    return {"driver": driver, "results": aggregate_raw(raw), "raw_runs": raw}


def w3(adds_per_s: float, accounted: int = 2000) -> dict[str, Any]:
    return {"adds": 2000, "adds_per_s": adds_per_s, "activities_accounted": accounted,
            "duplicate_group_entries": 0}


def row(table: str, start: str) -> str:
    return next(line for line in table.splitlines() if line.startswith(f"| {start}"))


def test_ratios_are_set_against_the_targets() -> None:
    sf = doc("stream_framework", {
        "W3_aggregated_add": [w3(100), w3(110)],
        "W4_notification": [{"adds_per_s": 100, "mark_all_ms": 0.1}],
        "W2_read": [{"p50_us": 1000, "reads_per_s": 1000}],
    })
    af = doc("asyncfeeds", {
        "W3_aggregated_add": [w3(1300), w3(1400)],
        "W4_notification": [{"adds_per_s": 900, "mark_all_ms": 0.09}],
        "W2_read": [{"p50_us": 400, "reads_per_s": 2000}],
        "W2_concurrent": [{"reads_per_s": 4500, "short_pages": 0}],
    })
    table = compare.target_table(sf, af)
    assert row(table, "W3 aggregated").endswith("| >= 12x | met |")
    assert row(table, "W4 notification").endswith("| >= 10x | missed |")
    assert row(table, "W4 mark_all").endswith("| <= 1x | met |")
    assert row(table, "W2 feed").endswith("| <= 0.33x | missed |")
    assert row(table, "W2, 100 concurrent").endswith("| >= 4x | met |")  # vs SF sequential
    assert row(table, "W1 fanout, 100k").endswith("| not run |")
    assert row(table, "Cassandra").endswith("| not run |")


def test_a_failed_check_voids_the_row_however_fast() -> None:
    sf = doc("stream_framework", {"W3_aggregated_add": [w3(100)]})
    af = doc("asyncfeeds", {"W3_aggregated_add": [w3(5000, accounted=1999)]})
    assert "VOID: check failed (activities_accounted)" in row(
        compare.target_table(sf, af), "W3 aggregated")


def test_w1_at_100k_needs_the_ratio_and_half_a_second() -> None:
    def w1(seconds: float) -> dict[str, Any]:
        return {"seconds": seconds, "writes_per_s": 100_000 / seconds,
                "verified_all_found": 100_000, "verified_all_checked": 100_000}

    sf = doc("stream_framework", {"W1_fanout/100000": [w1(20.0)]})
    fast = compare.target_table(sf, doc("asyncfeeds", {"W1_fanout/100000": [w1(0.4)]}))
    slow = compare.target_table(sf, doc("asyncfeeds", {"W1_fanout/100000": [w1(0.6)]}))
    assert row(fast, "W1 fanout, 100k").endswith("| met |")
    assert row(slow, "W1 fanout, 100k").endswith("| missed |")  # 33x, but 0.6 s


def test_the_cassandra_row_is_absolute() -> None:
    result = {"rows": [{"kind": "flat", "setup": "single", "followers": 10_000,
                        "median_s": 0.3, "writes_per_s": 33_333, "range": "0.29-0.31 s"}]}
    assert compare.cassandra_row(result).endswith("| met |")
    assert compare.cassandra_row({"rows": [], "not_run": "not run (no node)"}).endswith(
        "| not run (no node) |")


def test_run_sh_parses() -> None:
    subprocess.run(["bash", "-n", str(BENCH / "run.sh")], check=True)


def test_a_memory_verdict_the_cross_check_contradicts_is_disputed() -> None:
    def group(used: float, usage: float) -> dict[str, Any]:
        return {"bytes_per_group": used, "memory_usage_per_group": usage}

    sf = doc("stream_framework", {"MEM_aggregated_group": [group(1400, 600)]})
    af = doc("asyncfeeds", {"MEM_aggregated_group": [group(1500, 1500)]})
    line = row(compare.target_table(sf, af), "Redis memory: aggregated group")
    assert "(MEMORY USAGE 2.50x)" in line
    assert line.endswith("| disputed: met by used_memory, missed by MEMORY USAGE |")
