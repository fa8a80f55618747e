"""Figures of a load run from locust's per-request log, and the text tables the runner prints."""

from __future__ import annotations

import csv
import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any


@dataclass(frozen=True, slots=True)
class Request:
    """One request as locust saw it: start (epoch s), name, status (0: no response), ms."""

    start: float
    name: str
    status: int
    ms: float

    @property
    def end(self) -> float:
        return self.start + self.ms / 1000

    @property
    def ok(self) -> bool:
        return 200 <= self.status < 300


def read_requests(path: Path) -> list[Request]:
    """The rows of the ``LOAD_EVENTS`` file, oldest first."""
    if not path.exists():
        return []
    with path.open(newline="") as handle:
        rows = [Request(float(s), n, int(c), float(ms)) for s, n, c, ms in csv.reader(handle)]
    return sorted(rows, key=lambda r: r.start)


def percentile(values: Sequence[float], share: float) -> float:
    """The nearest-rank percentile of sorted ``values`` (0 for none)."""
    if not values:
        return 0.0
    return values[max(0, math.ceil(share * len(values)) - 1)]


def endpoint_table(requests: Sequence[Request]) -> list[dict[str, Any]]:
    """Per endpoint (and in total): requests, failures, requests/s, p50/p95/p99/max ms."""
    if not requests:
        return []
    span = max(r.end for r in requests) - requests[0].start
    names = sorted({r.name for r in requests})
    rows = []
    for name in [*names, "total"]:
        chosen = [r for r in requests if name in (r.name, "total")]
        times = sorted(r.ms for r in chosen)
        rows.append({
            "endpoint": name,
            "requests": len(chosen),
            "failures": sum(not r.ok for r in chosen),
            "rps": round(len(chosen) / span, 1) if span > 0 else 0.0,
            "p50_ms": round(percentile(times, 0.50), 1),
            "p95_ms": round(percentile(times, 0.95), 1),
            "p99_ms": round(percentile(times, 0.99), 1),
            "max_ms": round(times[-1], 1),
        })
    return rows


def outage(requests: Sequence[Request], killed: float, back: float) -> dict[str, Any]:
    """How requests fared around a Redis outage from ``killed`` to ``back`` (epoch s).

    Failures counted are those that ended after the kill, with their status;
    how fast each failed is the time from the kill (or its start, if later) to
    its answer, so time spent queued behind other requests before the kill does
    not count; and how long after Redis answered again the last one ended.
    """
    failed = [r for r in requests if not r.ok and r.end >= killed]
    after = [r for r in requests if r.ok and r.start >= back]
    waits = sorted((r.end - max(r.start, killed)) * 1000 for r in failed)
    return {
        "failed": len(failed),
        "statuses": dict(Counter(str(r.status) for r in failed)),
        "failed_within_ms_p50": round(percentile(waits, 0.5), 1),
        "failed_within_ms_p99": round(percentile(waits, 0.99), 1),
        "failed_within_ms_max": round(waits[-1], 1) if waits else 0.0,
        "first_failure_after_kill_s": round(min(r.end for r in failed) - killed, 3)
        if failed else None,
        "last_failure_after_back_s": round(max(r.end for r in failed) - back, 3)
        if failed else None,
        "first_success_after_back_s": round(min(r.end for r in after) - back, 3)
        if after else None,
    }


RECONNECTED = re.compile(r"reconnected to the queue's Redis at \S+ after ([0-9.]+) s")


def reconnections(log: Path) -> list[float]:
    """Seconds each reconnection took, as an ``asyncfeeds worker`` logged it."""
    if not log.exists():
        return []
    return [float(m.group(1)) for m in RECONNECTED.finditer(log.read_text(errors="replace"))]


def table(rows: Iterable[Sequence[Any]], header: Sequence[str]) -> str:
    """Rows as aligned text columns (first column left, the others right)."""
    cells = [[str(h) for h in header], *([_cell(v) for v in row] for row in rows)]
    widths = [max(len(r[i]) for r in cells) for i in range(len(header))]
    lines = []
    for row in cells:
        first, *rest = row
        lines.append("  ".join([first.ljust(widths[0]),
                                *(v.rjust(w) for v, w in zip(rest, widths[1:], strict=True))]))
    return "\n".join(lines)


def _cell(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:,.1f}"
    if isinstance(value, int):
        return f"{value:,}"
    return "-" if value is None else str(value)
