#!/usr/bin/env bash
# pagestream with Docker: redpanda-compose.yml (Redpanda, Console, topic set-up, the five roles).
#   docker.sh available   exit 0 when a Docker engine with compose v2 answers
#   docker.sh mode        print docker when compose can run here (engine answers, its images are here or can be
#                         pulled), local otherwise, with the reason in one line on stderr (make up picks by it)
#   docker.sh running     exit 0 when this compose project has containers (make down and make logs use it)
#   docker.sh image       build the one image (IMAGE, default pagestream:dev); where the public Node image can
#                         be neither found nor pulled, on bases built here (deploy/local/base-images.sh)
#   docker.sh up          image, then everything, returns when every role is healthy
#   docker.sh down        stop everything and delete the broker's volume
#   docker.sh status      what runs, with health
#   docker.sh logs [svc]  follow the logs (of one service)
# PAGESTREAM_COMPOSE_OVERRIDES: compose files (colon-separated) applied over redpanda-compose.yml.
# Host ports: PAGESTREAM_{KAFKA,ADMIN,CONSOLE,ANALYTICS,PRODUCER,SUPPLIER,CONSUMER,TRANSFORMER}_PORT.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PAGESTREAM_IMAGE=${IMAGE:-pagestream:dev}
roles=(analytics producer supplier consumer transformer)
dockerfile=$root/deploy/docker/Dockerfile
public_base=$(sed -n 's/^ARG NODE_IMAGE=//p' "$dockerfile")
say() { printf 'docker: %s\n' "$*" >&2; }

compose() {
  local files=(-f "$root/redpanda-compose.yml") overrides override
  IFS=: read -ra overrides <<<"${PAGESTREAM_COMPOSE_OVERRIDES:-}"
  for override in "${overrides[@]}"; do files+=(-f "$override"); done
  docker compose --project-directory "$root" "${files[@]}" "$@"
}

available() { docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; }

# here already, or pulled now; no registry answers on some machines, so a pull gets a deadline
obtainable() {
  docker image inspect "$1" >/dev/null 2>&1 || timeout "${PULL_TIMEOUT:-300}" docker pull --quiet "$1" >/dev/null 2>&1
}

mode() {
  if ! available; then say "no Docker engine with compose v2 answers; running local processes"; echo local; return; fi
  local image
  # every image of the compose file but the roles' one, which is built here
  for image in $(compose config --images | grep -vxF "$PAGESTREAM_IMAGE" | sort -u); do
    if ! obtainable "$image"; then
      say "$image can be neither found here nor pulled; running local processes instead of compose"
      echo local; return
    fi
  done
  echo docker
}

image() {
  local bases=()
  if ! obtainable "$public_base"; then
    say "$public_base can be neither found here nor pulled; building on local bases (deploy/local/base-images.sh)"
    local args
    args=$("$root/deploy/local/base-images.sh" build)
    read -ra bases <<<"$args"
  fi
  # BuildKit needs the buildx plugin, which Debian's docker.io lacks; the legacy builder needs nothing more
  docker buildx version >/dev/null 2>&1 || export DOCKER_BUILDKIT=${DOCKER_BUILDKIT:-0}
  docker build --force-rm "${bases[@]}" -f "$dockerfile" -t "$PAGESTREAM_IMAGE" "$root"
}

up() {
  image
  # named services only: --wait would count the one-shot topic set-up exiting as a failure in older compose
  compose up --detach --wait --wait-timeout 180 redpanda console "${roles[@]}"
  echo
  local producer=${PAGESTREAM_PRODUCER_PORT:-8081}
  echo "  dashboard    http://localhost:${PAGESTREAM_ANALYTICS_PORT:-8080}"
  echo "  producer     http://localhost:$producer   (curl http://localhost:$producer/publish/R2/blog)"
  echo "  console      http://localhost:${PAGESTREAM_CONSOLE_PORT:-8090}"
  echo "  Kafka API    localhost:${PAGESTREAM_KAFKA_PORT:-9092}"
  echo "  logs: make logs, stop: make down"
}

case ${1:-} in
  available) available ;;
  mode) mode ;;
  running) available && [ -n "$(compose ps --all --quiet 2>/dev/null)" ] ;;
  image) image ;;
  up) up ;;
  down) compose down --volumes --remove-orphans ;;
  status) compose ps ;;
  logs) shift; compose logs --follow --tail 100 "$@" ;;
  *) echo "usage: $0 <available|mode|running|image|up|down|status|logs [service]>" >&2; exit 2 ;;
esac
