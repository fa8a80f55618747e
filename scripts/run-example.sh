#!/usr/bin/env bash
# `make run-example`: the FastAPI example (examples/pinterest) without Docker, as the
# `app` profile of docker-compose.yml runs it: Redis, the web app on
# http://127.0.0.1:${PORT:-8000} and one high and one low priority fanout worker.
# Ctrl-C stops the app and the workers; Redis keeps running (`bash services/redis.sh
# stop` stops it if this script started it).
#
#   PINTEREST_REDIS_URL   use this Redis and start none; by default the standalone Redis
#                         of services/redis.sh (127.0.0.1:${ASYNCFEEDS_TEST_REDIS_PORT:-6390}),
#                         started if nothing answers there
#   PINTEREST_NAMESPACE   key and queue prefix (default pinterest); PORT, VENV (.venv)
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

bin="${VENV:-.venv}/bin"
port="${PORT:-8000}"
if [[ -z "${PINTEREST_REDIS_URL:-}" ]]; then
    bash services/redis.sh start-standalone
    export PINTEREST_REDIS_URL="redis://127.0.0.1:${ASYNCFEEDS_TEST_REDIS_PORT:-6390}/0"
fi
export PINTEREST_BACKEND=redis PINTEREST_FANOUT=arq

pids=()
stop() {
    trap - INT TERM EXIT
    echo "run-example: stopping the web app and the workers"
    kill -TERM "${pids[@]}" 2>/dev/null || true
    wait "${pids[@]}" 2>/dev/null || true
}
trap stop INT TERM EXIT

for priority in high low; do
    "$bin/asyncfeeds" worker --manager examples.pinterest.feeds:PinManager \
        --priority "$priority" --config examples.pinterest.feeds:configure &
    pids+=("$!")
done
"$bin/uvicorn" examples.pinterest.app:app --host 127.0.0.1 --port "$port" &
pids+=("$!")
echo "run-example: API docs at http://127.0.0.1:$port/docs; Ctrl-C stops everything"
wait -n "${pids[@]}" # one of them ended (or could not start): stop the others
