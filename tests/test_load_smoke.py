"""The load harness of ``make load`` (bench/load) in miniature, so it cannot rot unnoticed.

A few seconds of locust against the load app, with its own redis-server, uvicorn
and two ``asyncfeeds worker`` processes; the harness's exactness report over
every delivery must come out clean, and every part of the report must be there.
``--prove-checker`` then spoils one delivery of each kind and checks again: the
checker must find exactly that damage, so a checker that sees nothing fails here.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

RUNNER = Path(__file__).resolve().parents[1] / "bench" / "load" / "run.py"
MIX = "feed=30,aggregated=10,post=30,like=15,notifications=15"


def test_load_harness_reports_every_delivery_exact(tmp_path: Path) -> None:
    out = tmp_path / "load.json"
    done = subprocess.run(
        [sys.executable, str(RUNNER), "--users", "5", "--spawn-rate", "5", "--duration", "4",
         "--graph", "120,15,2,5", "--mix", MIX, "--wait", "0.05,0.2", "--popular-share", "0.2",
         "--quiet", "--prove-checker", "--json", str(out)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "RESULT: clean" in done.stdout
    figures = json.loads(out.read_text())
    assert figures["clean"] is True

    endpoints = {row["endpoint"]: row for row in figures["endpoints"]}
    assert set(endpoints) == {"GET /feed", "GET /aggregated", "POST /posts", "POST /likes",
                              "GET /notifications", "total"}
    assert all(row["failures"] == 0 for row in endpoints.values())
    assert endpoints["total"]["rps"] > 0 and endpoints["total"]["p99_ms"] > 0

    assert figures["queue_samples"], "the queues were not sampled"
    assert all(s["queues"] is not None for s in figures["queue_samples"])
    assert figures["drain_s"] is not None

    exact = figures["exactness"]
    assert exact["posts"] > 0
    for kind in ("flat", "aggregated", "user_feeds"):
        tally = exact[kind]
        assert tally["feeds"] == 120
        assert tally["expected"] > 0
        assert tally["found"] == tally["expected"]
        assert (tally["lost"], tally["doubled"], tally["unexpected"]) == (0, 0, 0)
    assert exact["user_feeds"]["expected"] == exact["posts"]
    assert exact["notifications"]["found"] == exact["likes"]
    assert exact["badges"]["feeds"] == 120
    assert exact["badges"]["unseen_mismatches"] == exact["badges"]["unread_mismatches"] == 0
    assert exact["dead_letters"] == exact["left_in_queues"] == 0

    proof = figures["checker_proof"]
    assert proof["found"] == proof["spoiled"]
    assert proof["spoiled"]["flat_lost"] == proof["spoiled"]["aggregated_lost"] == 1
