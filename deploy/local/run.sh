#!/usr/bin/env bash
# Runs the pagestream roles as local processes against the local broker (make up without Docker).
#   run.sh up | down | status | logs [role]
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
state=${PAGESTREAM_RUN:-$root/.run}
roles=(analytics producer supplier consumer transformer)
declare -A ports=([analytics]=8080 [producer]=8081 [supplier]=8082 [consumer]=8083 [transformer]=8084)
log() { printf 'run: %s\n' "$*" >&2; }

built() { [ -f "$root/services/$1/dist/server.js" ]; }
# a pid file can outlive a reboot: the pid only counts while it still runs this role's server
pid_of() {
  [ -f "$state/$1.pid" ] || return 1
  local pid; pid=$(cat "$state/$1.pid")
  kill -0 "$pid" 2>/dev/null && grep -qa "services/$1/dist/server.js" "/proc/$pid/cmdline" 2>/dev/null && echo "$pid"
}

ready() { curl -fsS -o /dev/null "http://127.0.0.1:${ports[$1]}/health/ready" 2>/dev/null; }

up() {
  mkdir -p "$state"
  local role started=()
  for role in "${roles[@]}"; do
    built "$role" || continue
    if pid_of "$role" >/dev/null; then started+=("$role"); continue; fi
    HTTP_PORT=${ports[$role]} nohup node "$root/services/$role/dist/server.js" >>"$state/$role.log" 2>&1 </dev/null &
    echo $! >"$state/$role.pid"
    started+=("$role")
  done
  local deadline=$((SECONDS + 60))
  for role in "${started[@]}"; do
    until ready "$role"; do
      if ! pid_of "$role" >/dev/null; then log "$role exited; last lines of $state/$role.log:"; tail -n 20 "$state/$role.log" >&2; exit 1; fi
      if [ $SECONDS -ge $deadline ]; then log "$role not ready after 60s; see $state/$role.log"; exit 1; fi
      sleep 0.2
    done
  done
  echo
  for role in "${started[@]}"; do printf '  %-12s http://localhost:%s\n' "$role" "${ports[$role]}"; done
  echo
  [[ " ${started[*]} " == *" analytics "* ]] && echo "  dashboard    http://localhost:8080"
  echo "  logs in $state (make logs), stop with make down"
}

down() {
  local role pid
  for role in "${roles[@]}"; do
    pid=$(pid_of "$role") || continue
    kill -TERM "$pid"
    local deadline=$((SECONDS + 15))
    while kill -0 "$pid" 2>/dev/null; do
      if [ $SECONDS -ge $deadline ]; then kill -KILL "$pid"; fi
      sleep 0.1
    done
    rm -f "$state/$role.pid"
    log "stopped $role"
  done
}

status() {
  local role
  for role in "${roles[@]}"; do
    if pid_of "$role" >/dev/null; then
      printf '%-12s running  http://localhost:%s %s\n' "$role" "${ports[$role]}" "$(ready "$role" && echo ready || echo 'not ready')"
    fi
  done
}

logs() {
  if [ -n "${1:-}" ]; then tail -n 100 -f "$state/$1.log"; else tail -n 20 -f "$state"/*.log; fi
}

case ${1:-} in
  up) up ;;
  down) down ;;
  status) status ;;
  logs) shift; logs "$@" ;;
  *) echo "usage: $0 <up|down|status|logs [role]>" >&2; exit 2 ;;
esac
