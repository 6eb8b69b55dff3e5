#!/usr/bin/env bash
# pagestream with Docker: redpanda-compose.yml (Redpanda, Console, topic set-up, the five roles).
#   docker.sh available   exit 0 when a Docker engine with compose v2 answers (make up picks this mode then)
#   docker.sh running     exit 0 when this compose project has containers (make down and make logs use it)
#   docker.sh image       build the one image (IMAGE, default pagestream:dev)
#   docker.sh up          image, then everything, returns when every role is healthy
#   docker.sh down        stop everything and delete the broker's volume
#   docker.sh status      what runs, with health
#   docker.sh logs [svc]  follow the logs (of one service)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
export PAGESTREAM_IMAGE=${IMAGE:-pagestream:dev}
roles=(analytics producer supplier consumer transformer)
compose() { docker compose --project-directory "$root" -f "$root/redpanda-compose.yml" "$@"; }

available() { docker info >/dev/null 2>&1 && docker compose version >/dev/null 2>&1; }

image() {
  docker build -f "$root/deploy/docker/Dockerfile" -t "$PAGESTREAM_IMAGE" "$root"
}

up() {
  image
  # named services only: --wait would count the one-shot topic set-up exiting as a failure in older compose
  compose up --detach --wait --wait-timeout 180 redpanda console "${roles[@]}"
  echo
  echo "  dashboard    http://localhost:8080"
  echo "  producer     http://localhost:8081   (curl http://localhost:8081/publish/R2/blog)"
  echo "  console      http://localhost:8090"
  echo "  Kafka API    localhost:9092"
  echo "  logs: make logs, stop: make down"
}

case ${1:-} in
  available) available ;;
  running) available && [ -n "$(compose ps --all --quiet 2>/dev/null)" ] ;;
  image) image ;;
  up) up ;;
  down) compose down --volumes --remove-orphans ;;
  status) compose ps ;;
  logs) shift; compose logs --follow --tail 100 "$@" ;;
  *) echo "usage: $0 <available|image|up|down|status|logs [service]>" >&2; exit 2 ;;
esac
