#!/usr/bin/env bash
# Installs what pagestream needs on this machine, idempotently; fast when all is there.
#   setup.sh system   Debian packages to build the Kafka client (and, with --test, to run the tests)
#   setup.sh node     npm dependencies, building @confluentinc/kafka-javascript from its bundled librdkafka
#   setup.sh helm     helm from the Go module proxy into the cache folder (chart tests)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
helm_version=${HELM_VERSION:-v4.3.1}
log() { printf 'setup: %s\n' "$*" >&2; }

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
  if ! command -v apt-get >/dev/null 2>&1; then
    log "please install: ${missing[*]} (Debian names; no apt-get here)"; exit 1
  fi
  local as_root=(env DEBIAN_FRONTEND=noninteractive)
  if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null 2>&1 || { log "as root, please run: apt-get install ${missing[*]}"; exit 1; }
    as_root=(sudo env DEBIAN_FRONTEND=noninteractive)
  fi
  log "installing ${missing[*]}"
  "${as_root[@]}" apt-get update -qq
  "${as_root[@]}" apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

kafka_client_loads() {
  (cd "$root" && node -e "require('@confluentinc/kafka-javascript')" 2>/dev/null)
}

node_deps() {
  local stamp=$root/node_modules/.pagestream-installed
  local newest
  newest=$(ls -t "$root/package-lock.json" "$root/package.json" "$root"/services/*/package.json "$root"/packages/*/package.json \
    "$root/web/package.json" 2>/dev/null | head -n 1)
  if [ -f "$stamp" ] && [ "$stamp" -nt "$newest" ] && kafka_client_loads; then return 0; fi
  log "installing npm dependencies (builds librdkafka on first install, about a minute)"
  (cd "$root" && CKJS_LINKING=dynamic npm ci --no-audit --no-fund --loglevel=error)
  kafka_client_loads || { log "@confluentinc/kafka-javascript did not build; see the npm output above"; exit 1; }
  touch "$stamp"
}

helm_bin() {
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

case ${1:-} in
  system) shift; system "$@" ;;
  node) node_deps ;;
  helm) helm_bin ;;
  *) echo "usage: $0 <system [--test]|node|helm>" >&2; exit 2 ;;
esac
