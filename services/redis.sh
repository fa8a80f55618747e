#!/usr/bin/env bash
# Local Redis servers for the asyncfeeds test suite, without Docker.
#
#   services/redis.sh start    install Redis if needed, start what is missing
#   services/redis.sh start-standalone   the same for the standalone Redis only
#                              (what `make run-example` needs)
#   services/redis.sh stop     stop only what `start` started, remove state files
#   services/redis.sh status   show what answers; exit 0 only if all is up
#
# Services (all on 127.0.0.1, no persistence):
#   standalone Redis  port ${ASYNCFEEDS_TEST_REDIS_PORT:-6390}
#   Redis Cluster     ports ${ASYNCFEEDS_TEST_CLUSTER_PORTS:-7101 7102 7103}
#                     (3 masters, no replicas; cluster bus on port+10000)
#   Redis Cluster with replicas, for fault tests that kill a master:
#                     ports ${ASYNCFEEDS_TEST_REPLICA_CLUSTER_PORTS:-7201 7202 7203 7204 7205 7206}
#                     (3 masters and 3 replicas; node timeout
#                     ${ASYNCFEEDS_TEST_REPLICA_CLUSTER_NODE_TIMEOUT:-3000} ms, so a
#                     replica takes over a few seconds after its master dies)
#
# A cluster node that died is started again on its nodes-PORT.conf and rejoins
# (a killed master comes back as a replica of the node that replaced it).
#
# A port that already answers PING is left alone and never stopped by us.
# What this script starts is recorded by the pid files that each
# redis-server writes into .services/redis/ at the repository root.
# Optional: ASYNCFEEDS_TEST_CLUSTER_WAIT (seconds, default 30) bounds the wait
# for cluster_state:ok.
set -euo pipefail

SCRIPT_PATH="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)/$(basename "${BASH_SOURCE[0]}")"
REPO_ROOT="$(cd "$(dirname "$SCRIPT_PATH")/.." && pwd)"
STATE_DIR="$REPO_ROOT/.services/redis"

HOST=127.0.0.1
STANDALONE_PORT="${ASYNCFEEDS_TEST_REDIS_PORT:-6390}"
read -r -a MAIN_PORTS <<<"${ASYNCFEEDS_TEST_CLUSTER_PORTS:-7101 7102 7103}"
read -r -a REPLICA_PORTS <<<"${ASYNCFEEDS_TEST_REPLICA_CLUSTER_PORTS:-7201 7202 7203 7204 7205 7206}"
REPLICA_NODE_TIMEOUT="${ASYNCFEEDS_TEST_REPLICA_CLUSTER_NODE_TIMEOUT:-3000}"
CLUSTER_WAIT="${ASYNCFEEDS_TEST_CLUSTER_WAIT:-30}"

# The cluster the cluster functions work on, set by use_cluster main|replicas.
CLUSTER_PORTS=() CLUSTER_REPLICAS=0 CLUSTER_NODE_TIMEOUT=5000 CLUSTER_LABEL=""
use_cluster() {
    if [[ $1 == main ]]; then
        CLUSTER_PORTS=("${MAIN_PORTS[@]}") CLUSTER_REPLICAS=0 CLUSTER_NODE_TIMEOUT=5000
        CLUSTER_LABEL="redis-cluster"
    else
        CLUSTER_PORTS=("${REPLICA_PORTS[@]}") CLUSTER_REPLICAS=1
        CLUSTER_NODE_TIMEOUT=$REPLICA_NODE_TIMEOUT CLUSTER_LABEL="redis-cluster with replicas"
    fi
    CLUSTER_LABEL+=" $HOST:$(IFS=,; echo "${CLUSTER_PORTS[*]}")"
}

die() { echo "redis.sh: $*" >&2; exit 1; }

# ---------------------------------------------------------------- helpers

cli() { # cli PORT ARGS... : redis-cli against one local port; never hangs or fails
    local port=$1; shift
    { timeout 5 redis-cli -h "$HOST" -p "$port" "$@" 2>/dev/null || true; } | tr -d '\r'
}

answers_ping() { [[ "$(cli "$1" ping)" == PONG ]]; }

port_in_use() { (: <"/dev/tcp/$HOST/$1") 2>/dev/null; }

pid_gone() { # exited; a zombie (not yet reaped by its parent) counts as gone
    ! kill -0 "$1" 2>/dev/null ||
        [[ "$(sed -n 's/^State:[[:space:]]*//p' "/proc/$1/status" 2>/dev/null)" == Z* ]]
}

pidfile() { echo "$STATE_DIR/redis-$1.pid"; }

our_pid() { # prints the pid if the Redis on PORT was started by this script
    local port=$1 file pid cmd
    file="$(pidfile "$port")"
    [[ -s $file ]] || return 1
    pid="$(<"$file")"
    [[ $pid =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
    if [[ -r /proc/$pid/cmdline ]]; then
        cmd="$(tr '\0' ' ' <"/proc/$pid/cmdline")"
    else
        cmd="$(ps -o args= -p "$pid" || true)"
    fi
    [[ $cmd == *redis-server*":$port"* ]] || return 1
    echo "$pid"
}

cluster_field() { # cluster_field PORT NAME : one value from CLUSTER INFO
    cli "$1" cluster info | sed -n "s/^$2://p"
}

wait_until() { # wait_until SECONDS COMMAND... : poll every 0.2s
    local deadline=$((SECONDS + $1)); shift
    until "$@"; do
        ((SECONDS < deadline)) || return 1
        sleep 0.2
    done
}

ensure_installed() {
    command -v redis-server >/dev/null && command -v redis-cli >/dev/null && return
    echo "redis: redis-server/redis-cli missing, installing with apt-get"
    command -v apt-get >/dev/null || die "apt-get not found; install Redis >= 6 yourself"
    local sudo=()
    if ((EUID != 0)); then
        command -v sudo >/dev/null || die "need root or sudo to apt-get install redis-server"
        sudo=(sudo)
    fi
    # Keep the package's own init/systemd service from starting a Redis on
    # 6379 during the install; we run our own processes. Docker-style images
    # have this policy file already; elsewhere it is added for the install only.
    local policy=/usr/sbin/policy-rc.d
    if [[ ! -e $policy ]]; then
        "${sudo[@]}" sh -c "printf '#!/bin/sh\nexit 101\n' >$policy && chmod +x $policy"
        # shellcheck disable=SC2064  # expand now: the locals are gone at exit
        trap "${sudo[*]} rm -f $policy" EXIT
    fi
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive \
        apt-get install -y -qq --no-install-recommends redis-server >/dev/null
    echo "redis: installed $(redis-server --version | grep -o 'v=[^ ]*')"
}

start_server() { # start_server PORT EXTRA_ARGS... : a daemonized redis-server
    local port=$1; shift
    # Early errors go to the log too; fd 9 (our lock) must not leak into the daemon.
    # shellcheck disable=SC2094  # redis-server only appends to its log
    redis-server \
        --bind "$HOST" --port "$port" \
        --save "" --appendonly no \
        --daemonize yes \
        --dir "$STATE_DIR" \
        --dbfilename "dump-$port.rdb" \
        --pidfile "$(pidfile "$port")" \
        --logfile "$STATE_DIR/redis-$port.log" \
        "$@" </dev/null >/dev/null 2>>"$STATE_DIR/redis-$port.log" 9<&-
    if ! wait_until 10 answers_ping "$port"; then
        tail -n 5 "$STATE_DIR/redis-$port.log" >&2 || true
        die "redis-server on port $port did not come up (log: $STATE_DIR/redis-$port.log)"
    fi
}

stop_server() { # stop_server PORT : stop it if we started it, printing its pid
    local port=$1 pid
    pid="$(our_pid "$port")" || { rm -f "$(pidfile "$port")"; return 1; }
    cli "$port" shutdown nosave >/dev/null
    if ! wait_until 10 pid_gone "$pid"; then
        kill -TERM "$pid" 2>/dev/null || true
        wait_until 5 pid_gone "$pid" || kill -KILL "$pid" 2>/dev/null || true
    fi
    rm -f "$(pidfile "$port")"
    echo "$pid"
}

require_port_usable() { # fail early on a port taken by something that is not Redis
    if port_in_use "$1" && ! answers_ping "$1"; then
        die "port $1 is in use by something that does not answer Redis PING"
    fi
}

owner_of() {
    local pid
    if pid="$(our_pid "$1")"; then echo "ours, pid $pid"; else echo "not ours"; fi
}

# ---------------------------------------------------------------- standalone

start_standalone() {
    local port=$STANDALONE_PORT label="redis $HOST:$STANDALONE_PORT" pid
    if answers_ping "$port"; then
        if pid="$(our_pid "$port")"; then
            echo "$label: already running (ours, pid $pid)"
        else
            rm -f "$(pidfile "$port")" # stale: whatever answers is not ours
            echo "$label: found, not started by this script; left alone"
        fi
        return
    fi
    require_port_usable "$port"
    start_server "$port"
    echo "$label: started (pid $(our_pid "$port"))"
}

# ---------------------------------------------------------------- cluster

start_cluster_node() { # an existing nodes-PORT.conf makes it rejoin its cluster
    start_server "$1" \
        --cluster-enabled yes \
        --cluster-config-file "nodes-$1.conf" \
        --cluster-node-timeout "$CLUSTER_NODE_TIMEOUT" \
        --cluster-announce-ip "$HOST"
}

create_cluster() {
    local port nodes=()
    for port in "${CLUSTER_PORTS[@]}"; do nodes+=("$HOST:$port"); done
    if ! timeout 60 redis-cli --cluster create "${nodes[@]}" \
        --cluster-replicas "$CLUSTER_REPLICAS" --cluster-yes >"$STATE_DIR/cluster-create.log" 2>&1; then
        cat "$STATE_DIR/cluster-create.log" >&2
        die "redis-cli --cluster create failed"
    fi
}

rebuild_cluster() { # only for nodes that are all ours: start afresh and create
    local port
    for port in "${CLUSTER_PORTS[@]}"; do
        stop_server "$port" >/dev/null || true
        rm -f "$STATE_DIR/nodes-$port.conf"
    done
    for port in "${CLUSTER_PORTS[@]}"; do start_cluster_node "$port"; done
    create_cluster
}

cluster_ok() { # every node says cluster_state:ok and, with replicas, each master has its own
    local port nodes
    for port in "${CLUSTER_PORTS[@]}"; do
        [[ "$(cluster_field "$port" cluster_state)" == ok ]] || return 1
    done
    ((CLUSTER_REPLICAS > 0)) || return 0
    # Every node known, connected and healthy; as many replicas as planned.
    nodes="$(cli "${CLUSTER_PORTS[0]}" cluster nodes)"
    [[ "$(awk '$8 == "connected" && $3 !~ /fail|handshake|noaddr/' <<<"$nodes" | wc -l)" == \
        "${#CLUSTER_PORTS[@]}" ]] || return 1
    [[ "$(awk '$3 ~ /slave/' <<<"$nodes" | wc -l)" == \
        "$(( ${#CLUSTER_PORTS[@]} * CLUSTER_REPLICAS / (CLUSTER_REPLICAS + 1) ))" ]] || return 1
    # A replica can take over only once it has synced with its master.
    for port in "${CLUSTER_PORTS[@]}"; do
        if [[ "$(cli "$port" info replication | sed -n 's/^role://p')" == slave ]]; then
            [[ "$(cli "$port" info replication | sed -n 's/^master_link_status://p')" == up ]] ||
                return 1
        fi
    done
}

start_cluster() {
    local port started=() foreign=() down=() fresh=0 action
    for port in "${CLUSTER_PORTS[@]}"; do
        if ! answers_ping "$port"; then
            down+=("$port")
        elif ! our_pid "$port" >/dev/null; then
            rm -f "$(pidfile "$port")" # stale: whatever answers is not ours
            foreign+=("$port")
        fi
    done

    # Nodes that someone else runs are never touched: use them if they form
    # a healthy cluster, otherwise fail.
    if ((${#foreign[@]} > 0)); then
        ((${#down[@]} == 0)) ||
            die "port(s) ${foreign[*]} run a Redis not started by this script but ${down[*]} do not" \
                "answer; stop that Redis or set ASYNCFEEDS_TEST_CLUSTER_PORTS"
        wait_until "$CLUSTER_WAIT" cluster_ok ||
            die "port(s) ${foreign[*]} run a Redis not started by this script whose cluster_state" \
                "is not ok; stop it or set ASYNCFEEDS_TEST_CLUSTER_PORTS"
        echo "$CLUSTER_LABEL: found, cluster_state:ok (not all started by this script; left alone)"
        return
    fi

    if ((${#down[@]} == 0)) && cluster_ok; then
        echo "$CLUSTER_LABEL: already running (ours), cluster_state:ok"
        return
    fi

    for port in "${down[@]}"; do
        require_port_usable "$port"
        start_cluster_node "$port"
        started+=("$port")
    done

    # A fresh node knows only itself and serves no slots.
    for port in "${CLUSTER_PORTS[@]}"; do
        if [[ "$(cluster_field "$port" cluster_known_nodes)" == 1 &&
            "$(cluster_field "$port" cluster_slots_assigned)" == 0 ]]; then
            fresh=$((fresh + 1))
        fi
    done
    if ((fresh == ${#CLUSTER_PORTS[@]})); then
        create_cluster
        action="created cluster"
    elif ((fresh > 0)); then
        rebuild_cluster # some nodes lost their config: start over
        action="rebuilt cluster"
    else
        action="nodes rejoined their cluster"
    fi

    if ! wait_until "$CLUSTER_WAIT" cluster_ok; then
        [[ $action != "rebuilt cluster" ]] || die "cluster_state not ok after ${CLUSTER_WAIT}s"
        rebuild_cluster
        action="rebuilt cluster"
        wait_until "$CLUSTER_WAIT" cluster_ok || die "cluster_state not ok after ${CLUSTER_WAIT}s"
    fi
    echo "$CLUSTER_LABEL: started nodes ${started[*]:-none}, $action, cluster_state:ok"
}

# ---------------------------------------------------------------- commands

cmd_start() {
    ensure_installed
    mkdir -p "$STATE_DIR"
    start_standalone
    use_cluster main
    start_cluster
    use_cluster replicas
    start_cluster
}

cmd_start_standalone() {
    ensure_installed
    mkdir -p "$STATE_DIR"
    start_standalone
}

cmd_stop() {
    local pid port cluster stopped=()
    if ! command -v redis-cli >/dev/null; then
        echo "redis: redis-cli not installed, nothing to stop"
        return
    fi
    if pid="$(stop_server "$STANDALONE_PORT")"; then
        echo "redis $HOST:$STANDALONE_PORT: stopped (pid $pid)"
    else
        echo "redis $HOST:$STANDALONE_PORT: nothing of ours running"
    fi
    for cluster in main replicas; do
        use_cluster "$cluster"
        stopped=()
        for port in "${CLUSTER_PORTS[@]}"; do
            if stop_server "$port" >/dev/null; then stopped+=("$port"); fi
        done
        if ((${#stopped[@]} > 0)); then
            echo "$CLUSTER_LABEL: stopped nodes ${stopped[*]}"
        else
            echo "$CLUSTER_LABEL: nothing of ours running"
        fi
    done
    rm -rf "$STATE_DIR"
    rmdir "$(dirname "$STATE_DIR")" 2>/dev/null || true
}

cmd_status() { # exit status 0 only if the standalone Redis and the clusters are up
    local rc=0 port cluster
    command -v redis-cli >/dev/null || { echo "redis: redis-cli not installed"; return 1; }
    if answers_ping "$STANDALONE_PORT"; then
        echo "redis $HOST:$STANDALONE_PORT: up ($(owner_of "$STANDALONE_PORT"))"
    else
        echo "redis $HOST:$STANDALONE_PORT: down"
        rc=1
    fi
    for cluster in main replicas; do
        use_cluster "$cluster"
        for port in "${CLUSTER_PORTS[@]}"; do
            if answers_ping "$port"; then
                echo "$CLUSTER_LABEL node $port: up ($(owner_of "$port")," \
                    "cluster_state:$(cluster_field "$port" cluster_state))"
            else
                echo "$CLUSTER_LABEL node $port: down"
                rc=1
            fi
        done
        cluster_ok || rc=1
    done
    return "$rc"
}

main() {
    case "${1:-}" in
    start | start-standalone | stop | status) ;;
    *) echo "usage: $0 start|start-standalone|stop|status" >&2; exit 2 ;;
    esac
    [[ $STANDALONE_PORT =~ ^[0-9]+$ ]] || die "ASYNCFEEDS_TEST_REDIS_PORT must be a port number"
    ((${#MAIN_PORTS[@]} >= 3)) || die "ASYNCFEEDS_TEST_CLUSTER_PORTS needs at least 3 ports"
    ((${#REPLICA_PORTS[@]} >= 6 && ${#REPLICA_PORTS[@]} % 2 == 0)) ||
        die "ASYNCFEEDS_TEST_REPLICA_CLUSTER_PORTS needs an even number of ports, at least 6"
    [[ $REPLICA_NODE_TIMEOUT =~ ^[0-9]+$ ]] ||
        die "ASYNCFEEDS_TEST_REPLICA_CLUSTER_NODE_TIMEOUT must be milliseconds"
    local port
    for port in "${MAIN_PORTS[@]}" "${REPLICA_PORTS[@]}"; do
        [[ $port =~ ^[0-9]+$ ]] || die "ASYNCFEEDS_TEST_CLUSTER_PORTS and" \
            "ASYNCFEEDS_TEST_REPLICA_CLUSTER_PORTS must be port numbers"
    done
    # One invocation at a time per checkout (e.g. parallel test runners).
    if command -v flock >/dev/null; then
        exec 9<"$SCRIPT_PATH"
        flock -w 120 9 || die "timed out waiting for another redis.sh to finish"
    fi
    "cmd_${1//-/_}"
}

main "$@"
