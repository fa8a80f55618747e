#!/usr/bin/env bash
# asyncfeeds vs Stream Framework on ONE private redis-server, interleaved A B A B.
#
#   bash bench/run.sh                      # or: make bench (issue 11's run)
#   REPEAT=1 SIZES=1000 bash bench/run.sh  # a quick smoke
#
# Starts redis-server on 127.0.0.1:$PORT (6391; --save "" --appendonly no),
# pinned like the peer's run.sh, and for every workload step and repetition runs
# Stream Framework, then asyncfeeds, each in a fresh process (bench/af_bench.py
# with --repeat 1; every repetition starts with FLUSHDB). Then, if a Cassandra
# answers on 127.0.0.1:9042, the Cassandra fanout row (bench/cassandra_fanout.py).
# Then merges each library's repetitions and prints issue 11's target table and the
# ratio table (bench/compare.py).
#
# Env: PORT (6391)  PIN cross|same|none (cross)  REPEAT (3)  SIZES W1 follower
# counts (1000,10000,100000)  WORKLOADS (W1,W1Q,W2,W3,W4,W5,MEM,RET,CASS)
# RET_REPEAT repetitions of the retention step (1: its memory numbers repeat within ~2%;
# Stream Framework takes ~1.5 min a run)  W5_REPEAT repetitions of W5 (1: it checks the
# box, not a library; ~2 min a library)  WORKER_CPUS taskset list of the W1Q worker
# processes (all)  CASSANDRA_FOLLOWERS (10000)  PEER_DIR (../shared/bench/peer
# beside the repo)  SF_VENV (the peer's .venv if built, else one built in
# ~/.cache/asyncfeeds/sf-bench)
# OUT_DIR (bench/results)  AF_PYTHON (.venv/bin/python).
# Needs redis-server, redis-cli, redis-benchmark (apt-get install redis-server redis-tools).
set -euo pipefail
BENCH=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
REPO=$(dirname "$BENCH")
cd "$REPO"

PORT=${PORT:-6391}
PIN=${PIN:-cross}
REPEAT=${REPEAT:-3}
SIZES=${SIZES:-1000,10000,100000}
WORKLOADS=${WORKLOADS:-W1,W1Q,W2,W3,W4,W5,MEM,RET,CASS}
RET_REPEAT=${RET_REPEAT:-1}
W5_REPEAT=${W5_REPEAT:-1}
WORKER_CPUS=${WORKER_CPUS:-all}
CASSANDRA_FOLLOWERS=${CASSANDRA_FOLLOWERS:-10000}
if [ -z "${PEER_DIR:-}" ]; then  # shared/ beside the repo (or beside a worktrees folder)
    for up in .. ../..; do
        PEER_DIR=$(cd "$REPO/$up" && pwd)/shared/bench/peer
        [ -f "$PEER_DIR/harness.py" ] && break
    done
fi
OUT_DIR=${OUT_DIR:-$BENCH/results}
AF_PYTHON=${AF_PYTHON:-$REPO/.venv/bin/python}

[ -f "$PEER_DIR/harness.py" ] || { echo "no peer harness in $PEER_DIR (set PEER_DIR)" >&2; exit 1; }
[ -x "$AF_PYTHON" ] || { echo "missing $AF_PYTHON: run make install" >&2; exit 1; }
for b in redis-server redis-cli redis-benchmark; do
    command -v "$b" >/dev/null || { echo "missing $b: apt-get install -y redis-server redis-tools" >&2; exit 1; }
done

# -- the Stream Framework venv: the peer's own if it was built, else a copy of the peer's
#    setup.sh builds one in a cache dir (shared/ is read-only; never written from here)
if [ -z "${SF_VENV:-}" ]; then
    if [ -x "$PEER_DIR/.venv/bin/python" ]; then
        SF_VENV=$PEER_DIR/.venv
    else
        SF_HOME=${XDG_CACHE_HOME:-$HOME/.cache}/asyncfeeds/sf-bench
        if [ ! -x "$SF_HOME/.venv/bin/python" ] \
            || ! cmp -s "$PEER_DIR/requirements-sf.txt" "$SF_HOME/requirements-sf.txt" \
            || ! cmp -s "$PEER_DIR/setup.sh" "$SF_HOME/setup.sh"; then
            mkdir -p "$SF_HOME"
            cp "$PEER_DIR/setup.sh" "$PEER_DIR/requirements-sf.txt" "$SF_HOME/"
            echo "building the Stream Framework venv in $SF_HOME (peer setup.sh)" >&2
            bash "$SF_HOME/setup.sh" >"$SF_HOME/setup.log" 2>&1 \
                || { tail -20 "$SF_HOME/setup.log" >&2; exit 1; }
        fi
        SF_VENV=$SF_HOME/.venv
    fi
fi
SF_PYTHON=$SF_VENV/bin/python

# -- CPU placement, as the peer's run.sh
NCPU=$(nproc)
CLIENT_PIN=(); SERVER_PIN=()
if command -v taskset >/dev/null && [ "$NCPU" -ge 2 ]; then
    case "$PIN" in
        cross) SERVER_PIN=(taskset -c $((NCPU - 1))); CLIENT_PIN=(taskset -c 0) ;;
        same)  SERVER_PIN=(taskset -c 0); CLIENT_PIN=(taskset -c 0) ;;
        none)  ;;
        *) echo "PIN must be cross|same|none" >&2; exit 1 ;;
    esac
else
    PIN=none
fi
export SFBENCH_PIN=$PIN
export PYTHONDONTWRITEBYTECODE=1  # no __pycache__ inside the read-only peer folder

# -- one private redis-server, stopped by its pid on exit
if redis-cli -p "$PORT" ping >/dev/null 2>&1; then
    echo "something already listens on $PORT; refusing (the benchmark FLUSHDBs)" >&2; exit 1
fi
RUNDIR=$(mktemp -d)
PIDFILE=$RUNDIR/redis-$PORT.pid
"${SERVER_PIN[@]}" redis-server --port "$PORT" --bind 127.0.0.1 --save "" --appendonly no \
    --daemonize yes --pidfile "$PIDFILE" --logfile "$RUNDIR/redis-$PORT.log"
for _ in $(seq 50); do [ -s "$PIDFILE" ] && redis-cli -p "$PORT" ping >/dev/null 2>&1 && break; sleep 0.1; done
REDIS_PID=$(cat "$PIDFILE")
stop_redis() {
    kill "$REDIS_PID" 2>/dev/null || return 0
    for _ in $(seq 100); do kill -0 "$REDIS_PID" 2>/dev/null || return 0; sleep 0.1; done
}
trap 'stop_redis; rm -rf "$RUNDIR"' EXIT
echo "redis-server pid $REDIS_PID on 127.0.0.1:$PORT, PIN=$PIN, SF venv $SF_VENV" >&2

STAMP=$(date -u +%Y%m%dT%H%MZ)
LOCAL=$BENCH/results/local/$STAMP
mkdir -p "$LOCAL" "$OUT_DIR"

bench() {  # driver, out file, af_bench args...
    local driver=$1 out=$2 python=$AF_PYTHON
    shift 2
    [ "$driver" = stream_framework ] && python=$SF_PYTHON
    "${CLIENT_PIN[@]}" "$python" "$BENCH/af_bench.py" --driver "$driver" --peer-dir "$PEER_DIR" \
        --port "$PORT" --worker-cpus "$WORKER_CPUS" -q --out "$out" "$@" >/dev/null
}

# probes once per library, then every step A B A B
for driver in stream_framework asyncfeeds; do
    bench "$driver" "$LOCAL/$driver-probes.json" --only "" --probes
done
STEPS=()
IFS=, read -ra ONLY <<< "$WORKLOADS"
CASS=no
for w in "${ONLY[@]}"; do
    if [ "$w" = CASS ]; then
        CASS=yes
    elif [ "$w" = W1 ]; then
        IFS=, read -ra NS <<< "$SIZES"
        for n in "${NS[@]}"; do STEPS+=("W1:$n"); done
    else
        STEPS+=("$w")
    fi
done
FAILED=()
for step in "${STEPS[@]}"; do
    w=${step%%:*}; n=${step#*:}; [ "$n" = "$step" ] && n=1000
    reps=$REPEAT; [ "$w" = RET ] && reps=$RET_REPEAT; [ "$w" = W5 ] && reps=$W5_REPEAT
    for rep in $(seq 0 $((reps - 1))); do
        for driver in stream_framework asyncfeeds; do
            out="$LOCAL/$driver-${step/:/-}-rep$rep.json"
            if bench "$driver" "$out" --only "$w" --fanout-sizes "$n" --repeat 1 --first-rep "$rep"
            then
                "$AF_PYTHON" "$BENCH/compare.py" show "$out" >&2
            else  # one failed step must not cost the rest of the run: its rows say "not run"
                echo "FAILED: $driver $step rep $rep (see the error above)" >&2
                FAILED+=("$driver $step rep $rep"); rm -f "$out"
            fi
        done
    done
done

NAME=$OUT_DIR/$STAMP-pin-$PIN
# -- the Cassandra row: absolute (no SF), on the test node if one answers
CASS_JSON=$NAME-cassandra.json
if [ "$CASS" = yes ]; then
    if timeout 3 bash -c '</dev/tcp/127.0.0.1/9042' 2>/dev/null; then
        echo "Cassandra fanout to $CASSANDRA_FOLLOWERS feeds on 127.0.0.1:9042" >&2
        "${CLIENT_PIN[@]}" "$AF_PYTHON" "$BENCH/cassandra_fanout.py" --setups single \
            --followers "$CASSANDRA_FOLLOWERS" --aggregated 0 --repeat "$REPEAT" \
            --json "$CASS_JSON" --md "$LOCAL/cassandra-fanout.md" >&2 \
            || echo '{"rows": [], "not_run": "not run (cassandra_fanout.py failed)"}' >"$CASS_JSON"
    else
        echo '{"rows": [], "not_run": "not run (nothing answers on 127.0.0.1:9042)"}' >"$CASS_JSON"
    fi
else
    echo '{"rows": [], "not_run": "not run (CASS not in WORKLOADS)"}' >"$CASS_JSON"
fi
"$AF_PYTHON" "$BENCH/compare.py" merge --out "$NAME-stream_framework.json" "$LOCAL"/stream_framework-*.json
"$AF_PYTHON" "$BENCH/compare.py" merge --out "$NAME-asyncfeeds.json" "$LOCAL"/asyncfeeds-*.json
"$AF_PYTHON" "$BENCH/compare.py" table "$NAME-stream_framework.json" "$NAME-asyncfeeds.json" \
    --cassandra "$CASS_JSON" | tee "$NAME.md"
if [ "${#FAILED[@]}" -gt 0 ]; then
    { echo; echo "Failed steps (their rows are missing or have fewer repetitions):"
      printf -- '- %s\n' "${FAILED[@]}"; } | tee -a "$NAME.md"
fi
echo "results: $NAME-{stream_framework,asyncfeeds,cassandra}.json and $NAME.md" >&2
