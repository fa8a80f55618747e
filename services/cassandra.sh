#!/usr/bin/env bash
# Start, stop and inspect local Apache Cassandra 5.0 nodes for asyncfeeds'
# development and tests, without Docker and without a manual install.
#
#   bash services/cassandra.sh start            # the single node on 127.0.0.1 the suite uses
#   bash services/cassandra.sh stop             # stop the node that `start` started
#   bash services/cassandra.sh status           # tell what answers on the CQL port
#   bash services/cassandra.sh start-cluster [N]  # N nodes (default 2) on 127.0.0.2, .3, ...
#   bash services/cassandra.sh stop-cluster     # stop the cluster nodes this script started
#   bash services/cassandra.sh start-secure     # one node with password auth and client TLS
#   bash services/cassandra.sh stop-secure      # stop it
#   bash services/cassandra.sh prepare          # only install Java and fetch the jars
#
# `start` installs Java 17 and Maven with apt-get when they are missing,
# fetches Cassandra's jars from Maven Central (services/cassandra/pom.xml)
# into a cache folder once, renders services/cassandra/cassandra.yaml into a
# fresh temporary data folder and runs CassandraDaemon in the background.
# If something already answers on a node's CQL address, `start*` leaves it
# alone and does not adopt it, so `stop*` never stops a node it did not start.
#
# The cluster ("asyncfeeds-faults", for fault tests) binds loopback aliases
# (on Linux all of 127/8 is loopback), one fixed token per node, every node a
# seed. A cluster node that died (say kill -9 by a test) is started again by
# `start-cluster` on its own data folder, so it rejoins with its data; only
# `stop-cluster` removes the data. The secure node ("asyncfeeds-secure")
# requires PasswordAuthenticator logins (the default superuser
# cassandra/cassandra) and TLS with client certificates, from a throw-away CA
# that `start-secure` generates with openssl into .services/cassandra-secure/
# (ca.pem, client.pem, client.key).
#
# Environment (all optional):
#   CASSANDRA_PORT           CQL port of the single node (default 9042)
#   CASSANDRA_STORAGE_PORT   inter-node port of the single node (default 7000)
#   CASSANDRA_HEAP           JVM heap of the single node, -Xms and -Xmx (default 1g)
#   CASSANDRA_CLUSTER_FIRST  address of the first cluster node (default 127.0.0.2)
#   CASSANDRA_SECURE_ADDRESS address of the secure node (default 127.0.0.9)
#   CASSANDRA_EXTRA_HEAP     JVM heap of each cluster or secure node (default 512m)
#   CASSANDRA_START_TIMEOUT  seconds to wait for CQL (default 180)
#   CASSANDRA_CACHE_DIR      jar cache folder
#                            (default ${XDG_CACHE_HOME:-$HOME/.cache}/asyncfeeds/cassandra-<version>)
#   JAVA_HOME                Java 17 to use instead of the one found on PATH
# Cluster and secure nodes use CQL port 9042 and storage port 7000 on their own
# addresses, so they never clash with the single node on 127.0.0.1.

set -euo pipefail

script_dir="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo_root="$(cd "$script_dir/.." && pwd)"
conf_dir="$script_dir/cassandra"
state_dir="$repo_root/.services"

start_timeout="${CASSANDRA_START_TIMEOUT:-180}"
cluster_first="${CASSANDRA_CLUSTER_FIRST:-127.0.0.2}"
secure_address="${CASSANDRA_SECURE_ADDRESS:-127.0.0.9}"
secure_dir="$state_dir/cassandra-secure"

cassandra_version="$(sed -n 's:.*<cassandra.version>\(.*\)</cassandra.version>.*:\1:p' "$conf_dir/pom.xml")"
cache_dir="${CASSANDRA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/asyncfeeds/cassandra-$cassandra_version}"

log() { printf 'cassandra.sh: %s\n' "$*"; }
die() { printf 'cassandra.sh: error: %s\n' "$*" >&2; exit 1; }

# Milliseconds since the epoch, and a duration in ms printed as seconds.
now_ms() { local us="${EPOCHREALTIME//[.,]/}"; echo $(( us / 1000 )); }
secs_since() { local ms=$(( $(now_ms) - $1 )); printf '%d.%01ds' $(( ms / 1000 )) $(( ms % 1000 / 100 )); }

# ---------------------------------------------------------------------------
# The node a command works on. use_single, use_cluster_node and use_secure set:
#   address native_port storage_port heap state_file label
#   cluster_name seeds token authenticator keep_data tls ring_delay_ms

use_single() {
    address=127.0.0.1
    native_port="${CASSANDRA_PORT:-9042}"
    storage_port="${CASSANDRA_STORAGE_PORT:-7000}"
    heap="${CASSANDRA_HEAP:-1g}"
    state_file="$state_dir/cassandra.state"
    label="Cassandra"
    cluster_name=asyncfeeds-local
    seeds="$address:$storage_port"
    token=0
    authenticator=AllowAllAuthenticator
    keep_data=false   # a dead single node is started afresh
    tls=false
    ring_delay_ms=0
}

# cluster_address I: the address of node I (1-based) of the cluster.
cluster_address() {
    local prefix="${cluster_first%.*}" last="${cluster_first##*.}"
    (( last + $1 - 1 <= 254 )) || die "no room for node $1 after $cluster_first"
    echo "$prefix.$(( last + $1 - 1 ))"
}

# use_cluster_node I N: node I of an N-node cluster.
use_cluster_node() {
    local i="$1" n="$2" j
    address="$(cluster_address "$i")"
    native_port=9042
    storage_port=7000
    heap="${CASSANDRA_EXTRA_HEAP:-512m}"
    state_file="$state_dir/cassandra-cluster-$address.state"
    label="Cassandra cluster node $i/$n"
    cluster_name=asyncfeeds-faults
    seeds=""
    for (( j = 1; j <= n; j++ )); do
        seeds+="${seeds:+,}$(cluster_address "$j"):7000"
    done
    # Evenly spread Murmur3 tokens: -2^63 + (i-1) * 2^64/n.
    token="$(python3 -c "print(-2**63 + ($i - 1) * 2**64 // $n)")"
    authenticator=AllowAllAuthenticator
    keep_data=true    # a killed node comes back with its data and rejoins
    tls=false
    ring_delay_ms=10000
}

use_secure() {
    address="$secure_address"
    native_port=9042
    storage_port=7000
    heap="${CASSANDRA_EXTRA_HEAP:-512m}"
    state_file="$state_dir/cassandra-secure.state"
    label="Cassandra secure node"
    cluster_name=asyncfeeds-secure
    seeds="$address:$storage_port"
    token=0
    authenticator=PasswordAuthenticator
    keep_data=false
    tls=true
    ring_delay_ms=0
}

# ---------------------------------------------------------------------------
# Probes

# True when something accepts TCP connections on $address:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$address/$1" 2>/dev/null
}

# True when a CQL server answers on $address:$1: send a native protocol v4
# OPTIONS request and expect a v4 response header with opcode SUPPORTED.
# Over TLS, a TLS handshake with the CA is enough: only the node speaks it there.
cql_answers() {
    if $tls; then
        timeout 3 openssl s_client -connect "$address:$1" -CAfile "$secure_dir/ca.pem" \
            -cert "$secure_dir/client.pem" -key "$secure_dir/client.key" \
            -verify_return_error </dev/null >/dev/null 2>&1
        return
    fi
    local header
    header="$(timeout 3 bash -c "
        exec 3<>/dev/tcp/$address/$1 || exit 1
        printf '\x04\x00\x00\x00\x05\x00\x00\x00\x00' >&3
        head -c 5 <&3 | od -An -tx1 | tr -d ' \n'" 2>/dev/null)" || return 1
    [[ "$header" == "8400000006" ]]
}

# ---------------------------------------------------------------------------
# State of a node this script started: key=value lines in $state_file.

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
        # Fresh test nodes (every cluster node a seed, fixed tokens, no
        # bootstrap): skip the waits meant for joining a real cluster.
        -Dcassandra.skip_wait_for_gossip_to_settle=0
        # 0 on a lone node; in a cluster the delay also sets how long a
        # peer may look token-less before gossip drops it, so keep some.
        -Dcassandra.ring_delay_ms="$ring_delay_ms"
        -Dcassandra.load_ring_state=false
        -Dcassandra.shutdown_announce_in_ms=0
        -Dcassandra.superuser_setup_delay_ms=0
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
# Starting and stopping one node (the one use_* selected)

# Polls until CQL answers; on failure prints the logs and exits non-zero.
wait_for_cql() {
    local pid="$1" data_dir="$2" started_ms="$3"
    while ! cql_answers "$native_port"; do
        if ! kill -0 "$pid" 2>/dev/null; then
            start_failed "$data_dir" "$label (pid $pid) exited during start-up"
        fi
        if (( $(now_ms) - started_ms >= start_timeout * 1000 )); then
            kill -KILL "$pid" 2>/dev/null || true
            start_failed "$data_dir" "CQL did not answer on $address:$native_port within ${start_timeout}s"
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

# The secure node's throw-away CA, node and client certificates (PEM).
make_certificates() {
    [[ -s "$secure_dir/client.key" ]] && return
    command -v openssl >/dev/null || die "openssl is needed for the secure node's certificates"
    mkdir -p "$secure_dir"
    (
        cd "$secure_dir"
        openssl req -x509 -newkey rsa:2048 -nodes -days 30 -subj "/CN=asyncfeeds test CA" \
            -keyout ca.key -out ca.pem 2>/dev/null
        openssl req -newkey rsa:2048 -nodes -subj "/CN=$address" \
            -keyout node.key -out node.csr 2>/dev/null
        printf 'subjectAltName=IP:%s\n' "$address" >node.ext
        openssl x509 -req -in node.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -extfile node.ext -out node.crt 2>/dev/null
        cat node.key node.crt >node.pem
        openssl req -newkey rsa:2048 -nodes -subj "/CN=asyncfeeds test client" \
            -keyout client.key -out client.csr 2>/dev/null
        openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 30 \
            -out client.pem 2>/dev/null
        rm -f ./*.csr ./*.ext ./*.srl
    ) || die "openssl could not make the secure node's certificates"
}

# Writes the node's cassandra.yaml into a data folder.
render_config() {
    local data_dir="$1"
    sed -e "s|@DATA_DIR@|$data_dir|g" \
        -e "s|@ADDRESS@|$address|g" \
        -e "s|@NATIVE_PORT@|$native_port|g" \
        -e "s|@STORAGE_PORT@|$storage_port|g" \
        -e "s|@CLUSTER_NAME@|$cluster_name|g" \
        -e "s|@SEEDS@|$seeds|g" \
        -e "s|@INITIAL_TOKEN@|$token|g" \
        -e "s|@AUTHENTICATOR@|$authenticator|g" \
        "$conf_dir/cassandra.yaml" >"$data_dir/cassandra.yaml"
    if [[ "$cluster_name" != asyncfeeds-local ]]; then
        printf '\n# Every node is a seed with a fixed token: nothing to bootstrap.\nauto_bootstrap: false\n' \
            >>"$data_dir/cassandra.yaml"
    fi
    if $tls; then
        cat >>"$data_dir/cassandra.yaml" <<YAML

# Clients must speak TLS and show a certificate of the throw-away CA.
client_encryption_options:
  enabled: true
  optional: false
  require_client_auth: true
  ssl_context_factory:
    class_name: org.apache.cassandra.security.PEMBasedSslContextFactory
  keystore: $secure_dir/node.pem
  truststore: $secure_dir/ca.pem
YAML
    fi
}

# Starts the selected node unless it runs or something else answers there.
start_node() {
    if our_node_running; then
        local pid data_dir
        pid="$(state_get pid)"
        data_dir="$(state_get data_dir)"
        if [[ "$(state_get port)" != "$native_port" ]]; then
            die "$label started by this script (pid $pid) uses port $(state_get port), not $native_port; stop it first"
        fi
        if cql_answers "$native_port"; then
            log "$label: already running (pid $pid, started by this script), CQL on $address:$native_port"
            return
        fi
        log "$label: already starting (pid $pid, started by this script); waiting for CQL"
        wait_for_cql "$pid" "$data_dir" "$(now_ms)"
        log "$label: CQL answers on $address:$native_port"
        return
    fi
    local data_dir=""
    if [[ -f "$state_file" ]]; then
        if $keep_data && [[ -d "$(state_get data_dir)" ]]; then
            data_dir="$(state_get data_dir)"   # a node that died: back on its own data
        else
            forget_node   # stale state of a node that died
        fi
    fi

    if port_open "$native_port"; then
        log "$label: something already answers on $address:$native_port; not starting Cassandra (and not managing the existing server)"
        return
    fi

    local begin_ms java
    begin_ms="$(now_ms)"
    find_java
    fetch_jars
    $tls && make_certificates

    local again=false
    if [[ -n "$data_dir" ]]; then
        again=true
    else
        data_dir="$(mktemp -d "${TMPDIR:-/tmp}/asyncfeeds-cassandra.XXXXXX")"
        mkdir -p "$data_dir/logs" "$data_dir/triggers"
        render_config "$data_dir"
    fi

    local -a opts
    mapfile -t opts < <(jvm_options "$data_dir")

    mkdir -p "$state_dir"
    local pid_file="$data_dir/cassandra.pid" launch_ms
    rm -f -- "$pid_file"
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
            </dev/null >>"$data_dir/stdout.log" 2>&1
    ) &
    local tries=0
    until [[ -s "$pid_file" ]]; do
        (( ++tries < 100 )) || start_failed "$data_dir" "the JVM did not start"
        sleep 0.05
    done
    local pid
    pid="$(cat "$pid_file")"
    printf 'pid=%s\ndata_dir=%s\nport=%s\naddress=%s\n' "$pid" "$data_dir" "$native_port" "$address" >"$state_file"
    if $again; then
        log "$label: started again on its data (pid $pid), data in $data_dir; waiting for CQL on $address:$native_port"
    else
        log "$label: started Cassandra $cassandra_version (pid $pid), data in $data_dir; waiting for CQL on $address:$native_port"
    fi

    wait_for_cql "$pid" "$data_dir" "$launch_ms"
    log "$label: CQL answers on $address:$native_port; start-up took $(secs_since "$launch_ms") (total $(secs_since "$begin_ms") including Java/jar checks)"
}

stop_node() {
    if ! our_node_running; then
        if [[ -f "$state_file" ]]; then
            log "$label: the node started by this script is no longer running; cleaning up"
            forget_node
        else
            log "$label: none started by this script; nothing to stop"
        fi
        return
    fi
    local pid begin_ms
    pid="$(state_get pid)"
    begin_ms="$(now_ms)"
    log "$label: stopping (pid $pid)"
    # SIGTERM runs Cassandra's shutdown hook (drain) and the JVM exits.
    kill -TERM "$pid" 2>/dev/null || true
    while kill -0 "$pid" 2>/dev/null; do
        if (( $(now_ms) - begin_ms >= 60000 )); then
            log "$label: still running after 60s; killing it"
            kill -KILL "$pid" 2>/dev/null || true
        fi
        sleep 0.2
    done
    forget_node
    log "$label: stopped after $(secs_since "$begin_ms")"
}

# ---------------------------------------------------------------------------
# Subcommands

cmd_start() { use_single; start_node; }
cmd_stop() { use_single; stop_node; }

# Exit status: 0 when a CQL server answers (ours or not), 1 when the port is
# taken by something else, 3 when nothing runs.
cmd_status() {
    use_single
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

cluster_size_file="$state_dir/cassandra-cluster.size"

# start-cluster N: every node at once (they are all seeds with fixed tokens),
# then wait for each. A node that runs is left alone; one that died comes back.
cmd_start_cluster() {
    local n="${1:-2}" i pids=() rc=0
    [[ "$n" =~ ^[0-9]+$ ]] && (( n >= 2 && n <= 9 )) || die "start-cluster takes a node count from 2 to 9"
    if [[ -f "$cluster_size_file" && "$(cat "$cluster_size_file")" != "$n" ]]; then
        die "a $(cat "$cluster_size_file")-node cluster of this script exists; stop-cluster first"
    fi
    local java
    find_java
    fetch_jars
    mkdir -p "$state_dir"
    echo "$n" >"$cluster_size_file"
    for (( i = 1; i <= n; i++ )); do
        ( use_cluster_node "$i" "$n"; start_node ) &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i" || rc=1; done
    (( rc == 0 )) || die "the cluster did not start"
}

cmd_stop_cluster() {
    local n i pids=()
    n="$(cat "$cluster_size_file" 2>/dev/null || echo 0)"
    if (( n == 0 )); then
        log "no cluster started by this script; nothing to stop"
        return
    fi
    for (( i = 1; i <= n; i++ )); do
        ( use_cluster_node "$i" "$n"; stop_node ) &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i" || true; done
    rm -f -- "$cluster_size_file"
}

# Java and the jars, once, before several nodes start side by side.
cmd_prepare() {
    local java
    find_java
    fetch_jars
    log "Java and Cassandra $cassandra_version jars ready"
}

cmd_start_secure() { use_secure; start_node; }

cmd_stop_secure() {
    use_secure
    stop_node
    our_node_running || rm -rf -- "$secure_dir"
}

case "${1:-}" in
    start) cmd_start ;;
    stop) cmd_stop ;;
    status) cmd_status ;;
    start-cluster) cmd_start_cluster "${2:-2}" ;;
    stop-cluster) cmd_stop_cluster ;;
    start-secure) cmd_start_secure ;;
    prepare) cmd_prepare ;;
    stop-secure) cmd_stop_secure ;;
    *)
        echo "usage: $0 start|stop|status|start-cluster [N]|stop-cluster|start-secure|stop-secure|prepare" >&2
        exit 2
        ;;
esac
