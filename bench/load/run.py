"""``make load``: the load test of issue 17, start to finish, on servers of its own.

Starts a private redis-server (append-only, fsync always), the FastAPI app
(uvicorn), ``asyncfeeds worker`` processes for the high and low queues and
headless locust; samples the queues every second; after the load stops,
times the drain; then checks every delivery. ``--faults`` kills a worker
(kill -9, restarted) and the Redis (kill -9, restarted on its data) during the
load. Prints requests/s and p50/p95/p99 per endpoint, the queue depth over
time, the drain time, the fault figures and the exactness report; exits 1 if
any delivery is lost, doubled or miscounted.

    python bench/load/run.py --users 150 --duration 60 [--faults] [--json out.json]

Every option has an environment variable (``LOAD_USERS``...), which is how
``make load LOAD_USERS=200 LOAD_FAULTS=1`` passes them.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import sys
import tempfile
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import check
import feeds
import graph
import mix
import monitor
import redis.asyncio as redis_asyncio
import report
import servers

import asyncfeeds
from asyncfeeds import FanoutPriority
from asyncfeeds.fanout import create_queue


def options(argv: list[str] | None = None) -> argparse.Namespace:
    env = os.environ.get
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--users", type=int, default=int(env("LOAD_USERS", "150")),
                        help="concurrent locust users (LOAD_USERS, 150)")
    parser.add_argument("--spawn-rate", type=float, default=float(env("LOAD_SPAWN_RATE", "50")),
                        help="users started per second (LOAD_SPAWN_RATE, 50)")
    parser.add_argument("--duration", type=int, default=int(env("LOAD_DURATION", "60")),
                        help="seconds of load (LOAD_DURATION, 60)")
    parser.add_argument("--mix", default=env("LOAD_MIX", mix.DEFAULT),
                        help=f"request weights (LOAD_MIX, {mix.DEFAULT})")
    parser.add_argument("--wait", default=env("LOAD_WAIT", "0.5,1.5"),
                        help="pause of a user between requests, min,max seconds (LOAD_WAIT)")
    parser.add_argument("--popular-share", type=float,
                        default=float(env("LOAD_POPULAR_SHARE", "0.03")),
                        help="share of posts by the popular accounts (LOAD_POPULAR_SHARE, 0.03)")
    parser.add_argument("--graph", default=env("LOAD_GRAPH", graph.GraphSpec().to_env()),
                        help="users,follows,popular,seed of the follow graph (LOAD_GRAPH, "
                             "2000,50,3,17)")
    parser.add_argument("--workers", type=int, default=int(env("LOAD_WORKERS", "1")),
                        help="worker processes per priority queue (LOAD_WORKERS, 1)")
    parser.add_argument("--faults", action="store_true",
                        default=env("LOAD_FAULTS", "0") not in ("", "0", "no", "false"),
                        help="kill -9 a low worker and the Redis during the load (LOAD_FAULTS)")
    parser.add_argument("--worker-kill-at", type=float, default=None,
                        help="seconds into the load (default: a quarter of the duration)")
    parser.add_argument("--redis-kill-at", type=float, default=None,
                        help="seconds into the load (default: 55%% of the duration)")
    parser.add_argument("--down", type=float, default=float(env("LOAD_DOWN", "2")),
                        help="seconds a killed worker or Redis stays down (LOAD_DOWN, 2)")
    parser.add_argument("--drain-timeout", type=float, default=600)
    parser.add_argument("--json", type=Path, default=env("LOAD_JSON") or None,
                        help="also write the whole report as JSON to this file (LOAD_JSON)")
    parser.add_argument("--keep", action="store_true",
                        help="keep the run's folder (logs, locust CSVs, Redis data)")
    parser.add_argument("--quiet", action="store_true", help="no per-second queue lines")
    parser.add_argument("--prove-checker", action="store_true",
                        help="after the check, spoil one delivery of each kind and check again: "
                             "the second check must find exactly that")
    args = parser.parse_args(argv)
    try:
        mix.parse(args.mix)
        graph.GraphSpec.parse(args.graph)
    except ValueError as exc:
        parser.error(str(exc))
    return args


def say(text: str = "") -> None:
    print(text, flush=True)


class LoadRun:
    """The servers and figures of one run."""

    def __init__(self, args: argparse.Namespace, folder: Path) -> None:
        self.args = args
        self.folder = folder
        self.redis = servers.RedisServer(folder / "redis")
        self.app_port = servers.free_port()
        self.events = folder / "requests.csv"
        self.variables = {
            "LOAD_REDIS_URL": self.redis.url,
            "LOAD_GRAPH": args.graph,
            "LOAD_MIX": args.mix,
            "LOAD_WAIT": args.wait,
            "LOAD_POPULAR_SHARE": str(args.popular_share),
            "LOAD_EVENTS": str(self.events),
        }
        os.environ.update(self.variables)  # this process reads the same feeds and graph
        env = servers.child_env(self.variables)
        self.app = servers.app_server(self.app_port, folder, env)
        self.workers = {
            priority: [servers.worker(priority, i, folder, env) for i in range(args.workers)]
            for priority in ("high", "low")
        }
        self.locust = servers.locust(
            f"http://127.0.0.1:{self.app_port}", args.users, args.spawn_rate, args.duration,
            folder / "locust", folder, env,
        )
        self.faults: dict[str, Any] = {}

    def services(self) -> list[servers.Service]:
        return [self.locust, self.app, *(w for ws in self.workers.values() for w in ws)]

    def start(self) -> None:
        self.redis.start()
        for service in self.services()[1:]:
            service.start()
        servers.wait_for(self._app_ready, "the load app", 60, self.app.process, self.app.log)

    def _app_ready(self) -> bool:
        try:
            url = f"http://127.0.0.1:{self.app_port}/health"
            with urllib.request.urlopen(url, timeout=2) as answer:
                return bool(answer.status == 200)
        except OSError:
            return False

    def cpu(self) -> dict[str, float | None]:
        """CPU seconds used so far by the app, each worker and the Redis (since their last
        start: a restarted one counts from its restart)."""
        used = {s.name: servers.cpu_seconds(s.pid) for s in self.services()[1:]}
        assert self.redis.process is not None
        used["redis"] = servers.cpu_seconds(self.redis.process.pid)
        return {name: None if v is None else round(v, 1) for name, v in used.items()}

    def stop(self) -> None:
        for service in self.services():
            service.stop()
        self.redis.kill()

    async def inject_faults(self, began: float, manager: Any, redis: Any) -> None:
        """Kill a low worker and restart it; later kill the Redis and restart it on its data."""
        args = self.args
        worker_at = args.duration * 0.25 if args.worker_kill_at is None else args.worker_kill_at
        redis_at = args.duration * 0.55 if args.redis_kill_at is None else args.redis_kill_at
        await _sleep_until(began + worker_at)
        victim = self.workers["low"][0]
        low = manager.queue_names[FanoutPriority.LOW]
        for _ in range(200):  # kill it with a job in hand: wait up to 10 s for one
            if await monitor.running_jobs(redis, low):
                break
            await asyncio.sleep(0.05)
        pid = victim.pid
        killed = time.monotonic()
        victim.kill()
        running = await monitor.running_jobs(redis, low)
        say(f"-- fault: kill -9 worker low-0 (pid {pid}) at {killed - began:.1f} s, "
            f"{len(running)} low jobs marked running")
        await asyncio.sleep(args.down)
        victim.start()
        say(f"-- fault: worker low-0 restarted (pid {victim.pid}) at "
            f"{time.monotonic() - began:.1f} s")
        rerun = await monitor.until_finished(manager, redis, running, 300) if running else None
        self.faults["worker"] = {
            "killed_at_s": round(killed - began, 2),
            "down_s": args.down,
            "jobs_running_at_kill": len(running),
            "those_jobs_done_after_s": None if rerun is None
            else round(time.monotonic() - killed, 2),
        }
        if running:
            say(f"-- fault: the {len(running)} jobs running at the kill were all done "
                f"{self.faults['worker']['those_jobs_done_after_s']} s after it")

        await _sleep_until(began + redis_at)
        killed_wall, killed = time.time(), time.monotonic()
        self.redis.kill()
        say(f"-- fault: kill -9 redis-server at {killed - began:.1f} s")
        await asyncio.sleep(args.down)
        await asyncio.to_thread(self.redis.start)
        back_wall, back = time.time(), time.monotonic()
        say(f"-- fault: redis-server restarted, answering at {back - began:.1f} s "
            f"({back - killed:.1f} s after the kill)")
        self.faults["redis"] = {
            "killed_at_s": round(killed - began, 2),
            "answering_at_s": round(back - began, 2),
            "killed_epoch": killed_wall,
            "back_epoch": back_wall,
        }


async def _sleep_until(moment: float) -> None:
    await asyncio.sleep(max(0.0, moment - time.monotonic()))


async def measure(run: LoadRun) -> dict[str, Any]:
    """Drive the load, watch the queues, time the drain, check every delivery."""
    args = run.args
    feeds.configure()
    client = redis_asyncio.Redis.from_url(run.redis.url, socket_connect_timeout=1, socket_timeout=2)
    load_before = os.getloadavg()[0]
    began = time.monotonic()
    echo: Callable[[str], None] | None = None if args.quiet else say
    sampler = monitor.Sampler(feeds.manager, client, began, echo=echo)
    sampler.start()
    run.locust.start()
    faults = (asyncio.create_task(run.inject_faults(began, feeds.manager, client))
              if args.faults else None)
    assert run.locust.process is not None
    await asyncio.to_thread(run.locust.process.wait)
    stopped = time.monotonic()
    load_during = os.getloadavg()[0]
    say(f"-- load stopped at {stopped - began:.1f} s; waiting for the queues to drain")
    if faults is not None:
        await faults
    drained = await monitor.drain(feeds.manager, client, args.drain_timeout)
    drain_s = None if drained is None else round(time.monotonic() - stopped, 2)
    await sampler.stop()
    cpu = run.cpu()

    result = check.Exactness()
    feeds.manager.queue = await create_queue(run.redis.url)
    try:
        result.posts_retried, result.likes_retried = await check.complete_failed(client)
        if result.posts_retried:
            await monitor.drain(feeds.manager, client, args.drain_timeout)
        checking = time.monotonic()
        await check.check(client, result)
        check_s = round(time.monotonic() - checking, 1)
        final = await monitor.sample(feeds.manager, client, 0)
        assert final.queues is not None
        result.dead_letters = sum(q.dead for q in final.queues.values())
        result.left_in_queues = final.backlog or 0
        proof = await _prove_checker(client) if args.prove_checker else None
    finally:
        await feeds.manager.queue.aclose()
        feeds.manager.queue = None
        await client.aclose()
        await asyncfeeds.aclose()

    requests = report.read_requests(run.events)
    failed = Counter(str(r.status) for r in requests if not r.ok)
    # a 503 is the app's answer while its Redis is down: expected with --faults only
    bad = sum(n for status, n in failed.items() if not (args.faults and status == "503"))
    figures: dict[str, Any] = {
        "options": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "graph_edges": graph.current().edges(),
        "load_s": round(stopped - began, 1),
        "loadavg_1min": {"before": load_before, "at_load_end": load_during,
                         "cpus": os.cpu_count()},
        "cpu_s": cpu,
        "endpoints": report.endpoint_table(requests),
        "queue_samples": [s.as_dict() for s in sampler.samples],
        "peak_backlog": max((s.backlog or 0 for s in sampler.samples), default=0),
        "drain_s": drain_s,
        "check_s": check_s,
        "faults": run.faults,
        "failed_requests": dict(failed),
        "unexpected_failures": bad,
        "exactness": result.as_dict(),
        "checker_proof": proof,
        "clean": (result.clean and drain_s is not None and not bad
                  and (proof is None or proof["ok"])),
    }
    if "redis" in run.faults:
        redis_fault = run.faults["redis"]
        redis_fault |= report.outage(requests, redis_fault["killed_epoch"],
                                     redis_fault["back_epoch"])
        redis_fault["workers_reconnected_after_s"] = {
            w.name: report.reconnections(w.log) for ws in run.workers.values() for w in ws
        }
    return figures


async def _prove_checker(client: Any) -> dict[str, Any]:
    spoiled = await check.damage(client)
    found = check.damage_found(await check.check(client, check.Exactness()))
    return {"spoiled": spoiled, "found": found, "ok": found == spoiled}


def print_report(figures: dict[str, Any]) -> None:
    opts = figures["options"]
    say()
    faulty = ", with faults" if opts["faults"] else ""
    say(f"== load: {opts['users']} users for {opts['duration']} s, mix {opts['mix']}, "
        f"graph {opts['graph']} (users,follows,popular,seed; {figures['graph_edges']:,} "
        f"follows), {opts['workers']} worker(s) per queue{faulty}")
    avg = figures["loadavg_1min"]
    say(f"machine: {avg['cpus']} CPUs, 1-min load average {avg['before']:.1f} before, "
        f"{avg['at_load_end']:.1f} at the end of the load; CPU seconds used until drained: "
        + ", ".join(f"{name} {v}" for name, v in figures["cpu_s"].items()))
    rows = [(r["endpoint"], r["requests"], r["failures"], r["rps"], r["p50_ms"], r["p95_ms"],
             r["p99_ms"], r["max_ms"]) for r in figures["endpoints"]]
    say(report.table(rows, ("endpoint", "requests", "failures", "req/s", "p50 ms", "p95 ms",
                            "p99 ms", "max ms")))
    say(f"failed requests by status (0: no answer): {figures['failed_requests'] or 'none'}; "
        f"unexpected: {figures['unexpected_failures']}")
    say()
    say("== queue depth (queued+running per queue, every 5 s; live lines above every 1 s)")
    samples = figures["queue_samples"]
    shown = [s for i, s in enumerate(samples) if i % 5 == 0 or i == len(samples) - 1]
    qrows = []
    for s in shown:
        if s["queues"] is None:
            qrows.append((f"{s['at']:.0f} s", "-", "-", "-", "-", "Redis down"))
            continue
        q = s["queues"]
        qrows.append((f"{s['at']:.0f} s", f"{q['high']['queued']}+{q['high']['in_progress']}",
                      f"{q['low']['queued']}+{q['low']['in_progress']}",
                      sum(v["retrying"] for v in q.values()), sum(v["dead"] for v in q.values()),
                      f"{max(v['oldest_age'] for v in q.values()):.1f} s"))
    say(report.table(qrows, ("at", "high", "low", "retrying", "dead", "oldest")))
    say(f"peak backlog {figures['peak_backlog']:,} jobs; load stopped at {figures['load_s']} s; "
        f"queues empty {figures['drain_s']} s after the load stopped")
    faults = figures["faults"]
    if faults:
        say()
        say("== faults")
        if "worker" in faults:
            w = faults["worker"]
            say(f"worker low-0 kill -9 at {w['killed_at_s']} s, restarted {w['down_s']} s later: "
                f"{w['jobs_running_at_kill']} jobs were marked running; all done "
                f"{w['those_jobs_done_after_s']} s after the kill")
        if "redis" in faults:
            r = faults["redis"]
            say(f"redis-server kill -9 at {r['killed_at_s']} s, answering again at "
                f"{r['answering_at_s']} s: {r['failed']} failed requests "
                f"(status {r['statuses']}), answered within p50 {r['failed_within_ms_p50']} / "
                f"p99 {r['failed_within_ms_p99']} / max {r['failed_within_ms_max']} ms of the kill "
                f"or their start; first failure {r['first_failure_after_kill_s']} s "
                f"after the kill; last failure {r['last_failure_after_back_s']} s and first "
                f"success {r['first_success_after_back_s']} s after Redis answered; workers "
                f"back on their queues after losing it (s): {r['workers_reconnected_after_s']}")
    ex = figures["exactness"]
    say()
    say(f"== exactness ({figures['check_s']} s to read every feed back)")
    say(f"{ex['posts']:,} posts, {ex['likes']:,} likes; failed requests completed by a retry: "
        f"{ex['posts_retried']} posts, {ex['likes_retried']} likes")
    drows = []
    for name in ("flat", "aggregated", "user_feeds", "notifications"):
        d = ex[name]
        drows.append((name, d["feeds"], d["expected"], d["found"], d["lost"], d["doubled"],
                      d["unexpected"], d["at_max_length"]))
    say(report.table(drows, ("deliveries", "feeds", "expected", "found", "lost", "doubled",
                             "unexpected", "full feeds")))
    b = ex["badges"]
    say(f"badges: {b['feeds']:,} notification feeds, {b['unseen_total']:,} unseen; "
        f"unseen count != unseen flags in {b['unseen_mismatches']}, "
        f"unread in {b['unread_mismatches']}")
    say(f"dead letters {ex['dead_letters']}, jobs left in the queues {ex['left_in_queues']}")
    for name in ("flat", "aggregated", "user_feeds", "notifications", "badges"):
        for example in ex[name]["examples"]:
            say(f"  {name}: {example}")
    proof = figures["checker_proof"]
    if proof is not None:
        say(f"checker proof: spoiled {proof['spoiled']}, found {proof['found']}: "
            + ("the checker sees it" if proof["ok"] else "THE CHECKER MISSED IT"))
    say("RESULT: " + ("clean" if figures["clean"] else "NOT CLEAN"))


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    folder = Path(tempfile.mkdtemp(prefix="asyncfeeds-load-"))
    run = LoadRun(args, folder)
    say(f"-- run folder {folder}; redis-server on {run.redis.port}, app on {run.app_port}")
    try:
        run.start()
        figures = asyncio.run(measure(run))
    except BaseException:
        run.stop()
        say(f"-- the run broke off; its logs are in {folder}")
        raise
    run.stop()
    if not args.keep:
        shutil.rmtree(folder, ignore_errors=True)
    print_report(figures)
    if args.json:
        args.json.write_text(json.dumps(figures, indent=2))
    return 0 if figures["clean"] else 1


if __name__ == "__main__":
    sys.exit(main())
