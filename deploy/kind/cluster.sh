#!/usr/bin/env bash
# pagestream on a local kind cluster.
#   cluster.sh up            kind cluster, ingress-nginx, the image loaded, the chart installed (make kind-up)
#   cluster.sh install       install or upgrade the chart in the current kubectl context (make helm-install)
#   cluster.sh port-forward  the dashboard on http://localhost:8080 (make port-forward)
#   cluster.sh down          delete the kind cluster (make kind-down)
# Settings: IMAGE (pagestream:dev), KIND_CLUSTER (pagestream), NAMESPACE (pagestream), RELEASE (pagestream),
# VALUES (charts/pagestream/ci/kind-values.yaml), INGRESS_NGINX_VERSION (controller-v1.13.2), KIND_NODE_IMAGE.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../.." && pwd)
image=${IMAGE:-pagestream:dev}
cluster=${KIND_CLUSTER:-pagestream}
namespace=${NAMESPACE:-pagestream}
release=${RELEASE:-pagestream}
values=${VALUES:-$root/charts/pagestream/ci/kind-values.yaml}
ingress_version=${INGRESS_NGINX_VERSION:-controller-v1.13.2}
log() { printf 'kind: %s\n' "$*" >&2; }

need() {
  local tool
  for tool in "$@"; do
    command -v "$tool" >/dev/null 2>&1 || { log "$tool is needed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"; exit 1; }
  done
}

helm_bin() {
  if command -v helm >/dev/null 2>&1; then command -v helm; else "$root/deploy/local/setup.sh" helm; fi
}

up() {
  need docker kind kubectl
  docker image inspect "$image" >/dev/null 2>&1 || { log "no image $image: run make image first"; exit 1; }
  if ! kind get clusters 2>/dev/null | grep -qx "$cluster"; then
    log "creating cluster $cluster"
    kind create cluster --name "$cluster" --config "$here/cluster.yaml" ${KIND_NODE_IMAGE:+--image "$KIND_NODE_IMAGE"} --wait 120s
  fi
  kubectl config use-context "kind-$cluster" >/dev/null
  log "installing ingress-nginx $ingress_version"
  kubectl apply -f "https://raw.githubusercontent.com/kubernetes/ingress-nginx/$ingress_version/deploy/static/provider/kind/deploy.yaml"
  kubectl wait --namespace ingress-nginx --for=condition=ready pod --selector=app.kubernetes.io/component=controller --timeout=300s
  # a tag per build: the pod spec changes with the image, so a rebuilt image rolls out
  local id
  id=$(docker image inspect --format '{{.Id}}' "$image" | sed 's/^sha256://' | cut -c1-12)
  image="${image%:*}:build-$id"
  docker tag "${IMAGE:-pagestream:dev}" "$image"
  log "loading $image into the cluster"
  kind load docker-image "$image" --name "$cluster"
  install
  echo
  echo "  dashboard (ingress)       http://localhost/"
  echo "  dashboard (port-forward)  make port-forward, then http://localhost:8080"
  echo "  publish an event          curl http://localhost/publish/R2/blog"
}

install() {
  need kubectl
  local helm
  helm=$(helm_bin)
  # the restricted Pod Security Standard is enforced, not only hoped for
  kubectl create namespace "$namespace" --dry-run=client -o yaml | kubectl apply -f - >/dev/null
  kubectl label namespace "$namespace" --overwrite pod-security.kubernetes.io/enforce=restricted pod-security.kubernetes.io/warn=restricted >/dev/null
  log "installing release $release into namespace $namespace"
  "$helm" upgrade --install "$release" "$root/charts/pagestream" --namespace "$namespace" \
    --values "$values" --set "image.repository=${image%:*}" --set "image.tag=${image##*:}" \
    --wait --timeout 10m
  "$helm" test "$release" --namespace "$namespace" --logs
}

port_forward() {
  need kubectl
  local service
  service=$(kubectl --namespace "$namespace" get service \
    --selector "app.kubernetes.io/instance=$release,app.kubernetes.io/component=analytics" -o jsonpath='{.items[0].metadata.name}')
  [ -n "$service" ] || { log "no analytics Service of release $release in namespace $namespace"; exit 1; }
  log "dashboard on http://localhost:8080 (Ctrl-C stops)"
  exec kubectl --namespace "$namespace" port-forward "service/$service" 8080:8080
}

down() {
  need kind
  kind delete cluster --name "$cluster"
}

case ${1:-} in
  up) up ;;
  install) install ;;
  port-forward) port_forward ;;
  down) down ;;
  *) echo "usage: $0 <up|install|port-forward|down>" >&2; exit 2 ;;
esac
