#!/usr/bin/env bash
# deploy/kafka/kafka.sh: provision and run a real single-node Apache Kafka broker
# (KRaft mode, combined broker+controller, no ZooKeeper) on loopback, from plain
# jars fetched from Maven Central (see pom.xml next to this script; the Kafka
# version is pinned there as <kafka.version>).
#
# Usage: kafka.sh <command> [args]
#   fetch                    download the broker jars into the cache (idempotent)
#   start [--fresh]          fetch if needed, format storage once, start broker, wait until ready;
#                            --fresh: if no broker is running, empty the data dir first (make test
#                            and make bench: their topics are throwaway, and a data dir grown by
#                            earlier runs, recovered after an unclean stop, can take minutes)
#   stop                     graceful stop (SIGTERM, then SIGKILL after KAFKA_STOP_TIMEOUT)
#   restart                  stop + start
#   status                   print running/stopped; exit 0 if running, 3 otherwise
#   reset                    stop and delete the run dir (data, logs, config); keeps the jar cache
#   topics ARGS...           org.apache.kafka.tools.TopicCommand against the broker,
#                            e.g. kafka.sh topics --create --topic x --partitions 4
#   console-consume TOPIC [ARGS...]   print a topic from the beginning (Ctrl-C to stop)
#   console-produce TOPIC [ARGS...]   read lines from stdin into a topic
#   run-class CLASS [ARGS...]         run any class from the Kafka jars (tools log config)
#   logs [N]                 tail the last N (default 50) lines of the broker log
#   bootstrap                print the bootstrap address (127.0.0.1:PORT)
#   pid                      print the broker's pid; exit 3 if it is not running
#                            (fault tests freeze it with SIGSTOP/SIGCONT)
#
# Environment (all optional):
#   INGESTA_CACHE          cache root                       (default: $HOME/.cache/ingesta)
#                          jars go to $INGESTA_CACHE/kafka/<version>/libs
#   INGESTA_KAFKA_DIR      run dir: config/, data/, logs/, kafka.pid
#                                                           (default: $INGESTA_CACHE/kafka-run)
#   KAFKA_PORT             PLAINTEXT listener port on 127.0.0.1       (default: 9092)
#   KAFKA_CONTROLLER_PORT  KRaft CONTROLLER listener port on 127.0.0.1 (default: 9093)
#   KAFKA_HEAP_OPTS        broker heap flags                (default: -Xms512m -Xmx1g)
#   KAFKA_JVM_OPTS         extra JVM flags for the broker   (default: none)
#   KAFKA_START_TIMEOUT    seconds to wait for readiness    (default: 180)
#   KAFKA_STOP_TIMEOUT     seconds to wait after SIGTERM    (default: 30)
#   JAVA_HOME / JAVA       Java 17+ to use                  (default: java on PATH)
#   MVN                    Maven executable                 (default: mvn)
#
# The broker only ever binds/advertises 127.0.0.1.
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
POM="$SCRIPT_DIR/pom.xml"

KAFKA_VERSION="$(sed -n 's:.*<kafka\.version>\([^<]*\)</kafka\.version>.*:\1:p' "$POM" | head -n1)"
[[ -n "$KAFKA_VERSION" ]] || { echo "kafka: cannot read <kafka.version> from $POM" >&2; exit 1; }

CACHE_ROOT="${INGESTA_CACHE:-$HOME/.cache/ingesta}"
DIST_DIR="$CACHE_ROOT/kafka/$KAFKA_VERSION"
LIBS="$DIST_DIR/libs"
FETCH_MARKER="$DIST_DIR/.fetch-complete"

RUN_DIR="${INGESTA_KAFKA_DIR:-$CACHE_ROOT/kafka-run}"
CONF_DIR="$RUN_DIR/config"
DATA_DIR="$RUN_DIR/data"
LOG_DIR="$RUN_DIR/logs"
PID_FILE="$RUN_DIR/kafka.pid"
RUN_MARKER="$RUN_DIR/.ingesta-kafka-run"
SERVER_PROPS="$CONF_DIR/server.properties"
BROKER_LOG4J="$CONF_DIR/log4j2.xml"
TOOLS_LOG4J="$CONF_DIR/tools-log4j2.xml"
SERVER_LOG="$LOG_DIR/server.log"

HOST=127.0.0.1
KAFKA_PORT="${KAFKA_PORT:-9092}"
KAFKA_CONTROLLER_PORT="${KAFKA_CONTROLLER_PORT:-9093}"
KAFKA_HEAP_OPTS="${KAFKA_HEAP_OPTS:--Xms512m -Xmx1g}"
KAFKA_JVM_OPTS="${KAFKA_JVM_OPTS:-}"
KAFKA_START_TIMEOUT="${KAFKA_START_TIMEOUT:-180}"
KAFKA_STOP_TIMEOUT="${KAFKA_STOP_TIMEOUT:-30}"
MVN="${MVN:-mvn}"
if [[ -n "${JAVA:-}" ]]; then :
elif [[ -n "${JAVA_HOME:-}" && -x "$JAVA_HOME/bin/java" ]]; then JAVA="$JAVA_HOME/bin/java"
else JAVA=java
fi
BOOTSTRAP="$HOST:$KAFKA_PORT"

log() { echo "kafka: $*"; }
die() { echo "kafka: error: $*" >&2; exit 1; }
now_ms() { date +%s%3N; }

# ---------------------------------------------------------------- helpers

check_java() {
    command -v "$JAVA" >/dev/null 2>&1 || die "java not found (set JAVA_HOME or JAVA)"
    local v major
    v="$("$JAVA" -version 2>&1 | sed -n 's/.*version "\([^"]*\)".*/\1/p' | head -n1)"
    major="${v%%.*}"
    [[ "$major" == 1 ]] && major="$(echo "$v" | cut -d. -f2)"
    [[ "$major" =~ ^[0-9]+$ && "$major" -ge 17 ]] || die "Kafka $KAFKA_VERSION needs Java 17+, found '$v' ($JAVA)"
}

pom_hash() { sha256sum "$POM" | cut -d' ' -f1; }

fetched() {
    [[ -f "$FETCH_MARKER" && -d "$LIBS" ]] && [[ "$(head -n1 "$FETCH_MARKER")" == "pom-sha256=$(pom_hash)" ]]
}

cmd_fetch() {
    if fetched; then
        [[ "${1:-}" == quiet ]] || log "jars for Kafka $KAFKA_VERSION already in $LIBS"
        return 0
    fi
    command -v "$MVN" >/dev/null 2>&1 || die "mvn not found (needed once to fetch the Kafka jars)"
    mkdir -p "$DIST_DIR"
    (
        # Serialize concurrent fetches of the same version.
        flock 8
        fetched && exit 0
        log "fetching Kafka $KAFKA_VERSION jars from Maven Central into $LIBS"
        local t0 tmp fetch_log
        t0="$(now_ms)"
        tmp="$DIST_DIR/libs.tmp.$$"
        fetch_log="$DIST_DIR/fetch.log"
        rm -rf "$tmp"
        if ! "$MVN" -q -B -Dstyle.color=never -f "$POM" \
                dependency:copy-dependencies \
                -DoutputDirectory="$tmp" -DincludeScope=runtime >"$fetch_log" 2>&1; then
            rm -rf "$tmp"
            tail -n 50 "$fetch_log" >&2 || true
            die "mvn dependency:copy-dependencies failed (full output: $fetch_log)"
        fi
        [[ -f "$tmp/kafka_2.13-$KAFKA_VERSION.jar" ]] || { rm -rf "$tmp"; die "fetch incomplete: kafka_2.13-$KAFKA_VERSION.jar missing"; }
        rm -f "$FETCH_MARKER"
        rm -rf "$LIBS"
        mv "$tmp" "$LIBS"
        {
            echo "pom-sha256=$(pom_hash)"
            echo "kafka.version=$KAFKA_VERSION"
            echo "fetched=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
            (cd "$LIBS" && ls -1 *.jar)
        } >"$FETCH_MARKER.tmp"
        mv "$FETCH_MARKER.tmp" "$FETCH_MARKER"
        log "fetched $(ls -1 "$LIBS" | wc -l) jars ($(du -sh "$LIBS" | cut -f1)) in $(( ($(now_ms) - t0) ))ms"
    ) 8>"$DIST_DIR/.fetch.lock"
}

# True if something accepts TCP connections on 127.0.0.1:$1.
port_open() {
    timeout 2 bash -c "exec 3<>/dev/tcp/$HOST/$1" 2>/dev/null
}

# True if process $1 exists and is not a zombie. (Do not use an empty
# /proc/PID/cmdline as the zombie test: it is also briefly empty during execve.)
proc_alive() {
    local stat state
    stat="$(cat "/proc/$1/stat" 2>/dev/null)" || return 1
    state="${stat##*) }"
    state="${state%% *}"
    [[ -n "$state" && "$state" != Z && "$state" != X ]]
}

# Prints the broker pid if our pid file points at a live kafka.Kafka process
# started with our server.properties (guards against pid reuse and zombies).
broker_pid() {
    [[ -f "$PID_FILE" ]] || return 1
    local pid
    pid="$(cat "$PID_FILE" 2>/dev/null || true)"
    [[ "$pid" =~ ^[0-9]+$ ]] || return 1
    proc_alive "$pid" || return 1
    local cmdline
    cmdline="$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null || true)"
    [[ "$cmdline" == *" kafka.Kafka $SERVER_PROPS"* ]] || return 1
    echo "$pid"
}

classpath() { echo "$LIBS/*"; }

ensure_run_dir() {
    if [[ -d "$RUN_DIR" && ! -f "$RUN_MARKER" ]] && [[ -n "$(ls -A "$RUN_DIR" 2>/dev/null)" ]]; then
        die "$RUN_DIR exists, is not empty and was not created by kafka.sh; refusing to use it"
    fi
    # Marker first, so the dir is never non-empty without it (concurrent starts).
    mkdir -p "$RUN_DIR"
    [[ -f "$RUN_MARKER" ]] || echo "created by deploy/kafka/kafka.sh; safe to delete (kafka.sh reset)" >"$RUN_MARKER"
    mkdir -p "$CONF_DIR" "$DATA_DIR" "$LOG_DIR"
}

write_tools_log4j() {
    mkdir -p "$CONF_DIR"
    cat >"$TOOLS_LOG4J" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka/kafka.sh: CLI tools log WARN+ to stderr. -->
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <Console name="STDERR" target="SYSTEM_ERR">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
    </Console>
  </Appenders>
  <Loggers>
    <Root level="warn"><AppenderRef ref="STDERR"/></Root>
  </Loggers>
</Configuration>
EOF
}

write_configs() {
    ensure_run_dir
    write_tools_log4j
    cat >"$BROKER_LOG4J" <<'EOF'
<?xml version="1.0" encoding="UTF-8"?>
<!-- Generated by deploy/kafka/kafka.sh: broker logs go to ${sys:kafka.logs.dir}.
     shutdownHook="disable": Kafka logs its whole shutdown from its own JVM shutdown
     hook; with log4j2's hook enabled the logger context stops first and the
     shutdown log is lost ("Unable to register Log4j shutdown hook ... SimpleLogger"). -->
<Configuration status="warn" shutdownHook="disable">
  <Appenders>
    <RollingFile name="server" fileName="${sys:kafka.logs.dir}/server.log"
                 filePattern="${sys:kafka.logs.dir}/server.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="100 MB"/></Policies>
      <DefaultRolloverStrategy max="5"/>
    </RollingFile>
    <RollingFile name="stateChange" fileName="${sys:kafka.logs.dir}/state-change.log"
                 filePattern="${sys:kafka.logs.dir}/state-change.log.%i">
      <PatternLayout pattern="[%d] %p %m (%c)%n"/>
      <Policies><SizeBasedTriggeringPolicy size="50 MB"/></Policies>
      <DefaultRolloverStrategy max="2"/>
    </RollingFile>
  </Appenders>
  <Loggers>
    <Root level="info"><AppenderRef ref="server"/></Root>
    <Logger name="state.change.logger" level="info" additivity="false">
      <AppenderRef ref="stateChange"/>
    </Logger>
    <Logger name="kafka.request.logger" level="warn"/>
    <Logger name="kafka.network.RequestChannel$" level="warn"/>
    <Logger name="org.apache.kafka.controller" level="info"/>
  </Loggers>
</Configuration>
EOF
    cat >"$SERVER_PROPS" <<EOF
# Generated by deploy/kafka/kafka.sh (rewritten on every start; edit the script, not this file).
# Single-node KRaft: this process is both broker and controller, loopback only.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@$HOST:$KAFKA_CONTROLLER_PORT
listeners=PLAINTEXT://$HOST:$KAFKA_PORT,CONTROLLER://$HOST:$KAFKA_CONTROLLER_PORT
advertised.listeners=PLAINTEXT://$HOST:$KAFKA_PORT
inter.broker.listener.name=PLAINTEXT
controller.listener.names=CONTROLLER
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT

log.dirs=$DATA_DIR

# Topics: created explicitly only.
num.partitions=1
default.replication.factor=1
min.insync.replicas=1
auto.create.topics.enable=false
delete.topic.enable=true

# Internal topics sized for one node (8 offsets partitions keeps startup fast).
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=8
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
group.initial.rebalance.delay.ms=0

# Modest retention so tests and benchmarks don't fill the disk.
log.retention.hours=168
log.retention.bytes=1073741824
log.segment.bytes=268435456
log.retention.check.interval.ms=60000

# Both cores for loading logs at start: after an unclean stop every partition is recovered.
num.recovery.threads.per.data.dir=2
EOF
}

# Run a Kafka class in the foreground with the quiet tools log config.
run_tool() {
    local class="$1"; shift
    cmd_fetch quiet
    check_java
    [[ -f "$TOOLS_LOG4J" ]] || write_tools_log4j
    "$JAVA" -Xmx512m -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -Djava.awt.headless=true \
        -Dlog4j2.configurationFile="file:$TOOLS_LOG4J" \
        -cp "$(classpath)" "$class" "$@"
}

format_storage() {
    if [[ -f "$DATA_DIR/meta.properties" ]]; then
        return 0
    fi
    local cluster_id
    if [[ -s "$RUN_DIR/cluster.id" ]]; then
        cluster_id="$(cat "$RUN_DIR/cluster.id")"
    else
        cluster_id="$(run_tool kafka.tools.StorageTool random-uuid | tail -n1)"
        echo "$cluster_id" >"$RUN_DIR/cluster.id"
    fi
    log "formatting KRaft storage in $DATA_DIR (cluster id $cluster_id)"
    local out
    if ! out="$(run_tool kafka.tools.StorageTool format -t "$cluster_id" -c "$SERVER_PROPS" 2>&1)"; then
        echo "$out" >&2
        die "storage format failed"
    fi
}

show_log_tail() {
    local f
    for f in "$SERVER_LOG" "$LOG_DIR/stdout.log"; do
        if [[ -s "$f" ]]; then
            echo "kafka: ---- last 50 lines of $f ----" >&2
            tail -n 50 "$f" >&2
        fi
    done
}

# Wait until the broker accepts connections, has logged "Kafka Server started"
# since byte offset $2 of server.log (i.e. broker unfenced), and answers a
# metadata request (TopicCommand --list).
wait_ready() {
    local pid="$1" log_offset="$2" t0="$3"
    local deadline=$(( $(date +%s) + KAFKA_START_TIMEOUT ))
    local started=0
    while :; do
        if ! proc_alive "$pid"; then
            rm -f "$PID_FILE"
            show_log_tail
            die "broker process $pid exited during startup"
        fi
        if [[ $started == 0 ]] && port_open "$KAFKA_PORT"; then
            local size off
            size="$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)"
            off="$log_offset"; (( size < off )) && off=0   # log rolled over
            if tail -c "+$((off + 1))" "$SERVER_LOG" 2>/dev/null | grep -q "Kafka Server started"; then
                started=1
            fi
        fi
        if [[ $started == 1 ]]; then
            if run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" --list >/dev/null 2>&1; then
                log "ready on $BOOTSTRAP (pid $pid, Kafka $KAFKA_VERSION) in $(( $(now_ms) - t0 ))ms"
                return 0
            fi
        fi
        if (( $(date +%s) >= deadline )); then
            show_log_tail
            echo "kafka: broker not ready after ${KAFKA_START_TIMEOUT}s; stopping it" >&2
            cmd_stop >&2 || true
            die "start failed (logs in $LOG_DIR)"
        fi
        sleep 0.25
    done
}

# ---------------------------------------------------------------- commands

cmd_start() {
    local fresh=0
    case "${1:-}" in
        --fresh) fresh=1 ;;
        "") ;;
        *) die "usage: kafka.sh start [--fresh]" ;;
    esac
    local t0; t0="$(now_ms)"
    cmd_fetch quiet
    check_java
    ensure_run_dir
    # Serialize concurrent starts. fd 9 is closed for the broker (9>&-) so it
    # does not inherit and hold the lock.
    exec 9>"$RUN_DIR/.start.lock"
    flock 9

    local pid
    if pid="$(broker_pid)"; then
        if port_open "$KAFKA_PORT"; then
            log "already running on $BOOTSTRAP (pid $pid, Kafka $KAFKA_VERSION)"
            return 0
        fi
        log "broker process $pid alive but $BOOTSTRAP not open yet; waiting"
        wait_ready "$pid" 0 "$t0"
        return 0
    fi
    if [[ -f "$PID_FILE" ]]; then
        log "removing stale pid file ($(cat "$PID_FILE" 2>/dev/null || true))"
        rm -f "$PID_FILE"
    fi
    port_open "$KAFKA_PORT" && die "$BOOTSTRAP is already in use by a process not started by kafka.sh (run dir $RUN_DIR)"
    port_open "$KAFKA_CONTROLLER_PORT" && die "$HOST:$KAFKA_CONTROLLER_PORT (controller port) is already in use by another process"

    if [[ $fresh == 1 && -d "$DATA_DIR" ]]; then
        log "emptying $DATA_DIR ($(find "$DATA_DIR" -mindepth 1 -maxdepth 1 -type d | wc -l) partition dirs, $(du -sh "$DATA_DIR" | cut -f1)) before a fresh start"
        rm -rf -- "$DATA_DIR"
    fi
    write_configs
    format_storage

    local log_offset
    log_offset="$(stat -c %s "$SERVER_LOG" 2>/dev/null || echo 0)"
    log "starting Kafka $KAFKA_VERSION on $BOOTSTRAP (run dir $RUN_DIR)"
    # shellcheck disable=SC2086  # heap/jvm opts are intentionally word-split
    nohup "$JAVA" $KAFKA_HEAP_OPTS \
        -server -XX:+UseG1GC -XX:MaxGCPauseMillis=20 -XX:InitiatingHeapOccupancyPercent=35 \
        -XX:+ExplicitGCInvokesConcurrent -Djava.awt.headless=true \
        $KAFKA_JVM_OPTS \
        -Dkafka.logs.dir="$LOG_DIR" \
        -Dlog4j2.configurationFile="file:$BROKER_LOG4J" \
        -cp "$(classpath)" kafka.Kafka "$SERVER_PROPS" \
        </dev/null >>"$LOG_DIR/stdout.log" 2>&1 9>&- &
    pid=$!
    echo "$pid" >"$PID_FILE"
    wait_ready "$pid" "$log_offset" "$t0"
}

cmd_stop() {
    local pid
    if ! pid="$(broker_pid)"; then
        [[ -f "$PID_FILE" ]] && rm -f "$PID_FILE"
        log "not running"
        return 0
    fi
    log "stopping broker (pid $pid)"
    local t0; t0="$(now_ms)"
    kill -TERM "$pid" 2>/dev/null || true
    local deadline=$(( $(date +%s) + KAFKA_STOP_TIMEOUT ))
    while proc_alive "$pid"; do
        if (( $(date +%s) >= deadline )); then
            log "still running after ${KAFKA_STOP_TIMEOUT}s; sending SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
            local i
            for i in $(seq 1 50); do proc_alive "$pid" || break; sleep 0.1; done
            proc_alive "$pid" && die "pid $pid survived SIGKILL"
            break
        fi
        sleep 0.2
    done
    rm -f "$PID_FILE"
    log "stopped in $(( $(now_ms) - t0 ))ms"
}

cmd_status() {
    local pid
    if pid="$(broker_pid)"; then
        if port_open "$KAFKA_PORT"; then
            log "running on $BOOTSTRAP (pid $pid, Kafka $KAFKA_VERSION, run dir $RUN_DIR)"
            return 0
        fi
        log "process $pid alive but $BOOTSTRAP not accepting connections (starting or unhealthy)"
        return 3
    fi
    log "stopped (Kafka $KAFKA_VERSION, run dir $RUN_DIR)"
    return 3
}

cmd_reset() {
    cmd_stop
    if [[ -d "$RUN_DIR" ]]; then
        case "$RUN_DIR" in
            / | "$HOME" | "$HOME/" | "$CACHE_ROOT" | "$CACHE_ROOT/") die "refusing to delete $RUN_DIR" ;;
        esac
        if [[ ! -f "$RUN_MARKER" && -n "$(ls -A "$RUN_DIR" 2>/dev/null)" ]]; then
            die "$RUN_DIR was not created by kafka.sh; refusing to delete it"
        fi
        rm -rf -- "$RUN_DIR"
        log "deleted $RUN_DIR (jar cache kept in $DIST_DIR)"
    else
        log "nothing to delete ($RUN_DIR does not exist)"
    fi
}

usage() {
    sed -n '2,/^set -euo pipefail/p' "${BASH_SOURCE[0]}" | sed -e '$d' -e 's/^# \{0,1\}//'
}

main() {
    local cmd="${1:-}"
    [[ $# -gt 0 ]] && shift
    case "$cmd" in
        fetch) cmd_fetch ;;
        start) cmd_start "$@" ;;
        stop) cmd_stop ;;
        restart) cmd_stop; cmd_start ;;
        status) cmd_status ;;
        reset) cmd_reset ;;
        topics) run_tool org.apache.kafka.tools.TopicCommand --bootstrap-server "$BOOTSTRAP" "$@" ;;
        console-consume)
            [[ $# -ge 1 ]] || die "usage: kafka.sh console-consume TOPIC [ARGS...]"
            local topic="$1"; shift
            run_tool org.apache.kafka.tools.consumer.ConsoleConsumer --bootstrap-server "$BOOTSTRAP" \
                --topic "$topic" --from-beginning "$@" ;;
        console-produce)
            [[ $# -ge 1 ]] || die "usage: kafka.sh console-produce TOPIC [ARGS...]"
            local topic="$1"; shift
            run_tool org.apache.kafka.tools.ConsoleProducer --bootstrap-server "$BOOTSTRAP" \
                --topic "$topic" "$@" ;;
        run-class)
            [[ $# -ge 1 ]] || die "usage: kafka.sh run-class CLASS [ARGS...]"
            run_tool "$@" ;;
        logs) tail -n "${1:-50}" "$SERVER_LOG" ;;
        bootstrap) echo "$BOOTSTRAP" ;;
        pid) broker_pid || { echo "kafka: not running" >&2; exit 3; } ;;
        -h | --help | help) usage ;;
        "") usage >&2; exit 2 ;;
        *) echo "kafka: unknown command '$cmd'" >&2; usage >&2; exit 2 ;;
    esac
}

main "$@"
