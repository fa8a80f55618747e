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
import os
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
DEFAULT_PEER_DIR = next(
    (up / "shared" / "bench" / "peer" for up in (HERE.parent.parent, HERE.parent.parent.parent)
     if (up / "shared" / "bench" / "peer" / "harness.py").is_file()),
    HERE.parent.parent / "shared" / "bench" / "peer",
)
DRIVERS = ("asyncfeeds", "stream_framework")
WORKLOADS = ("W1", "W1Q", "W2", "W3", "W4", "W5", "MEM", "RET")
"""The peer's W1-W5 plus: W1Q (W1 through arq workers; SF: its eager W1, the reference),
MEM (Redis bytes per stored activity and per aggregated group), RET (issue 13's retention
scenario). W2 also runs concurrent readers for a driver whose reads are coroutines."""

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


# -- workloads beyond the peer's (same data generators, same driver contract) ----------
def is_sync(driver: Any) -> bool:
    """Stream Framework's driver is synchronous; asyncfeeds' returns coroutines."""
    return driver.name == "stream_framework"


async def w1_arq(driver: Any, n_followers: int, rep: int, workers: int,
                 cpus: str | None) -> dict[str, Any]:
    """W1 with the fanout run by ``workers`` arq worker processes at the library defaults.

    Stream Framework runs its eager W1 fanout here: the issue compares the arq numbers
    with that, in the same step, so the two are measured side by side.
    """
    if is_sync(driver):
        run = await harness.w1_fanout(driver, n_followers, rep=rep)
        run["mode"] = "Stream Framework eager W1 fanout (the reference of the arq row)"
        return dict(run)
    await driver.reset()
    followers = harness.w1_followers(n_followers)
    activity = harness.w1_activity(rep)
    try:
        await driver.start_workers(workers, cpus)
        seconds = await driver.arq_fanout(activity.actor_id, followers, activity)
    finally:
        await driver.stop_workers()
    found = await driver.count_feeds_containing(followers, activity)
    return {"followers": n_followers, "workers": workers, "seconds": seconds,
            "writes_per_s": n_followers / seconds, "verified_all_checked": n_followers,
            "verified_all_found": found,
            "mode": f"arq, {workers} worker processes, library defaults",
            "worker_cpus": cpus or "the client's"}


async def w2_concurrent(driver: Any, readers: int = 100, reads: int = 2000, page: int = 25,
                        warmup: int = 50) -> dict[str, Any]:
    """W2's feed read by ``readers`` concurrent asyncio tasks, ``reads`` reads in all."""
    await driver.reset()
    handle = await driver.read_prepare(42, harness.w2_activities(1000))
    for _ in range(warmup):
        await driver.read(handle, 0, page)
    latencies: list[int] = []
    short = 0

    async def reader(count: int) -> None:
        nonlocal short
        for _ in range(count):
            started = time.perf_counter_ns()
            got = await driver.read(handle, 0, page)
            latencies.append(time.perf_counter_ns() - started)
            short += len(got) != page

    started = time.perf_counter_ns()
    await asyncio.gather(*(reader(reads // readers) for _ in range(readers)))
    total = time.perf_counter_ns() - started
    latencies.sort()
    return {"readers": readers, "reads": len(latencies), "page": page,
            "reads_per_s": len(latencies) / (total / 1e9),
            "p50_us": harness.percentile(latencies, 50) / 1e3,
            "p99_us": harness.percentile(latencies, 99) / 1e3,
            "short_pages": short}


SETTLE_S = 0.5
"""Pause before a memory snapshot: Redis finishes growing a hash table in the background."""


async def data_bytes(port: int) -> int:
    """Redis bytes held by keys (``measure.redis_data_bytes``) once the server settled."""
    await asyncio.sleep(SETTLE_S)
    return measure.redis_data_bytes(port)


def keys_bytes(port: int) -> int:
    """The cross-check: the keys' own ``MEMORY USAGE`` (``measure.redis_keys_bytes``)."""
    return measure.redis_keys_bytes(port)


async def store_activities(driver: Any, specs: list[Any]) -> None:
    """Activity storage only: SF's ``insert_activities`` / the asyncfeeds driver's."""
    if is_sync(driver):
        driver.ReadFeed.insert_activities([driver.to_activity(s) for s in specs])
    else:
        await driver.store_activities(specs)


async def mem_activity_storage(driver: Any, port: int, n: int) -> dict[str, Any]:
    """Redis bytes per activity in activity storage: W2-shaped activities (with extra)."""
    await maybe_await(driver.reset())
    await store_activities(driver, harness.w2_activities(5))  # loads any script first
    await maybe_await(driver.reset())
    before = await data_bytes(port)
    await store_activities(driver, harness.w2_activities(n))
    used = await data_bytes(port) - before
    own = keys_bytes(port)
    await maybe_await(driver.reset())
    return {"activities": n, "bytes": used, "bytes_per_activity": used / n,
            "memory_usage_per_activity": own / n}


async def mem_aggregated_group(driver: Any, port: int) -> dict[str, Any]:
    """Redis bytes per group of W3's feed after its 2,000 adds (activity storage excluded)."""
    specs = harness.w3_activities(2000)
    await maybe_await(driver.reset())
    warm = await maybe_await(driver.agg_prepare(8, specs[:20]))  # loads any script first
    for spec in specs[:20]:
        await maybe_await(driver.agg_add(warm, spec))
    await maybe_await(driver.reset())
    feed = await maybe_await(driver.agg_prepare(7, specs))
    before, own_before = await data_bytes(port), keys_bytes(port)
    for spec in specs:
        await maybe_await(driver.agg_add(feed, spec))
    used = await data_bytes(port) - before
    own = keys_bytes(port) - own_before
    summary = await maybe_await(driver.agg_summary(feed))
    await maybe_await(driver.reset())
    groups = summary["aggregated_count"]
    return {"bytes": used, "groups": groups, "bytes_per_group": used / groups,
            "memory_usage_per_group": own / groups, **summary}


RETENTION_ACTIVITIES = 10_000
RETENTION_FOLLOWERS = 50
RETENTION_LENGTH = 100


def retention_specs() -> list[Any]:
    """tests/test_retention.py's activities: actor 1, one verb, a minute apart."""
    return [harness.ActivitySpec(actor_id=1, verb_id=harness.VERB_IDS[0], object_id=1 + n,
                                 time=harness.BASE_TIME + dt.timedelta(minutes=n))
            for n in range(RETENTION_ACTIVITIES)]


async def retention(driver: Any, port: int) -> dict[str, Any]:
    """Issue 13: 10,000 activities imported to 50 followers, every feed trimmed to 100,
    then every other activity removed; Redis bytes after the trims and at the end."""
    specs = retention_specs()
    followers = list(range(2, 2 + RETENTION_FOLLOWERS))
    removed = specs[1::2]
    await maybe_await(driver.reset())
    await store_activities(driver, harness.w2_activities(5))  # loads any script first
    await maybe_await(driver.reset())
    before = await data_bytes(port)
    started = time.perf_counter()
    if is_sync(driver):
        driver.fanout_prepare(1, followers)
        driver.manager.batch_import(1, [driver.to_activity(s) for s in specs], chunk_size=500)
        driver.UserFeed(1).trim(RETENTION_LENGTH)
        for user_id in followers:
            driver.FanoutFeed(user_id).trim(RETENTION_LENGTH)
    else:
        await driver.retention_import(1, followers, specs)
        await driver.retention_trim(1, followers, RETENTION_LENGTH)
    seconds_import = time.perf_counter() - started
    after_trim = await data_bytes(port) - before
    own_after_trim = keys_bytes(port)
    started = time.perf_counter()
    if is_sync(driver):
        for spec in removed:
            driver.manager.remove_user_activity(1, driver.to_activity(spec))
        counts = {"user_feed_count": driver.UserFeed(1).count(),
                  "follower_feed_count": driver.FanoutFeed(followers[-1]).count()}
    else:
        await driver.retention_remove(1, removed)
        counts = await driver.retention_counts(1, followers[-1])
    seconds_remove = time.perf_counter() - started
    end = await data_bytes(port) - before
    own_end = keys_bytes(port)
    await maybe_await(driver.reset())
    return {"activities": len(specs), "followers": len(followers), "max_length": RETENTION_LENGTH,
            "removed": len(removed), "redis_bytes_after_trim": after_trim,
            "redis_bytes_end": end, "memory_usage_after_trim": own_after_trim,
            "memory_usage_end": own_end, "seconds_import": seconds_import,
            "seconds_remove": seconds_remove, **counts}


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
    if "W1Q" in args.only:
        size = args.arq_followers
        runs = raw[f"W1_arq/{size}"] = []
        for i in range(args.repeat):
            run = await w1_arq(driver, size, args.first_rep + i, args.arq_workers,
                               args.worker_cpus)
            log(f"[{driver.name}] W1Q n={size}: {run['seconds']:.3f}s "
                f"{run['writes_per_s']:.0f} writes/s", args.quiet)
            runs.append(run)
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
            if key == "W2" and not is_sync(driver):
                concurrent = await w2_concurrent(driver, readers=args.readers)
                log(f"[{driver.name}] W2 {args.readers} readers: "
                    f"{concurrent['reads_per_s']:.0f} reads/s", args.quiet)
                raw.setdefault("W2_concurrent", []).append(concurrent)
        await driver.reset()
    if "MEM" in args.only:
        for _ in range(args.repeat):
            for n in args.memory_sizes:
                run = await mem_activity_storage(driver, args.port, n)
                raw.setdefault(f"MEM_activity_storage/{n}", []).append(run)
                log(f"[{driver.name}] MEM {n} activities: {run['bytes_per_activity']:.1f} B each",
                    args.quiet)
            run = await mem_aggregated_group(driver, args.port)
            raw.setdefault("MEM_aggregated_group", []).append(run)
            log(f"[{driver.name}] MEM W3 groups: {run['bytes_per_group']:.0f} B each "
                f"({run['groups']} groups)", args.quiet)
    if "RET" in args.only:
        for _ in range(args.repeat):
            run = await retention(driver, args.port)
            raw.setdefault("RET_retention", []).append(run)
            log(f"[{driver.name}] RET: {run['redis_bytes_end']:,} B at the end "
                f"({run['redis_bytes_after_trim']:,} B after the trims)", args.quiet)
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
    parser.add_argument("--arq-followers", type=int, default=10_000,
                        help="W1Q: followers of the publish run by arq workers")
    parser.add_argument("--arq-workers", type=int, default=2, help="W1Q: worker processes")
    parser.add_argument("--worker-cpus", default="all",
                        help="W1Q: taskset CPU list for the workers; 'all' (default) every CPU, "
                             "'client' this process's")
    parser.add_argument("--readers", type=int, default=100,
                        help="W2: concurrent asyncio readers (asyncfeeds)")
    parser.add_argument("--memory-sizes", default="10000",
                        help="MEM: activity counts stored for the bytes-per-activity rows")
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
    args.memory_sizes = [int(n) for n in args.memory_sizes.split(",") if n.strip()]
    if args.worker_cpus == "all":
        args.worker_cpus = f"0-{(os.cpu_count() or 1) - 1}"
    elif args.worker_cpus == "client":
        args.worker_cpus = None
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
