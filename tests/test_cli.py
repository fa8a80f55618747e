"""The ``asyncfeeds`` console script, run for real in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from helpers import (
    ALL_BACKENDS,
    CASSANDRA_KEYSPACE,
    CASSANDRA_PORT,
    REDIS_CLUSTER_URL,
    REDIS_URL,
    backends,
)

SCRIPT = Path(sys.executable).parent / "asyncfeeds"


def run_cli(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None):
    """Run the installed console script; the completed process (text output)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("ASYNCFEEDS_")}
    return subprocess.run(
        [str(SCRIPT), *args],
        capture_output=True,
        text=True,
        env={**base, **(env or {})},
        cwd=cwd,
        timeout=300,
    )


def assert_three_feeds(stdout: str) -> None:
    assert "alice's flat feed" in stdout
    assert "alice's aggregated feed" in stdout
    assert "alice's notification feed" in stdout
    flat = stdout.split("alice's flat feed", 1)[1].split("alice's aggregated feed", 1)[0]
    assert " pinned '" in flat and " ago" in flat
    aggregated = stdout.split("alice's aggregated feed", 1)[1].split("alice's notification", 1)[0]
    assert " pinned " in aggregated
    notifications = stdout.split("alice's notification feed", 1)[1]
    assert "(unread) " in notifications
    assert "(unread) carol and dave liked your pin 'Ramen' · 5 min ago" in notifications
    assert "started following you" in notifications
    assert "0 unseen" in notifications


def test_demo_prints_the_three_feeds_with_a_progress_bar():
    result = run_cli("demo")
    assert result.returncode == 0, result.stderr
    assert_three_feeds(result.stdout)
    assert "on the memory backend: 30 users" in result.stdout
    assert "fanout" in result.stderr and "100%" in result.stderr


def test_module_entry_point_runs_the_same_cli():
    result = subprocess.run(
        [sys.executable, "-m", "asyncfeeds.cli", "demo", "--users", "5", "--no-progress"],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    assert_three_feeds(result.stdout)
    assert "fanout" not in result.stderr


def _backend_env(name: str) -> tuple[str, dict[str, str]]:
    if name == "redis":
        return "redis", {"ASYNCFEEDS_REDIS_URL": REDIS_URL}
    if name == "redis-cluster":
        return "redis", {"ASYNCFEEDS_REDIS_URL": REDIS_CLUSTER_URL}
    if name == "cassandra":
        return "cassandra", {
            "ASYNCFEEDS_CASSANDRA_HOSTS": "127.0.0.1",
            "ASYNCFEEDS_CASSANDRA_PORT": str(CASSANDRA_PORT),
            "ASYNCFEEDS_CASSANDRA_KEYSPACE": CASSANDRA_KEYSPACE,
        }
    return "memory", {}


@pytest.mark.parametrize("name", backends(*ALL_BACKENDS))
def test_demo_runs_on_every_backend_and_twice_gives_the_same_feeds(name):
    backend, env = _backend_env(name)
    first = run_cli("demo", "--backend", backend, "--users", "6", "--no-progress", env=env)
    assert first.returncode == 0, first.stderr
    assert_three_feeds(first.stdout)
    assert f"on the {backend} backend" in first.stdout
    second = run_cli("demo", "--backend", backend, "--users", "6", "--no-progress", env=env)
    assert second.returncode == 0, second.stderr
    heading = "alice's flat feed"
    assert (
        second.stdout.split(heading)[1].split("\n")[0]
        == first.stdout.split(heading)[1].split("\n")[0]
    ), "a re-run must start from clean feeds, not accumulate"


@pytest.mark.parametrize(
    ("backend", "env"),
    [
        ("redis", {"ASYNCFEEDS_REDIS_URL": "redis://127.0.0.1:1/0"}),
        ("cassandra", {"ASYNCFEEDS_CASSANDRA_PORT": "1"}),
    ],
)
def test_demo_on_an_unreachable_server_names_host_and_port(backend, env):
    result = run_cli("demo", "--backend", backend, env=env)
    assert result.returncode == 1
    assert "127.0.0.1:1" in result.stderr
    assert "Traceback" not in result.stderr


def assert_one_line_error(result: subprocess.CompletedProcess, message: str, code: int = 1):
    """The command failed with ``code`` and said why in one line on stderr, no traceback."""
    assert result.returncode == code, (result.stdout, result.stderr)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("Error: ") and message in lines[0], result.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["demo", "--users", "2"], "Invalid value for '--users'"),
        (["demo", "--users", "many"], "Invalid value for '--users'"),
        (["demo", "--backend", "mongodb"], "Invalid value for '--backend'"),
        (["demo", "--colour"], "--colour"),
        (["fly"], "No such command 'fly'"),
        (["worker", "--priority", "high"], "Missing option '--manager'"),
        (["worker", "--manager", "nocolon", "--priority", "high"], "module:attribute"),
        (["worker", "--manager", "no_such_module_xyz:m", "--priority", "high"], "cannot import"),
        (["worker", "--manager", "asyncfeeds:nothing_here", "--priority", "high"], "no attribute"),
        (["worker", "--manager", "asyncfeeds:Feed", "--priority", "high"], "not an asyncfeeds"),
        (["worker", "--priority", "urgent", "--manager", "asyncfeeds:Manager"], "'--priority'"),
        (["worker", "--manager", "asyncfeeds.demo:DemoManager", "--priority", "high"],
         "cannot instantiate manager"),
        (["worker", "--manager", "asyncfeeds:Manager", "--priority", "high", "--config",
          "asyncfeeds:nothing"], "Invalid value for '--config'"),
        (["status", "--manager", "json:loads"], "is not an asyncfeeds Manager"),
        (["requeue-dead"], "Missing option '--manager'"),
        (["setup"], "Missing option '--feeds'"),
        (["setup", "--feeds", "os:path"], "is not a feed class"),
        (["setup", "--feeds", "asyncfeeds:MemoryFeed", "json:loads"], "is not a feed class"),
    ],
)
def test_bad_arguments_are_one_line_usage_errors(args, message):
    result = run_cli(*args)
    assert_one_line_error(result, message, code=2)
    assert "--help" in result.stderr


def test_a_module_failing_on_import_is_a_one_line_error(tmp_path):
    (tmp_path / "broken_app.py").write_text("raise RuntimeError('settings missing')\n")
    result = run_cli("worker", "--manager", "broken_app:manager", "--priority", "high",
                     cwd=tmp_path)
    assert_one_line_error(result, "RuntimeError: settings missing", code=2)


@pytest.mark.parametrize(
    ("args", "env", "message"),
    [
        (["demo", "--backend", "redis"], {"ASYNCFEEDS_REDIS_URL": "nonsense"},
         "a Redis URL like redis://host:port/db is needed, got 'nonsense'"),
        (["demo", "--backend", "cassandra"], {"ASYNCFEEDS_CASSANDRA_PORT": "abc"},
         "ASYNCFEEDS_CASSANDRA_* variables) has an invalid port 'abc'"),
        (["worker", "--manager", "asyncfeeds:Manager", "--priority", "high"],
         {"ASYNCFEEDS_REDIS_URL": "redis+cluster://127.0.0.1:7101"},
         "is a Redis Cluster (redis+cluster://127.0.0.1:7101); set ASYNCFEEDS_QUEUE_URL"),
        (["worker", "--manager", "asyncfeeds:Manager", "--priority", "high"],
         {"ASYNCFEEDS_QUEUE_URL": "http://127.0.0.1:6390"}, "needs a standalone Redis URL"),
        (["worker", "--manager", "asyncfeeds:Manager", "--priority", "low"],
         {"ASYNCFEEDS_QUEUE_URL": "redis://127.0.0.1:port/0"}, "bad fanout queue URL"),
        (["worker", "--manager", "asyncfeeds:Manager", "--priority", "low"],
         {"ASYNCFEEDS_QUEUE_URL": "redis://127.0.0.1:1/0"}, "Redis at 127.0.0.1:1/0"),
        (["worker", "--manager", "asyncfeeds:Manager", "--priority", "low", "--check"],
         {"ASYNCFEEDS_QUEUE_URL": "redis://127.0.0.1:1/0"}, "Redis at 127.0.0.1:1/0"),
        (["status", "--manager", "asyncfeeds:Manager"],
         {"ASYNCFEEDS_REDIS_URL": "redis://127.0.0.1:1/0"}, "Redis at 127.0.0.1:1/0"),
        (["requeue-dead", "--manager", "asyncfeeds:Manager"],
         {"ASYNCFEEDS_QUEUE_URL": "redis://127.0.0.1:1/0"}, "Redis at 127.0.0.1:1/0"),
    ],
)
def test_bad_settings_and_missing_servers_are_one_line_errors(args, env, message):
    assert_one_line_error(run_cli(*args, env=env), message)


def test_a_missing_extra_is_a_one_line_error():
    code = (
        "import sys; sys.modules['acsylla'] = None; from asyncfeeds.cli import main; "
        "main(['demo', '--backend', 'cassandra'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert_one_line_error(result, "pip install 'asyncfeeds[cassandra]'")


def test_demo_draws_a_text_progress_bar_without_tqdm():
    code = (
        "import sys; sys.modules['tqdm'] = None; from asyncfeeds.cli import main; "
        "main(['demo', '--users', '6'])"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                            timeout=120)
    assert result.returncode == 0, result.stderr
    assert_three_feeds(result.stdout)
    final = result.stderr.strip().splitlines()[-1]  # text mode reads "\r" as a line end
    assert final.startswith("fanout: 100% ") and final.endswith(" feeds"), result.stderr


def test_setup_imports_feed_classes_from_the_current_directory(tmp_path):
    (tmp_path / "myfeeds.py").write_text(
        textwrap.dedent(
            """
            from asyncfeeds import MemoryAggregatedFeed, MemoryFeed

            class PinFeed(MemoryFeed):
                key_format = "pins:{user_id}"

            class AggregatedPinFeed(MemoryAggregatedFeed):
                key_format = "aggregated_pins:{user_id}"
            """
        )
    )
    result = run_cli(
        "setup", "--feeds", "myfeeds:PinFeed", "myfeeds:AggregatedPinFeed", cwd=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "set up 2 feed classes: PinFeed, AggregatedPinFeed" in result.stdout
    repeated = run_cli(
        "setup", "--feeds", "myfeeds:PinFeed", "--feeds", "myfeeds:PinFeed", cwd=tmp_path
    )
    assert repeated.returncode == 0, repeated.stderr


def test_help_lists_the_commands():
    result = run_cli("--help")
    assert result.returncode == 0
    for command in ("demo", "worker", "setup"):
        assert command in result.stdout


WORKER_APP = """
import asyncio, os, sys, time
from datetime import UTC, datetime

import asyncfeeds
from asyncfeeds import Activity, FanoutPriority, Manager, RedisFeed, Verb, register_verb
from asyncfeeds.fanout import create_queue

RUN = os.environ["CLI_TEST_RUN"]


def configure_feeds():
    # The app's own settings: ASYNCFEEDS_REDIS_URL names a Redis that is not there.
    asyncfeeds.configure(redis={"default": os.environ["CLI_TEST_REDIS"]})


async def configure_feeds_in_the_loop():
    configure_feeds()


@register_verb
class Pin(Verb):
    id = 5
    infinitive = "pin"
    past_tense = "pinned"


class PinFeed(RedisFeed):
    key_format = f"cli{RUN}:feed:{{user_id}}"
    activity_key_prefix = f"cli{RUN}:activity"


class UserPinFeed(RedisFeed):
    key_format = f"cli{RUN}:user:{{user_id}}"
    activity_key_prefix = f"cli{RUN}:activity"


class PinManager(Manager):
    feed_classes = {"normal": PinFeed}
    user_feed_class = UserPinFeed
    queue_names = {FanoutPriority.HIGH: f"cli{RUN}:high", FanoutPriority.LOW: f"cli{RUN}:low"}
    dead_letter_key = f"cli{RUN}:dead"

    async def get_user_follower_ids(self, user_id):
        return {FanoutPriority.HIGH: [2, 3], FanoutPriority.LOW: [4]}


manager = PinManager()
# An object of this run only, so no job id of an earlier run can match.
PIN = Activity(actor=1, verb=Pin, object=int(RUN, 16) % 10**9,
               time=datetime(2024, 5, 1, tzinfo=UTC))


async def wait_for(user_ids):
    until = time.monotonic() + 60
    while not all([await PinFeed(u).contains(PIN) for u in user_ids]):
        if time.monotonic() > until:
            raise SystemExit(f"never fanned out to {user_ids}")
        await asyncio.sleep(0.05)


async def publish():
    configure_feeds()
    queue = await create_queue()
    try:
        manager.queue = queue   # set after construction, as in a FastAPI lifespan
        await manager.add_user_activity(1, PIN)
        await wait_for([2, 3])
        print("high done, low waiting:", not await PinFeed(4).contains(PIN))
    finally:
        await queue.aclose()
        await asyncfeeds.aclose()


async def finish():
    configure_feeds()
    try:
        await wait_for([4])
        print("low done")
    finally:
        queue = await create_queue()
        for name in (f"cli{RUN}:high", f"cli{RUN}:low"):
            for job_id in await queue.zrange(name, 0, -1):
                await queue.delete(b"arq:job:" + job_id, b"arq:retry:" + job_id)
        await queue.delete(f"cli{RUN}:high", f"cli{RUN}:low", f"cli{RUN}:dead")
        await queue.aclose()
        await PinFeed.flush()
        await UserPinFeed.flush()
        await asyncfeeds.aclose()
"""

ARQ_SETTINGS = """
from asyncfeeds.worker import worker_settings
from cliapp import configure_feeds, manager

configure_feeds()
WorkerSettings = worker_settings(manager, "low")
"""


@pytest.mark.redis
def test_worker_command_runs_the_apps_configuration_and_logs_its_jobs(tmp_path):
    """``asyncfeeds worker --config`` for the high queue, arq's own CLI for the low one."""
    (tmp_path / "cliapp.py").write_text(WORKER_APP)
    (tmp_path / "arqapp.py").write_text(ARQ_SETTINGS)
    env = {"ASYNCFEEDS_REDIS_URL": "redis://127.0.0.1:1/0", "CLI_TEST_REDIS": REDIS_URL,
           "CLI_TEST_RUN": uuid.uuid4().hex[:10]}
    worker_args = ["worker", "--manager", "cliapp:manager", "--priority", "high"]

    def step(phase: str) -> str:
        code = f"import asyncio, cliapp; asyncio.run(cliapp.{phase}())"
        result = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, text=True,
                                env={**os.environ, **env}, capture_output=True, timeout=120)
        assert result.returncode == 0, result.stderr
        return result.stdout

    # Without the app's configuration the worker looks for its queue where nothing is.
    unconfigured = run_cli(*worker_args, "--burst", env=env, cwd=tmp_path)
    assert_one_line_error(unconfigured, "fanout queue's Redis at 127.0.0.1:1/0")

    log = tmp_path / "worker.log"
    with log.open("w") as out:
        worker = subprocess.Popen(
            [str(SCRIPT), *worker_args, "--config", "cliapp:configure_feeds_in_the_loop"],
            cwd=tmp_path, env={**os.environ, **env}, stdout=out, stderr=out, text=True,
        )
    try:
        assert "high done, low waiting: True" in step("publish")
        check = run_cli(*worker_args, "--config", "cliapp:configure_feeds", "--check", env=env,
                        cwd=tmp_path)
        assert check.returncode == 0, check.stderr
        assert check.stdout.startswith("healthy: ") and "j_complete=" in check.stdout
        arq = subprocess.run(
            [str(SCRIPT.parent / "arq"), "arqapp.WorkerSettings", "--burst"], cwd=tmp_path,
            env={**os.environ, **env}, capture_output=True, text=True, timeout=120,
        )
        assert arq.returncode == 0, arq.stderr
        assert "low done" in step("finish")
    finally:
        worker.terminate()
        worker.wait(timeout=60)
    output = log.read_text()
    assert worker.returncode == 0, output
    lines = output.splitlines()
    assert "asyncfeeds worker" in lines[0] and "started: manager cliapp:PinManager" in lines[0]
    jobs = [line for line in lines if "asyncfeeds_fanout" in line]
    assert len(jobs) == 1 and " INFO " in jobs[0], output
    assert "try 1: add 2 PinFeed feeds (1 activities), 2 written in" in jobs[0]
    assert "asyncfeeds worker stopped (SIGTERM): 1 jobs done, 0 retried, 0 dead" in lines[-1]
    assert "Traceback" not in output
    gone = run_cli(*worker_args, "--config", "cliapp:configure_feeds", "--check", env=env,
                   cwd=tmp_path)
    assert_one_line_error(gone, f"no worker of cli{env['CLI_TEST_RUN']}:high recorded")

