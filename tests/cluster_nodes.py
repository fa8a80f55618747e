"""The private servers `make test` starts for fault tests: where they are, kill and restart.

services/redis.sh and services/cassandra.sh record the pid of every server they
start under .services/ of this checkout; tests kill only those, never the
shared servers, and bring them back with the same scripts.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
STATE = REPO / ".services"

_first = os.environ.get("CASSANDRA_CLUSTER_FIRST", "127.0.0.2")
_prefix, _last = _first.rsplit(".", 1)
CASSANDRA_CLUSTER = [f"{_prefix}.{int(_last) + i}" for i in range(2)]
"""The 2-node Cassandra cluster (replication factor 2 in the tests) on loopback aliases."""
SECURE_CASSANDRA = os.environ.get("CASSANDRA_SECURE_ADDRESS", "127.0.0.9")
"""The Cassandra node with PasswordAuthenticator and client TLS."""
SECURE_DIR = STATE / "cassandra-secure"
"""The secure node's throw-away CA and client certificate (ca.pem, client.pem, client.key)."""
REPLICA_CLUSTER_PORTS = [
    int(p)
    for p in os.environ.get(
        "ASYNCFEEDS_TEST_REPLICA_CLUSTER_PORTS", "7201 7202 7203 7204 7205 7206"
    ).split()
]
"""The Redis Cluster with replicas (3 masters, 3 replicas) on 127.0.0.1."""

_HOW = "start it with `make test`, or `bash services/{script} {command}` in this checkout"


def _running(pid: int, marker: str) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        status = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return False
    state = [line.split()[1:2] for line in status.splitlines() if line.startswith("State:")]
    return marker.encode() in cmdline and ["Z"] not in state


def cassandra_pid(address: str) -> int:
    """The pid of the cluster node on ``address`` that services/cassandra.sh started."""
    state = STATE / f"cassandra-cluster-{address}.state"
    values = dict(
        line.split("=", 1) for line in state.read_text().splitlines() if "=" in line
    ) if state.exists() else {}
    pid = int(values.get("pid", 0))
    if not pid or not _running(pid, "CassandraDaemon"):
        raise AssertionError(
            f"no Cassandra cluster node of this checkout runs on {address}: "
            + _HOW.format(script="cassandra.sh", command="start-cluster 2")
        )
    return pid


def redis_pid(port: int) -> int:
    """The pid of the Redis on ``port`` that services/redis.sh started."""
    file = STATE / "redis" / f"redis-{port}.pid"
    pid = int(file.read_text().strip()) if file.exists() else 0
    if not pid or not _running(pid, f":{port}"):
        raise AssertionError(
            f"no Redis of this checkout runs on port {port}: "
            + _HOW.format(script="redis.sh", command="start")
        )
    return pid


def kill(pid: int, marker: str) -> None:
    """``kill -9`` a server and wait until it is gone."""
    os.kill(pid, signal.SIGKILL)
    deadline = time.monotonic() + 10
    while _running(pid, marker):
        if time.monotonic() > deadline:
            raise AssertionError(f"pid {pid} still runs 10 s after SIGKILL")
        time.sleep(0.05)


def restart_cassandra_cluster() -> None:
    """Start the cluster nodes that are down again, on their own data (waits for CQL)."""
    _script("cassandra.sh", "start-cluster", "2")


def restart_redis() -> None:
    """Start the Redis servers that are down again; cluster nodes rejoin (waits for cluster ok)."""
    _script("redis.sh", "start")


def _script(name: str, *args: str) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "services" / name), *args],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    if done.returncode != 0:
        command = " ".join(args)
        raise AssertionError(f"services/{name} {command} failed:\n{done.stdout}{done.stderr}")
