"""The ``asyncfeeds`` console script, run for real in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
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


def test_demo_on_an_unreachable_redis_names_host_and_port():
    result = run_cli(
        "demo", "--backend", "redis", env={"ASYNCFEEDS_REDIS_URL": "redis://127.0.0.1:1/0"}
    )
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
