#!/usr/bin/env bash
# Start, stop and inspect a local single-node Apache Cassandra 5.0 for
# asyncfeeds' development and tests, without Docker and without a manual
# install.
#
#   bash services/cassandra.sh start    # start (or reuse) a node on 127.0.0.1
#   bash services/cassandra.sh stop     # stop the node that `start` started
#   bash services/cassandra.sh status   # tell what answers on the CQL port
#
# `start` installs Java 17 and Maven with apt-get when they are missing,
# fetches Cassandra's jars from Maven Central (services/cassandra/pom.xml)
# into a cache folder once, renders services/cassandra/cassandra.yaml into a
# fresh temporary data folder and runs CassandraDaemon in the background.
# If something already answers on the CQL port, `start` leaves it alone and
# does not adopt it, so `stop` never stops a node it did not start.
#
# Environment (all optional):
#   CASSANDRA_PORT           CQL port (default 9042)
#   CASSANDRA_STORAGE_PORT   inter-node port (default 7000)
#   CASSANDRA_HEAP           JVM heap size, -Xms and -Xmx (default 1g)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL (default 180)
#   CASSANDRA_CACHE_DIR      jar cache folder
#                            (default ${XDG_CACHE_HOME:-$HOME/.cache}/asyncfeeds/cassandra-<version>)
#   JAVA_HOME                Java 17 to use instead of the one found on PATH

set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
conf_dir="$script_dir/cassandra"
state_dir="$repo_root/.services"
state_file="$state_dir/cassandra.state"

native_port="${CASSANDRA_PORT:-9042}"
storage_port="${CASSANDRA_STORAGE_PORT:-7000}"
heap="${CASSANDRA_HEAP:-1g}"
start_timeout="${CASSANDRA_START_TIMEOUT:-180}"

cassandra_version="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$conf_dir/pom.xml")"
cache_dir="${CASSANDRA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asyncfeeds/cassandra-$cassandra_version}"

log() { printf 'cassandra.sh: %s\n' "$*"; }
die() { printf 'cassandra.sh: error: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch, and a duration in ms printed as seconds.
now_ms() { local us="${EPOCHREALTIME//[.,]/}"; echo $(( us / 1000 )); }
secs_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }

# ---------------------------------------------------------------------------
# Probes

# True when something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/127.0.0.1/$1" 2>/dev/null
}

# True when a CQL server answers on 127.0.0.1:$1: send a native protocol v4
# OPTIONS request and expect a v4 response header with opcode SUPPORTED.
cql_answers() {
    local header
    header="$(timeout 3 bash -c "
        exec 3<>/dev/tcp/127.0.0.1/$1 || exit 1
        printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3
        head -c 5 <&3 | od -An -tx1 | tr -d ' \n'" 2>/dev/null)" || return 1
    [[ "$header" == "8400000006" ]]
}

# ---------------------------------------------------------------------------
# State of the node this script started: key=value lines in $state_file.

state_get() {
    [[ -f "$state_file" ]] || return 0
    sed -n "s/^$1=//p" "$state_file"
}

# True when the pid recorded in the state file is a running CassandraDaemon
# (guards against a recycled pid).
our_node_running() {
    local pid
    pid="$(state_get pid)"
    [[ -n "$pid" ]] || return 1
    grep -qaF 'org.apache.cassandra.service.CassandraDaemon' "/proc/$pid/cmdline" 2>/dev/null
}

forget_node() {
    local data_dir
    data_dir="$(state_get data_dir)"
    if [[ -n "$data_dir" && -d "$data_dir" ]]; then
        rm -rf -- "$data_dir"
    fi
    rm -f -- "$state_file"
}

# ---------------------------------------------------------------------------
# Prerequisites

apt_updated=false
apt_install() {
    command -v apt-get >/dev/null || die "$* missing and apt-get is not available; install it by hand"
    [[ "$(id -u)" == 0 ]] || die "$* missing; run as root or install it first"
    if ! $apt_updated; then
        log "apt-get update"
        DEBIAN_FRONTEND=noninteractive apt-get update -qq >/dev/null
        apt_updated=true
    fi
    log "apt-get install $*"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

java_major() {
    "$1" -XshowSettings:properties -version 2>&1 |
        sed -n 's/^ *java\.specification\.version = \([0-9]*\).*/\1/p'
}

# Sets $java to a Java 17 binary, installing OpenJDK 17 when none is found.
find_java() {
    local candidate
    for candidate in "${JAVA_HOME:+$JAVA_HOME/bin/java}" "$(command -v java || true)" \
                     /usr/lib/jvm/java-17-openjdk-*/bin/java; do
        if [[ -n "$candidate" && -x "$candidate" && "$(java_major "$candidate")" == 17 ]]; then
            java="$candidate"
            return
        fi
    done
    apt_install openjdk-17-jre-headless
    for candidate in /usr/lib/jvm/java-17-openjdk-*/bin/java; do
        if [[ -x "$candidate" ]]; then
            java="$candidate"
            return
        fi
    done
    die "could not find Java 17 after installing openjdk-17-jre-headless"
}

# Fills $cache_dir with Cassandra's jars unless a previous run completed it
# for the same pom.xml.
fetch_jars() {
    local pom="$conf_dir/pom.xml" stamp want tmp
    stamp="$cache_dir/.complete"
    want="$(sha256sum "$pom" | cut -d' ' -f1)"
    if [[ -f "$stamp" && "$(cat "$stamp")" == "$want" ]]; then
        return
    fi
    command -v mvn >/dev/null || apt_install maven
    # Let Maven run on the same Java as Cassandra.
    local java_home
    java_home="$(dirname "$(dirname "$(readlink -f "$java")")")"
    log "fetching Cassandra $cassandra_version jars into $cache_dir"
    mkdir -p "$(dirname "$cache_dir")"
    tmp="$(mktemp -d "$cache_dir.partial.XXXXXX")"
    if ! JAVA_HOME="$java_home" mvn -B -q -f "$pom" dependency:copy-dependencies \
            -DincludeScope=runtime -DoutputDirectory="$tmp" >"$tmp.mvn.log" 2>&1; then
        cat "$tmp.mvn.log" >&2
        rm -rf -- "$tmp" "$tmp.mvn.log"
        die "mvn dependency:copy-dependencies failed"
    fi
    rm -f -- "$tmp.mvn.log"
    echo "$want" >"$tmp/.complete"
    rm -rf -- "$cache_dir"
    mv -- "$tmp" "$cache_dir"
}

# ---------------------------------------------------------------------------
# JVM options, following Cassandra 5.0's own conf/jvm-server.options and
# conf/jvm17-server.options (production-only flags such as AlwaysPreTouch
# are left out to keep start-up fast and the footprint small).

jvm_options() {
    local data_dir="$1"
    local opts=(
        -Xms"$heap" -Xmx"$heap"
        -Xss256k
        -XX:+UseG1GC
        -XX:+ParallelRefProcEnabled
        -XX:MaxTenuringThreshold=1
        -XX:G1HeapRegionSize=16m
        -XX:G1RSetUpdatingPauseTimePercent=5
        -XX:MaxGCPauseMillis=300
        -XX:InitiatingHeapOccupancyPercent=70
        -XX:+UseThreadPriorities
        -XX:+UseTLAB
        -XX:+ResizeTLAB
        -XX:+PerfDisableSharedMem
        -XX:+ExitOnOutOfMemoryError
        -ea
        -da:net.openhft...
        -Djava.net.preferIPv4Stack=true
        -Djdk.attach.allowAttachSelf=true
        -Dio.netty.tryReflectionSetAccessible=true
        -Dio.netty.allocator.useCacheForAllThreads=true
        -Dio.netty.allocator.maxOrder=11
        # Java module system: what Cassandra 5.0 reaches into on Java 17.
        --add-exports java.base/jdk.internal.misc=ALL-UNNAMED
        --add-exports java.base/jdk.internal.ref=ALL-UNNAMED
        --add-exports java.base/sun.nio.ch=ALL-UNNAMED
        --add-exports java.base/java.lang.ref=ALL-UNNAMED
        --add-exports java.management.rmi/com.sun.jmx.remote.internal.rmi=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.registry=ALL-UNNAMED
        --add-exports java.rmi/sun.rmi.server=ALL-UNNAMED
        --add-exports java.sql/java.sql=ALL-UNNAMED
        --add-exports jdk.unsupported/sun.misc=ALL-UNNAMED
        --add-exports jdk.attach/sun.tools.attach=ALL-UNNAMED
        --add-opens java.base/java.lang.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.loader=ALL-UNNAMED
        --add-opens java.base/jdk.internal.ref=ALL-UNNAMED
        --add-opens java.base/jdk.internal.reflect=ALL-UNNAMED
        --add-opens java.base/jdk.internal.math=ALL-UNNAMED
        --add-opens java.base/jdk.internal.module=ALL-UNNAMED
        --add-opens java.base/jdk.internal.util.jar=ALL-UNNAMED
        --add-opens jdk.management/com.sun.management.internal=ALL-UNNAMED
        --add-opens java.base/sun.nio.ch=ALL-UNNAMED
        --add-opens java.base/java.io=ALL-UNNAMED
        --add-opens java.base/java.nio=ALL-UNNAMED
        --add-opens java.base/java.lang=ALL-UNNAMED
        --add-opens java.base/java.lang.reflect=ALL-UNNAMED
        --add-opens java.base/java.util=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent=ALL-UNNAMED
        --add-opens java.base/java.util.concurrent.atomic=ALL-UNNAMED
        --add-opens java.base/java.net=ALL-UNNAMED
        --add-opens java.base/java.math=ALL-UNNAMED
        # jamm measures object sizes for memtable accounting.
        -javaagent:"$(ls "$cache_dir"/jamm-*.jar | head -n 1)"
        # Single node: skip the waits meant for joining a real cluster.
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        -Dcassandra.ring_delay_ms=0
        -Dcassandra.load_ring_state=false
        -Dcassandra.shutdown_announce_in_ms=0
        -Dcassandra.config="file://$data_dir/cassandra.yaml"
        -Dcassandra.storagedir="$data_dir"
        -Dcassandra.triggers_dir="$data_dir/triggers"
        -Dcassandra.logdir="$data_dir/logs"
        -Dlogback.configurationFile="file://$conf_dir/logback.xml"
        # Keep stdout/stderr open so JVM-level failures land in stdout.log.
        -Dcassandra-foreground=yes
    )
    printf '%s\n' "${opts[@]}"
}

# ---------------------------------------------------------------------------
# Subcommands

# Polls until CQL answers; on failure prints the logs and exits non-zero.
wait_for_cql() {
    local pid="$1" data_dir="$2" started_ms="$3"
    while ! cql_answers "$native_port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            start_failed "$data_dir" "Cassandra (pid $pid) exited during start-up"
        fi
        if (( $(now_ms) - started_ms >= start_timeout * 1000 )); then
            kill -KILL "$pid" 2>/dev/null || true
            start_failed "$data_dir" "CQL did not answer on 127.0.0.1:$native_port within ${start_timeout}s"
        fi
        sleep 0.25
    done
}

start_failed() {
    local data_dir="$1" reason="$2" f
    for f in "$data_dir/logs/system.log" "$data_dir/stdout.log"; do
        if [[ -s "$f" ]]; then
            echo "---- last 50 lines of $f" >&2
            tail -n 50 "$f" >&2
        fi
    done
    rm -f -- "$state_file"
    die "$reason (data folder kept for inspection: $data_dir)"
}

cmd_start() {
    if our_node_running; then
        local pid data_dir port
        pid="$(state_get pid)"
        data_dir="$(state_get data_dir)"
        port="$(state_get port)"
        if [[ "$port" != "$native_port" ]]; then
            die "the Cassandra started by this script (pid $pid) uses port $port, not $native_port; stop it first"
        fi
        if cql_answers "$native_port"; then
            log "already running (pid $pid, started by this script), CQL on 127.0.0.1:$native_port"
            return
        fi
        log "already starting (pid $pid, started by this script); waiting for CQL"
        wait_for_cql "$pid" "$data_dir" "$(now_ms)"
        log "CQL answers on 127.0.0.1:$native_port"
        return
    fi
    if [[ -f "$state_file" ]]; then
        forget_node   # stale state of a node that died
    fi

    if port_open "$native_port"; then
        log "something already answers on 127.0.0.1:$native_port; not starting Cassandra (and not managing the existing server)"
        return
    fi

    local begin_ms java
    begin_ms="$(now_ms)"
    find_java
    fetch_jars

    local data_dir
    data_dir="$(mktemp -d "${TMPDIR:-/tmp}/asyncfeeds-cassandra.XXXXXX")"
    mkdir -p "$data_dir/logs" "$data_dir/triggers"
    sed -e "s|@DATA_DIR@|$data_dir|g" \
        -e "s|@NATIVE_PORT@|$native_port|g" \
        -e "s|@STORAGE_PORT@|$storage_port|g" \
        "$conf_dir/cassandra.yaml" >"$data_dir/cassandra.yaml"

    local -a opts
    mapfile -t opts < <(jvm_options "$data_dir")

    mkdir -p "$state_dir"
    local pid_file="$data_dir/cassandra.pid" launch_ms
    launch_ms="$(now_ms)"
    (
        cd "$data_dir"
        # Cassandra mlockall()s the JVM at start-up, which makes the whole
        # heap resident at once. A throw-away test node does not need that:
        # a small RLIMIT_MEMLOCK makes the call fail harmlessly (one WARN
        # line); root ignores the limit unless CAP_IPC_LOCK is dropped too.
        ulimit -S -l 64
        no_mlock=()
        if [[ "$(id -u)" == 0 ]] && command -v setpriv >/dev/null; then
            no_mlock=(setpriv --inh-caps=-ipc_lock --bounding-set=-ipc_lock)
        fi
        # setsid detaches the JVM from this shell's session so it outlives
        # it. setsid may fork, so the child writes its own pid before
        # exec'ing java.
        exec setsid "${no_mlock[@]}" bash -c 'echo $$ >"$1"; shift; exec "$@"' set-pid "$pid_file" \
            "$java" "${opts[@]}" -cp "$cache_dir/*" org.apache.cassandra.service.CassandraDaemon \
            </dev/null >"$data_dir/stdout.log" 2>&1
    ) &
    local tries=0
    until [[ -s "$pid_file" ]]; do
        (( ++tries < 100 )) || start_failed "$data_dir" "the JVM did not start"
        sleep 0.05
    done
    local pid
    pid="$(cat "$pid_file")"
    printf 'pid=%s\ndata_dir=%s\nport=%s\n' "$pid" "$data_dir" "$native_port" >"$state_file"
    log "started Cassandra $cassandra_version (pid $pid), data in $data_dir; waiting for CQL on 127.0.0.1:$native_port"

    wait_for_cql "$pid" "$data_dir" "$launch_ms"
    log "CQL answers on 127.0.0.1:$native_port; start-up took $(secs_since "$launch_ms") (total $(secs_since "$begin_ms") including Java/jar checks)"
}

cmd_stop() {
    if ! our_node_running; then
        if [[ -f "$state_file" ]]; then
            log "the Cassandra started by this script is no longer running; cleaning up"
            forget_node
        else
            log "no Cassandra started by this script; nothing to stop"
        fi
        return
    fi
    local pid begin_ms
    pid="$(state_get pid)"
    begin_ms="$(now_ms)"
    log "stopping Cassandra (pid $pid)"
    # SIGTERM runs Cassandra's shutdown hook (drain) and the JVM exits.
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if (( $(now_ms) - begin_ms >= 60000 )); then
            log "still running after 60s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    forget_node
    log "stopped after $(secs_since "$begin_ms")"
}

# Exit status: 0 when a CQL server answers (ours or not), 1 when the port is
# taken by something else, 3 when nothing runs.
cmd_status() {
    if our_node_running; then
        local pid port
        pid="$(state_get pid)"
        port="$(state_get port)"
        if cql_answers "$port"; then
            log "running (pid $pid, started by this script), CQL on 127.0.0.1:$port, data in $(state_get data_dir)"
        else
            log "starting (pid $pid, started by this script), CQL not answering yet on 127.0.0.1:$port"
        fi
        return 0
    fi
    if cql_answers "$native_port"; then
        log "a CQL server not started by this script answers on 127.0.0.1:$native_port"
        return 0
    fi
    if port_open "$native_port"; then
        log "something that is not a CQL server listens on 127.0.0.1:$native_port"
        return 1
    fi
    log "not running (nothing on 127.0.0.1:$native_port)"
    return 3
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    *)
        echo "usage: $0 start|stop|status" >&2
        exit 2
        ;;
esac
