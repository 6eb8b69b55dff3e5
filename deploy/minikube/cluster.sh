#!/usr/bin/env bash
# pagestream on minikube.
#   cluster.sh up            minikube with Calico (it enforces NetworkPolicy), the ingress addon, the image, the chart
#   cluster.sh install       install or upgrade the chart in the current kubectl context
#   cluster.sh port-forward  the dashboard on http://localhost:8080
#   cluster.sh down          delete the minikube profile
# Settings: IMAGE (pagestream:dev), MINIKUBE_PROFILE (pagestream), NAMESPACE, RELEASE, VALUES as for deploy/kind/cluster.sh.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${IMAGE:-pagestream:dev}
profile=${MINIKUBE_PROFILE:-pagestream}
log() { printf 'minikube: %s\n' "$*" >&2; }

command -v minikube >/dev/null 2>&1 || { log "minikube is needed (https://minikube.sigs.k8s.io/docs/start/)"; exit 1; }

up() {
  docker image inspect "$image" >/dev/null 2>&1 || { log "no image $image: run make image first"; exit 1; }
  if ! minikube status --profile "$profile" >/dev/null 2>&1; then
    log "starting profile $profile"
    minikube start --profile "$profile" --cpus 2 --memory 4g --cni calico
  fi
  kubectl config use-context "$profile" >/dev/null
  # the addon runs ingress-nginx in namespace ingress-nginx, as the chart's NetworkPolicy expects
  minikube addons enable ingress --profile "$profile"
  kubectl wait --namespace ingress-nginx --for=condition=ready pod --selector=app.kubernetes.io/component=controller --timeout=300s
  log "loading $image into the cluster"
  minikube image load "$image" --profile "$profile"
  "$root/deploy/kind/cluster.sh" install
  echo
  echo "  dashboard (ingress)       http://$(minikube ip --profile "$profile")/"
  echo "  dashboard (port-forward)  $0 port-forward, then http://localhost:8080"
}

case ${1:-} in
  up) up ;;
  install) exec "$root/deploy/kind/cluster.sh" install ;;
  port-forward) exec "$root/deploy/kind/cluster.sh" port-forward ;;
  down) minikube delete --profile "$profile" ;;
  *) echo "usage: $0 <up|install|port-forward|down>" >&2; exit 2 ;;
esac
