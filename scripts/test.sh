#!/usr/bin/env bash
# The whole suite against real servers: starts Redis (standalone, a 3-node
# cluster and a 6-node cluster with replicas for fault tests) and Cassandra
# (the single node, a 2-node cluster on 127.0.0.2-3 for fault tests and a node
# with password auth and TLS on 127.0.0.9) where nothing answers yet, runs
# ruff, mypy and pytest, then stops only what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stop_services() {
    bash services/cassandra.sh stop-secure || true
    bash services/cassandra.sh stop-cluster || true
    bash services/cassandra.sh stop || true
    bash services/redis.sh stop || true
}
trap stop_services EXIT

bash services/redis.sh start
# The Cassandra nodes start side by side; each command waits for its CQL port.
bash services/cassandra.sh prepare
pids=()
bash services/cassandra.sh start & pids+=("$!")
bash services/cassandra.sh start-cluster 2 & pids+=("$!")
bash services/cassandra.sh start-secure & pids+=("$!")
for pid in "${pids[@]}"; do wait "$pid"; done

.venv/bin/ruff check asyncfeeds tests examples
.venv/bin/mypy --strict asyncfeeds
# Coverage of asyncfeeds/ by this process (worker and CLI subprocesses are not counted).
.venv/bin/python -m pytest --cov --cov-report=term "$@"
