"""The ``asyncfeeds`` console script, run for real in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest
from conftest import BACKENDS, CASSANDRA_KEYSPACE, CASSANDRA_PORT, REDIS_CLUSTER_URL, REDIS_URL

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


@pytest.mark.parametrize("name", BACKENDS)
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
        (["worker", "--manager", "asyncfeeds:Feed", "--priority", "urgent"], "'--priority'"),
        (["setup"], "Missing option '--feeds'"),
        (["setup", "--feeds", "os:path"], "is not a feed class"),
        (["setup", "--feeds", "asyncfeeds:MemoryFeed", "json:loads"], "is not a feed class"),
    ],
)
def test_bad_arguments_give_a_usage_error(args, message):
    result = run_cli(*args)
    assert result.returncode == 2, (result.stdout, result.stderr)
    assert "Usage: asyncfeeds" in result.stderr
    assert message in result.stderr
    assert "Traceback" not in result.stderr


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

    async def get_user_follower_ids(self, user_id):
        return {FanoutPriority.HIGH: [2, 3], FanoutPriority.LOW: [4]}


manager = PinManager()
PIN = Activity(actor=1, verb=Pin, object=7, time=datetime(2024, 5, 1, tzinfo=UTC))


async def wait_for(user_ids):
    until = time.monotonic() + 60
    while not all([await PinFeed(u).contains(PIN) for u in user_ids]):
        if time.monotonic() > until:
            raise SystemExit(f"never fanned out to {user_ids}")
        await asyncio.sleep(0.05)


async def publish():
    queue = await create_queue()
    try:
        await PinManager(queue=queue).add_user_activity(1, PIN)
        await wait_for([2, 3])
        print("high done, low waiting:", not await PinFeed(4).contains(PIN))
    finally:
        await queue.close()
        await asyncfeeds.aclose()


async def finish():
    try:
        await wait_for([4])
        print("low done")
    finally:
        await PinFeed.flush()
        await UserPinFeed.flush()
        await asyncfeeds.aclose()
"""


def _worker_command_serves_exactly_its_priority_queue(tmp_path):
    """arq needs Redis: the test exists when the redis backend is tested."""
    (tmp_path / "cliapp.py").write_text(WORKER_APP)
    env = {**os.environ, "ASYNCFEEDS_REDIS_URL": REDIS_URL, "CLI_TEST_RUN": uuid.uuid4().hex[:10]}
    env.pop("ASYNCFEEDS_QUEUE_URL", None)

    def start_worker(priority: str) -> subprocess.Popen:
        return subprocess.Popen(
            [str(SCRIPT), "worker", "--manager", "cliapp:manager", "--priority", priority],
            cwd=tmp_path,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def step(phase: str) -> str:
        result = subprocess.run(
            [sys.executable, "-c", f"import asyncio, cliapp; asyncio.run(cliapp.{phase}())"],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    workers = [start_worker("high")]
    try:
        assert "high done, low waiting: True" in step("publish")
        workers.append(start_worker("low"))
        assert "low done" in step("finish")
    finally:
        for worker in workers:
            worker.terminate()
    for worker in workers:
        _, stderr = worker.communicate(timeout=60)
        assert "Traceback" not in stderr, stderr


if "redis" in BACKENDS:
    test_worker_command_serves_exactly_its_priority_queue = (
        _worker_command_serves_exactly_its_priority_queue
    )
