#!/usr/bin/env bash
# The whole suite against real servers: starts Redis (standalone and a 3-node
# cluster) and Cassandra on loopback where nothing answers yet, runs ruff and
# pytest, then stops only what it started.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

stop_services() {
    bash services/cassandra.sh stop || true
    bash services/redis.sh stop || true
}
trap stop_services EXIT

bash services/redis.sh start
bash services/cassandra.sh start

.venv/bin/ruff check asyncfeeds tests examples
.venv/bin/python -m pytest "$@"
