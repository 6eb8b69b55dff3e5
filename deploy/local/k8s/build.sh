#!/usr/bin/env bash
# Builds the single-node cluster's programs from the Go module proxy into the cache folder, keyed by version;
# a second run finds them and returns at once. Prints the directory holding them all (symlinks).
#   build.sh            kubernetes (apiserver, controller-manager, scheduler, kubelet, kube-proxy, kubectl),
#                       etcd, coredns, traefik, pause
#   build.sh STEP...    only those (kubernetes, etcd, coredns, traefik, pause); `build.sh bin` builds nothing
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
store=$cache/k8s
log() { printf 'k8s build: %s\n' "$*" >&2; }

command -v go >/dev/null 2>&1 || { log "Go is needed to build the cluster's programs"; exit 1; }
# one build at a time (CI's background prebuild and a step that needs the programs): the second waits
mkdir -p "$store"
exec {lock_fd}>"$store/.build.lock"
if ! flock -n "$lock_fd"; then log "waiting for another build to finish"; flock "$lock_fd"; fi
export GOFLAGS=-mod=mod CGO_ENABLED=0

# go_module <work dir> <module path> <version>: a module of our own that requires the named one
go_module() {
  local dir=$1 module=$2 version=$3
  mkdir -p "$dir"
  [ -f "$dir/go.mod" ] || (cd "$dir" && go mod init pagestream.local/build >/dev/null 2>&1)
  (cd "$dir" && go mod edit -require="$module@$version")
}

kubernetes() {
  local out=$store/kubernetes-$K8S_VERSION
  local cmds=(kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl)
  local missing=0 c
  for c in "${cmds[@]}"; do [ -x "$out/$c" ] || missing=1; done
  [ $missing -eq 0 ] && return 0
  log "building kubernetes $K8S_VERSION (about 10 minutes on 2 cores, downloads first)"
  local dir=$store/src/kubernetes-$K8S_VERSION
  go_module "$dir" k8s.io/kubernetes "$K8S_VERSION"
  # k8s.io/kubernetes requires its staging modules at v0.0.0 and replaces them by ./staging paths: name them
  # at the published v0.x.y instead
  local modfile staging minor=${K8S_VERSION#v1.}
  modfile=$(cd "$dir" && go mod download -json "k8s.io/kubernetes@$K8S_VERSION" \
    | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  staging=$(sed -n 's#^\s*\(k8s.io/[a-z0-9-]*\) => ./staging/.*#\1#p' "$modfile")
  for m in $staging; do
    (cd "$dir" && go mod edit -replace="$m=$m@v0.$minor")
  done
  local pkgs=() ver_pkg=k8s.io/component-base/version
  for c in "${cmds[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
  local major=${K8S_VERSION#v}; major=${major%%.*}
  local ldflags="-s -w -X $ver_pkg.gitVersion=$K8S_VERSION -X $ver_pkg.gitMajor=$major"
  ldflags+=" -X $ver_pkg.gitMinor=${minor%%.*} -X $ver_pkg.gitTreeState=clean"
  ldflags+=" -X $ver_pkg.buildDate=$(date -u +%Y-%m-%dT%H:%M:%SZ)"
  ldflags+=" -X k8s.io/client-go/pkg/version.gitVersion=$K8S_VERSION"
  mkdir -p "$out.tmp"
  (cd "$dir" && go build -trimpath -ldflags "$ldflags" -o "$out.tmp/" "${pkgs[@]}")
  rm -rf "$out"; mv "$out.tmp" "$out"
}

etcd() {
  local out=$store/etcd-$ETCD_VERSION
  [ -x "$out/etcd" ] && return 0
  log "building etcd $ETCD_VERSION"
  local dir=$store/src/etcd-$ETCD_VERSION
  go_module "$dir" go.etcd.io/etcd/server/v3 "$ETCD_VERSION"
  cat > "$dir/main.go" <<'GO'
package main

import (
	"os"

	"go.etcd.io/etcd/server/v3/etcdmain"
)

func main() { etcdmain.Main(os.Args) }
GO
  mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/etcd.tmp" . && mv "$out/etcd.tmp" "$out/etcd")
}

coredns() {
  local out=$store/coredns-$COREDNS_VERSION
  [ -x "$out/coredns" ] && return 0
  log "building coredns $COREDNS_VERSION (the plugins the cluster's Corefile uses)"
  local dir=$store/src/coredns-$COREDNS_VERSION
  go_module "$dir" github.com/coredns/coredns "$COREDNS_VERSION"
  # only the plugins of the cluster's Corefile: the full set pulls in every cloud SDK
  local plugins=(errors health ready kubernetes forward cache loop reload loadbalance log)
  {
    echo 'package main'
    echo
    echo 'import ('
    echo '	"github.com/coredns/coredns/core/dnsserver"'
    echo '	"github.com/coredns/coredns/coremain"'
    for p in "${plugins[@]}"; do echo "	_ \"github.com/coredns/coredns/plugin/$p\""; done
    echo ')'
    echo
    echo 'func main() {'
    echo '	_ = dnsserver.Directives'
    echo '	coremain.Run()'
    echo '}'
  } > "$dir/main.go"
  mkdir -p "$out"
  (cd "$dir" && go build -trimpath -ldflags "-s -w" -o "$out/coredns.tmp" . && mv "$out/coredns.tmp" "$out/coredns")
}

traefik() {
  local out=$store/traefik-$TRAEFIK_VERSION
  [ -x "$out/traefik" ] && return 0
  log "building traefik $TRAEFIK_VERSION (ingress controller)"
  local dir=$store/src/traefik-$TRAEFIK_VERSION
  mkdir -p "$dir" "$out"
  # traefik's go.mod carries replace and exclude directives that `go install pkg@version` refuses: build in a
  # module that repeats them
  go_module "$dir" github.com/traefik/traefik/v3 "$TRAEFIK_VERSION"
  local modfile
  modfile=$(cd "$dir" && go mod download -json "github.com/traefik/traefik/v3@$TRAEFIK_VERSION" \
    | sed -n 's/^\s*"GoMod": "\(.*\)",$/\1/p')
  awk '/^replace \($/ {inblock=1; next} inblock && /^\)/ {inblock=0; next}
       inblock {print} /^replace [^(]/ {sub(/^replace /, ""); print}' "$modfile" | while read -r line; do
    [ -n "$line" ] || continue
    local from to
    from=$(echo "$line" | awk '{print $1}'); to=$(echo "$line" | sed 's/^[^=]*=> *//' | awk '{print $1"@"$2}')
    (cd "$dir" && go mod edit -replace="$from=$to")
  done
  local exclusion
  for exclusion in $(sed -n 's/^exclude \([^ ]*\) \([^ ]*\)$/\1@\2/p' "$modfile"); do
    (cd "$dir" && go mod edit -exclude="$exclusion")
  done
  local v=github.com/traefik/traefik/v3/pkg/version
  (cd "$dir" && go build -trimpath -ldflags "-s -w -X $v.Version=$TRAEFIK_VERSION" -o "$out/traefik.tmp" \
    github.com/traefik/traefik/v3/cmd/traefik && mv "$out/traefik.tmp" "$out/traefik")
}

pause() {
  local out=$store/pause-$PAUSE_VERSION
  [ -x "$out/pause" ] && return 0
  log "building pause $PAUSE_VERSION"
  mkdir -p "$out"
  (cd "$here/pause" && go build -trimpath -ldflags "-s -w" -o "$out/pause.tmp" . && mv "$out/pause.tmp" "$out/pause")
}

# bin: one directory of links to the versioned programs, what the cluster scripts put on PATH
bin() {
  local b=$store/bin
  mkdir -p "$b"
  local c
  for c in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    ln -sfn "$store/kubernetes-$K8S_VERSION/$c" "$b/$c"
  done
  ln -sfn "$store/etcd-$ETCD_VERSION/etcd" "$b/etcd"
  ln -sfn "$store/coredns-$COREDNS_VERSION/coredns" "$b/coredns"
  ln -sfn "$store/traefik-$TRAEFIK_VERSION/traefik" "$b/traefik"
  ln -sfn "$store/pause-$PAUSE_VERSION/pause" "$b/pause"
  echo "$b"
}

if [ $# -eq 0 ]; then set -- pause etcd kubernetes coredns traefik; fi
for step in "$@"; do [ "$step" = bin ] || "$step"; done
bin
