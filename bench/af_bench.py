#!/usr/bin/env python
"""Run the peer workloads (shared/bench/peer/workloads.md) and print ONE JSON object.

    .venv/bin/python bench/af_bench.py --port 6391 --repeat 3 [--out FILE]
    <sf venv>/bin/python bench/af_bench.py --driver stream_framework ...

The workloads come unchanged from the peer's ``harness.py``; this runner adds
memory numbers to every repetition (the client's peak RSS, Redis ``used_memory``)
and can run either driver, so both libraries are measured by the same code.
Needs a redis-server on 127.0.0.1:<port> that may be FLUSHDB'd freely (see run.sh).
"""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import hashlib
import inspect
import json
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_DIR = HERE.parent.parent / "shared" / "bench" / "peer"
DRIVERS = ("asyncfeeds", "stream_framework")
WORKLOADS = ("W1", "W2", "W3", "W4", "W5")

sys.path.insert(0, str(HERE))
import measure  # noqa: E402
from stats import aggregate_raw  # noqa: E402

harness: Any = None  # the peer's harness module, imported by load_harness()


def load_harness(peer_dir: Path) -> Any:
    """Import the peer's harness (and make its ``drivers`` package importable)."""
    global harness
    sys.dont_write_bytecode = True  # leave no __pycache__ in the (read-only) peer folder
    if not (peer_dir / "harness.py").is_file():
        raise SystemExit(f"no harness.py in {peer_dir}; pass --peer-dir")
    sys.path.insert(0, str(peer_dir))
    import harness as module

    harness = module
    return module


def load_driver(kind: str, host: str, port: int) -> Any:
    """Build the driver of ``kind``; each is imported only when asked for (separate venvs)."""
    if kind == "stream_framework":
        from drivers.stream_framework_driver import StreamFrameworkDriver

        return StreamFrameworkDriver(host=host, port=port)
    from asyncfeeds_driver import AsyncfeedsDriver

    return AsyncfeedsDriver(host=host, port=port)


async def maybe_await(value: Any) -> Any:
    """Await ``value`` if it is awaitable (drivers may be sync or async)."""
    return await value if inspect.isawaitable(value) else value


class Instrumented:
    """A driver seen through a thin layer that notes Redis memory after each reset and setup.

    Timed methods are the driver's own bound methods, so timed calls go through
    nothing extra.
    """

    def __init__(self, driver: Any, host: str, port: int) -> None:
        self._driver = driver
        self._host, self._port = host, port
        self.empty_mb: float | None = None
        self.setup_mb: float | None = None
        for name in ("fanout_add", "read", "agg_add", "notif_add", "notif_mark_all_seen",
                     "activity_key"):
            setattr(self, name, getattr(driver, name))

    def __getattr__(self, name: str) -> Any:
        return getattr(self._driver, name)

    def used_memory_mb(self) -> float:
        return measure.redis_used_memory_mb(self._port, self._host)

    async def reset(self) -> None:
        await maybe_await(self._driver.reset())
        self.empty_mb = self.used_memory_mb()
        self.setup_mb = None

    async def _prepared(self, handle: Awaitable[Any] | Any) -> Any:
        handle = await maybe_await(handle)
        self.setup_mb = self.used_memory_mb()
        return handle

    async def read_prepare(self, *args: Any, **kwargs: Any) -> Any:
        return await self._prepared(self._driver.read_prepare(*args, **kwargs))

    async def agg_prepare(self, *args: Any, **kwargs: Any) -> Any:
        return await self._prepared(self._driver.agg_prepare(*args, **kwargs))

    async def notif_prepare(self, *args: Any, **kwargs: Any) -> Any:
        return await self._prepared(self._driver.notif_prepare(*args, **kwargs))


async def measured(driver: Instrumented, workload: Callable[[], Awaitable[dict]]) -> dict:
    """Run one repetition; add the client's peak RSS and Redis memory (above an empty db)."""
    before = measure.rss_mb()
    tracked = measure.reset_peak()
    run = await workload()
    peak = measure.peak_rss_mb()
    run["client_rss_before_mb"] = before
    run["client_peak_rss_mb"] = peak
    run["client_peak_growth_mb"] = peak - before if tracked else None
    empty = driver.empty_mb or 0.0
    if driver.setup_mb is not None:
        run["redis_used_memory_setup_mb"] = driver.setup_mb - empty
    run["redis_used_memory_end_mb"] = driver.used_memory_mb() - empty
    return run


def log(message: str, quiet: bool) -> None:
    if not quiet:
        print(message, file=sys.stderr, flush=True)


async def run_workloads(driver: Instrumented, args: argparse.Namespace) -> dict[str, list[dict]]:
    """Every requested workload, ``args.repeat`` times; the raw runs by workload."""
    raw: dict[str, list[dict]] = {}
    if "W1" in args.only:
        for size in args.fanout_sizes:
            runs = raw[f"W1_fanout/{size}"] = []
            for i in range(args.repeat):
                rep = args.first_rep + i
                run = await measured(
                    driver, lambda s=size, r=rep: harness.w1_fanout(driver, s, rep=r)
                )
                log(f"[{driver.name}] W1 n={size} rep={rep}: {run['seconds']:.3f}s "
                    f"{run['writes_per_s']:.0f} writes/s", args.quiet)
                runs.append(run)
                if run["seconds"] > args.fanout_budget_s:
                    log(f"W1 n={size} exceeded the budget, stopping repeats", args.quiet)
                    break
            await driver.reset()
    for key, name, workload in (("W2", "W2_read", harness.w2_read),
                                ("W3", "W3_aggregated_add", harness.w3_aggregated_add),
                                ("W4", "W4_notification", harness.w4_notification)):
        if key not in args.only:
            continue
        runs = raw[name] = []
        for _ in range(args.repeat):
            run = await measured(driver, lambda w=workload: w(driver))
            shown = {k: round(v, 1) for k, v in run.items()
                     if k in ("p50_us", "reads_per_s", "adds_per_s", "mark_all_ms")}
            log(f"[{driver.name}] {key}: {shown}", args.quiet)
            runs.append(run)
        await driver.reset()
    if "W5" in args.only:
        for _ in range(args.repeat):
            raw.setdefault("W5/redis_benchmark", []).append(harness.w5_redis_benchmark(args.port))
            own = getattr(driver._driver, "w5_python_client", None)
            if own is not None:
                raw.setdefault("W5/python_client", []).append(await own(args.port))
                raw.setdefault("W5/python_client_sync", []).append(
                    harness.w5_python_client(args.port))
            else:
                raw.setdefault("W5/python_client", []).append(harness.w5_python_client(args.port))
            log(f"[{driver.name}] W5: {raw['W5/python_client'][-1]}", args.quiet)
        await driver.reset()
    return raw


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--driver", choices=DRIVERS, default="asyncfeeds")
    parser.add_argument("--peer-dir", type=Path, default=DEFAULT_PEER_DIR,
                        help="folder with the peer's harness.py (default: ../shared/bench/peer "
                             "beside the repo)")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=6391)
    parser.add_argument("--repeat", type=int, default=3, help="repetitions per workload")
    parser.add_argument("--first-rep", type=int, default=0,
                        help="number of the first repetition (W1 varies its activity by it)")
    parser.add_argument("--fanout-sizes", default="1000,10000,100000")
    parser.add_argument("--fanout-budget-s", type=float, default=180.0,
                        help="stop repeating a fanout size once one run exceeds this")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help="comma list of workloads; empty for none (with --probes)")
    parser.add_argument("--probes", action="store_true", help="run the driver's probes too")
    parser.add_argument("--out", type=Path, help="also write the JSON here")
    parser.add_argument("-q", "--quiet", action="store_true")
    args = parser.parse_args(argv)
    if args.host not in ("127.0.0.1", "localhost", "::1"):
        parser.error("this benchmark only targets a local redis-server")
    args.only = tuple(w.strip() for w in args.only.split(",") if w.strip())
    unknown = set(args.only) - set(WORKLOADS)
    if unknown:
        parser.error(f"unknown workloads {sorted(unknown)}; choose from {', '.join(WORKLOADS)}")
    args.fanout_sizes = [int(n) for n in args.fanout_sizes.split(",") if n.strip()]
    if args.repeat < 1:
        parser.error("--repeat must be at least 1")
    return args


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    raw_driver = load_driver(args.driver, args.host, args.port)
    driver = Instrumented(raw_driver, args.host, args.port)
    harness_file = args.peer_dir / "harness.py"
    result: dict[str, Any] = {
        "driver": raw_driver.name,
        "started_utc": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "versions": await maybe_await(raw_driver.versions()),
        "environment": harness.environment(args.port),
        "params": {
            "repeat": args.repeat,
            "first_rep": args.first_rep,
            "fanout_sizes": ",".join(map(str, args.fanout_sizes)),
            "only": ",".join(args.only),
            "redis": f"{args.host}:{args.port}",
            "harness_sha256": hashlib.sha256(harness_file.read_bytes()).hexdigest(),
            "runner": "asyncfeeds bench/af_bench.py",
        },
    }
    cpu_before = harness.cpu_times()
    try:
        if args.probes:
            result["probes"] = await maybe_await(raw_driver.probes())
        raw = await run_workloads(driver, args)
    finally:
        closer = getattr(raw_driver, "aclose", None)
        if closer is not None:
            await closer()
    environment = result["environment"]
    environment["steal_pct_during_run"] = harness.steal_pct(cpu_before, harness.cpu_times())
    environment["cpu_calibration_ms_at_end"] = harness.cpu_calibration_ms()
    environment["loadavg_at_end"] = measure.loadavg()
    result["results"] = aggregate_raw(raw)
    result["raw_runs"] = raw
    result["finished_utc"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    return result


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    load_harness(args.peer_dir.resolve())
    result = asyncio.run(main_async(args))
    text = json.dumps(result, indent=2)
    print(text)
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(text + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
