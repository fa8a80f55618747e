#!/usr/bin/env python
"""Profile one workload of the asyncfeeds driver with cProfile and print where the time goes.

    .venv/bin/python bench/profile_workload.py W2 --port 6392 [--sort tottime] [--limit 30]

Needs a redis-server on 127.0.0.1:<port> that may be FLUSHDB'd. Only the
workload's own harness function runs under the profiler (setup included, so
read the timed calls' rows: ``read``, ``agg_add``, ``notif_add``, ...).
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
from pathlib import Path

import af_bench

STEPS = {
    "W1": lambda h, d: h.w1_fanout(d, 10_000),
    "W2": lambda h, d: h.w2_read(d),
    "W3": lambda h, d: h.w3_aggregated_add(d),
    "W4": lambda h, d: h.w4_notification(d),
    "W4mark": None,
}


async def _mark_all_loop(harness, driver, rounds: int = 200) -> None:
    """W4's mark_all, repeated: re-add one activity so each round has a group to mark."""
    specs = harness.w4_activities(20)
    feed = await driver.notif_prepare(9, specs)
    for spec in specs:
        await driver.notif_add(feed, spec)
    for _ in range(rounds):
        await driver.notif_mark_all_seen(feed)


async def _run(step: str, port: int, profiler: cProfile.Profile) -> None:
    harness = af_bench.harness
    driver = af_bench.load_driver("asyncfeeds", "127.0.0.1", port)
    try:
        await driver.reset()
        profiler.enable()
        if step == "W4mark":
            await _mark_all_loop(harness, driver)
        else:
            await STEPS[step](harness, driver)
        profiler.disable()
    finally:
        await driver.aclose()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("step", choices=sorted(STEPS))
    parser.add_argument("--port", type=int, default=6392)
    parser.add_argument("--peer-dir", type=Path, default=af_bench.DEFAULT_PEER_DIR)
    parser.add_argument("--sort", default="cumulative")
    parser.add_argument("--limit", type=int, default=40)
    args = parser.parse_args(argv)
    af_bench.load_harness(args.peer_dir.resolve())
    profiler = cProfile.Profile()
    asyncio.run(_run(args.step, args.port, profiler))
    out = io.StringIO()
    pstats.Stats(profiler, stream=out).strip_dirs().sort_stats(args.sort).print_stats(args.limit)
    print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
