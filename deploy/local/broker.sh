#!/usr/bin/env bash
# A single-node Kafka-API broker for development and tests, without Docker.
# Uses a `redpanda` binary when one is on PATH, otherwise Apache Kafka in KRaft mode
# from Maven Central jars (resolved once into a cache folder, then run with java 17+).
set -euo pipefail

usage() {
  cat <<'EOF'
Usage: deploy/local/broker.sh <up|stop|down|status|jars|run|ready>

  up      start the broker (idempotent) and return once it accepts clients
  down    stop the broker this script started and delete its data folder
  stop    stop it but keep its data, so that `up` restarts the same cluster
  status  exit 0 when the broker answers on its port, 1 otherwise
  jars    only resolve the Kafka jars into the cache folder
  run     run Kafka in the foreground (a container's entry point; no pid file)
  ready   exit 0 when the broker started here reports it has started (a container's health check)

Environment:
  KAFKA_PORT        client port on localhost                 (default 9092)
  CONTROLLER_PORT   KRaft controller (Redpanda RPC) port      (default KAFKA_PORT+10000)
  ADMIN_PORT        Redpanda admin API port                   (default KAFKA_PORT+20000, redpanda only)
  BROKER_DATA       data, logs and pid file                   (default $TMPDIR/pagestream-broker-$KAFKA_PORT)
  PAGESTREAM_CACHE  where the Kafka jars are kept             (default ~/.cache/pagestream)
  BROKER_ENGINE     kafka or redpanda                         (default redpanda when on PATH)
  BROKER_TIMEOUT    seconds to wait for readiness             (default 90)
  BROKER_LISTENERS, BROKER_ADVERTISED_LISTENERS, BROKER_PROTOCOL_MAP, BROKER_INTER_LISTENER
                    Kafka's listeners, advertised.listeners, listener.security.protocol.map (without the
                    controller) and inter.broker.listener.name (default one PLAINTEXT listener on localhost)
EOF
}

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
port=${KAFKA_PORT:-9092}
controller_port=${CONTROLLER_PORT:-$((port + 10000))}
admin_port=${ADMIN_PORT:-$((port + 20000))}
data=${BROKER_DATA:-${TMPDIR:-/tmp}/pagestream-broker-$port}
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
timeout=${BROKER_TIMEOUT:-90}
kafka_version=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$here/pom.xml")
jars=$cache/kafka-$kafka_version
pidfile=$data/broker.pid

log() { printf 'broker: %s\n' "$*" >&2; }

engine() {
  if [ -n "${BROKER_ENGINE:-}" ]; then echo "$BROKER_ENGINE"
  elif command -v redpanda >/dev/null 2>&1 && command -v rpk >/dev/null 2>&1; then echo redpanda
  else echo kafka; fi
}

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

our_pid() {
  [ -f "$pidfile" ] || return 1
  local pid; pid=$(cat "$pidfile")
  # a pid file can outlive a reboot; only a process of ours with that pid counts
  kill -0 "$pid" 2>/dev/null && grep -qaE 'kafka\.Kafka|redpanda' "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

resolve_jars() {
  if [ -f "$jars/.complete" ]; then return 0; fi
  command -v mvn >/dev/null 2>&1 || { log "Maven (mvn) is needed to fetch the Kafka jars"; exit 1; }
  log "resolving Apache Kafka $kafka_version from Maven Central into $jars"
  mkdir -p "$jars"
  mvn -q -B -Dstyle.color=never -f "$here/pom.xml" dependency:copy-dependencies \
    -DincludeScope=runtime -DoutputDirectory="$jars/libs" >&2
  touch "$jars/.complete"
}

check_java() {
  command -v java >/dev/null 2>&1 || { log "java 17 or newer is needed for the Kafka broker"; exit 1; }
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | cut -d. -f1)
  if [ "${major:-0}" -lt 17 ]; then log "java $major found; the Kafka broker needs java 17 or newer"; exit 1; fi
}

kafka_properties() {
  cat <<EOF
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=${BROKER_LISTENERS:-PLAINTEXT://127.0.0.1:$port},CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=${BROKER_ADVERTISED_LISTENERS:-PLAINTEXT://localhost:$port}
controller.listener.names=CONTROLLER
inter.broker.listener.name=${BROKER_INTER_LISTENER:-PLAINTEXT}
listener.security.protocol.map=${BROKER_PROTOCOL_MAP:-PLAINTEXT:PLAINTEXT},CONTROLLER:PLAINTEXT
log.dirs=$data/kraft
num.partitions=1
auto.create.topics.enable=false
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
transaction.state.log.num.partitions=4
group.initial.rebalance.delay.ms=0
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1
EOF
}

java_opts=(-Xms256m -Xmx1g -XX:+UseG1GC -Djava.awt.headless=true
  "-Dlog4j2.configurationFile=$here/log4j2.properties" "-Dkafka.logs.dir=$data/logs")

# the data folder with its properties and a formatted KRaft log, ready for kafka.Kafka
prepare_kafka() {
  check_java
  resolve_jars
  mkdir -p "$data/logs"
  kafka_properties >"$data/server.properties"
  if [ ! -f "$data/kraft/meta.properties" ]; then
    local cluster_id
    cluster_id=$(java -cp "$jars/libs/*" "${java_opts[@]}" kafka.tools.StorageTool random-uuid)
    java -cp "$jars/libs/*" "${java_opts[@]}" kafka.tools.StorageTool format \
      -t "$cluster_id" -c "$data/server.properties" >"$data/logs/format.log" 2>&1 \
      || { cat "$data/logs/format.log" >&2; exit 1; }
  fi
}

start_kafka() {
  prepare_kafka
  setsid nohup java -cp "$jars/libs/*" "${java_opts[@]}" kafka.Kafka "$data/server.properties" \
    >"$data/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

redpanda_config() {
  # only the Kafka API, RPC and admin listeners: no HTTP proxy or schema registry, whose default
  # ports (8081, 8082) are the producer's and the supplier's
  cat <<EOF
redpanda:
  data_directory: $data/redpanda
  developer_mode: true
  rpc_server: {address: 127.0.0.1, port: $controller_port}
  advertised_rpc_api: {address: 127.0.0.1, port: $controller_port}
  kafka_api: [{address: 127.0.0.1, port: $port}]
  advertised_kafka_api: [{address: localhost, port: $port}]
  admin: [{address: 127.0.0.1, port: $admin_port}]
rpk:
  kafka_api: {brokers: ["localhost:$port"]}
  admin_api: {addresses: ["127.0.0.1:$admin_port"]}
EOF
}

start_redpanda() {
  mkdir -p "$data/redpanda"
  redpanda_config >"$data/redpanda.yaml"
  setsid nohup rpk redpanda start --mode dev-container --smp 1 --memory 1G --config "$data/redpanda.yaml" \
    >"$data/logs/stdout.log" 2>&1 </dev/null &
  echo $! >"$pidfile"
}

ready() {
  case $(engine) in
    kafka) grep -q 'Kafka Server started' "$data/logs/server.log" 2>/dev/null ;;
    redpanda) port_open "$port" && rpk cluster health --config "$data/redpanda.yaml" 2>/dev/null | grep -q 'Healthy: *true' \
      && rpk cluster config set auto_create_topics_enabled false --config "$data/redpanda.yaml" >/dev/null 2>&1 ;;
  esac
}

up() {
  if our_pid >/dev/null && ready; then log "already running on localhost:$port"; return 0; fi
  if ! our_pid >/dev/null && port_open "$port"; then
    log "localhost:$port already accepts connections; using the broker that runs there"
    return 0
  fi
  if ! our_pid >/dev/null; then
    mkdir -p "$data/logs"
    rm -f "$data/logs/server.log"
    local started=$SECONDS
    log "starting $(engine) on localhost:$port (data in $data)"
    "start_$(engine)"
  fi
  local deadline=$((SECONDS + timeout))
  until ready; do
    if ! our_pid >/dev/null; then
      log "the broker exited during start-up; last lines of its logs:"
      tail -n 30 "$data/logs/stdout.log" "$data/logs/server.log" 2>/dev/null >&2 || true
      exit 1
    fi
    if [ $SECONDS -ge $deadline ]; then log "not ready after ${timeout}s; see $data/logs"; exit 1; fi
    sleep 0.2
  done
  log "ready on localhost:$port after $((SECONDS - ${started:-$SECONDS}))s"
}

stop() {
  local pid
  if ! pid=$(our_pid); then
    log "no broker started by this script on port $port"
    return 0
  fi
  kill -TERM "$pid"
  local deadline=$((SECONDS + 30))
  while kill -0 "$pid" 2>/dev/null; do
    if [ $SECONDS -ge $deadline ]; then log "still running after 30s; killing it"; kill -KILL "$pid"; fi
    sleep 0.2
  done
  log "stopped"
}

down() {
  stop
  rm -rf "$data"
}

case ${1:-} in
  up) up ;;
  down) down ;;
  stop) stop ;;
  status) port_open "$port" ;;
  jars) check_java; resolve_jars ;;
  run) prepare_kafka; exec java -cp "$jars/libs/*" "${java_opts[@]}" kafka.Kafka "$data/server.properties" ;;
  ready) ready ;;
  -h|--help|help) usage ;;
  *) usage >&2; exit 2 ;;
esac
