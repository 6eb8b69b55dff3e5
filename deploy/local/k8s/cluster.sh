#!/usr/bin/env bash
# A single-node Kubernetes cluster of host processes, Kubernetes-the-hard-way style, for machines where kind,
# minikube and k3s cannot fetch their images: etcd, kube-apiserver, controller-manager, scheduler, a containerd of
# its own (root, state and socket apart from Docker's), kubelet, kube-proxy (iptables), CoreDNS as a Deployment,
# Traefik serving Ingress objects of class `traefik`. Every program is built here (build.sh).
#   cluster.sh up            start what is not running; print the kubeconfig path (idempotent)
#   cluster.sh load IMAGE..  copy Docker images into the cluster's containerd (docker save | ctr import)
#   cluster.sh install       load IMAGE and the local broker image, helm upgrade --install the chart into NAMESPACE
#                            (Pod Security `restricted` enforced) with values.yaml, then helm test
#   cluster.sh env           shell exports: KUBECONFIG, PATH with kubectl, K8S_INGRESS_URL
#   cluster.sh status        exit 0 when the node is Ready
#   cluster.sh down          stop what up started, remove its pods, rules, links and state (the loaded images stay
#                            in the cache folder's containerd-root, like the built programs)
# Settings: K8S_STATE (state folder), K8S_INGRESS_PORT (39380, on 127.0.0.1), K8S_NODE_NAME (pagestream-node),
# IMAGE (pagestream:dev), NAMESPACE (pagestream), RELEASE (pagestream).
# Needs root, Debian's containerd, runc, containernetworking-plugins, iptables and conntrack (installed when missing).
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
root=$(cd "$here/../../.." && pwd)
# shellcheck source=versions.sh
. "$here/versions.sh"
cache=${PAGESTREAM_CACHE:-$HOME/.cache/pagestream}
state=${K8S_STATE:-$cache/k8s/cluster}
node=${K8S_NODE_NAME:-pagestream-node}
ingress_port=${K8S_INGRESS_PORT:-39380}
pod_cidr=10.244.0.0/24
cluster_cidr=10.244.0.0/16
service_cidr=10.96.0.0/16
api_ip=10.96.0.1
dns_ip=10.96.0.10
pause_image=pagestream.local/pause:$PAUSE_VERSION
coredns_image=pagestream.local/coredns:$COREDNS_VERSION
pki=$state/pki
run=$state/run
logs=$state/logs
sock=$state/containerd/containerd.sock
# containerd's content and snapshots outlive the cluster, like the built programs: a warm start loads no image
images=$cache/k8s/containerd-root
log() { printf 'k8s: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

packages=(containerd runc containernetworking-plugins iptables conntrack openssl)

system() {
  [ "$(id -u)" -eq 0 ] || die "the cluster's kubelet, containerd and kube-proxy need root"
  local missing=() p
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    log "installing ${missing[*]}"
    DEBIAN_FRONTEND=noninteractive apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
}

node_ip() {
  # the kubelet refuses a loopback node address: the address of the default route's interface
  ip -4 -o route get 192.0.2.255 2>/dev/null | sed -n 's/.* src \([0-9.]*\).*/\1/p'
}

# ---- certificates -------------------------------------------------------------------------------------------

# cert <name> <subject> [extensions]: a key and a certificate signed by the cluster CA
cert() {
  local name=$1 subject=$2 ext=${3:-}
  [ -f "$pki/$name.crt" ] && return 0
  openssl req -new -newkey rsa:2048 -nodes -keyout "$pki/$name.key" -subj "$subject" -out "$pki/$name.csr" 2>/dev/null
  local extfile=$pki/$name.ext
  printf 'basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n%s\n' "$ext" >"$extfile"
  openssl x509 -req -in "$pki/$name.csr" -CA "$pki/ca.crt" -CAkey "$pki/ca.key" -CAcreateserial -days 365 \
    -extfile "$extfile" -out "$pki/$name.crt" 2>/dev/null
  rm -f "$pki/$name.csr" "$extfile"
}

# kubeconfig <name> <cert>: a kubeconfig of one client certificate
kubeconfig() {
  local name=$1 crt=$2
  cat >"$state/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
  - name: pagestream-local
    cluster:
      server: https://127.0.0.1:6443
      certificate-authority: $pki/ca.crt
users:
  - name: $name
    user:
      client-certificate: $pki/$crt.crt
      client-key: $pki/$crt.key
contexts:
  - name: pagestream-local
    context: {cluster: pagestream-local, user: $name}
current-context: pagestream-local
EOF
}

certificates() {
  mkdir -p "$pki"
  if [ ! -f "$pki/ca.crt" ]; then
    log "making certificates"
    openssl req -x509 -newkey rsa:2048 -nodes -keyout "$pki/ca.key" -out "$pki/ca.crt" -days 365 \
      -subj "/CN=pagestream-local-ca" 2>/dev/null
    openssl genrsa -out "$pki/sa.key" 2048 2>/dev/null
    openssl rsa -in "$pki/sa.key" -pubout -out "$pki/sa.pub" 2>/dev/null
  fi
  local ip; ip=$(node_ip)
  local client='extendedKeyUsage=clientAuth'
  cert apiserver "/CN=kube-apiserver" "extendedKeyUsage=serverAuth
subjectAltName=IP:127.0.0.1,IP:$ip,IP:$api_ip,DNS:localhost,DNS:kubernetes,DNS:kubernetes.default,\
DNS:kubernetes.default.svc,DNS:kubernetes.default.svc.cluster.local"
  cert apiserver-kubelet-client "/O=system:masters/CN=kube-apiserver-kubelet-client" "$client"
  cert admin "/O=system:masters/CN=pagestream-admin" "$client"
  cert controller-manager "/CN=system:kube-controller-manager" "$client"
  cert scheduler "/CN=system:kube-scheduler" "$client"
  cert kube-proxy "/O=system:node-proxier/CN=system:kube-proxy" "$client"
  cert kubelet-client "/O=system:nodes/CN=system:node:$node" "$client"
  cert kubelet "/CN=$node" "extendedKeyUsage=serverAuth
subjectAltName=IP:$ip,IP:127.0.0.1,DNS:$node"
  kubeconfig admin admin
  kubeconfig controller-manager controller-manager
  kubeconfig scheduler scheduler
  kubeconfig kube-proxy kube-proxy
  kubeconfig kubelet kubelet-client
}

# ---- processes ----------------------------------------------------------------------------------------------

# ours <name>: the pid of the process this script started under that name, if it still runs
ours() {
  local pidfile=$run/$1.pid pid
  [ -f "$pidfile" ] || return 1
  pid=$(cat "$pidfile")
  # a pid file can outlive its process: only a live process whose command line names our state folder counts
  kill -0 "$pid" 2>/dev/null && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -qF "$state" && echo "$pid"
}

# start <name> <command...>: run in the background once, logging to logs/<name>.log
start() {
  local name=$1; shift
  ours "$name" >/dev/null && return 0
  mkdir -p "$run" "$logs"
  setsid "$@" >>"$logs/$name.log" 2>&1 </dev/null &
  echo $! >"$run/$name.pid"
}

# wait_for <what> <seconds> <command...>
wait_for() {
  local what=$1 seconds=$2; shift 2
  local deadline=$((SECONDS + seconds))
  until "$@" >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || die "$what not ready after ${seconds}s (logs: $logs)"
    sleep 0.5
  done
}

# the programs: built when missing (up), or only linked (everything else)
bin_dir() { "$here/build.sh" "$@"; }

kubectl_() { "$bin/kubectl" --kubeconfig "$state/admin.kubeconfig" "$@"; }

healthy() { curl -sfk --cacert "$pki/ca.crt" "$1" >/dev/null; }

etcd_up() {
  start etcd "$bin/etcd" --name default --data-dir "$state/etcd" \
    --listen-client-urls http://127.0.0.1:2379 --advertise-client-urls http://127.0.0.1:2379 \
    --listen-peer-urls http://127.0.0.1:2380 --initial-advertise-peer-urls http://127.0.0.1:2380 \
    --initial-cluster default=http://127.0.0.1:2380 --listen-metrics-urls http://127.0.0.1:2381
  wait_for etcd 30 curl -sf http://127.0.0.1:2381/health
}

apiserver_up() {
  start kube-apiserver "$bin/kube-apiserver" --etcd-servers http://127.0.0.1:2379 \
    --bind-address 0.0.0.0 --advertise-address "$(node_ip)" --secure-port 6443 --cert-dir "$pki" \
    --tls-cert-file "$pki/apiserver.crt" --tls-private-key-file "$pki/apiserver.key" \
    --client-ca-file "$pki/ca.crt" --authorization-mode Node,RBAC --enable-admission-plugins NodeRestriction \
    --kubelet-client-certificate "$pki/apiserver-kubelet-client.crt" \
    --kubelet-client-key "$pki/apiserver-kubelet-client.key" --kubelet-preferred-address-types InternalIP \
    --service-cluster-ip-range "$service_cidr" --service-account-issuer https://kubernetes.default.svc.cluster.local \
    --service-account-key-file "$pki/sa.pub" --service-account-signing-key-file "$pki/sa.key" \
    --allow-privileged=true --profiling=false
  wait_for kube-apiserver 90 kubectl_ get --raw /readyz
}

controllers_up() {
  start kube-controller-manager "$bin/kube-controller-manager" --kubeconfig "$state/controller-manager.kubeconfig" \
    --authentication-kubeconfig "$state/controller-manager.kubeconfig" \
    --authorization-kubeconfig "$state/controller-manager.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --use-service-account-credentials \
    --service-account-private-key-file "$pki/sa.key" --root-ca-file "$pki/ca.crt" \
    --cluster-signing-cert-file "$pki/ca.crt" --cluster-signing-key-file "$pki/ca.key" \
    --cluster-cidr "$cluster_cidr" --service-cluster-ip-range "$service_cidr" --profiling=false
  start kube-scheduler "$bin/kube-scheduler" --kubeconfig "$state/scheduler.kubeconfig" \
    --authentication-kubeconfig "$state/scheduler.kubeconfig" --authorization-kubeconfig "$state/scheduler.kubeconfig" \
    --bind-address 127.0.0.1 --leader-elect=false --profiling=false
}

containerd_up() {
  mkdir -p "$state/containerd" "$state/cni/net.d"
  cat >"$state/containerd/config.toml" <<EOF
# containerd of the local cluster only: Docker's containerd keeps its own root, state and socket
version = 2
root = "$images"
state = "$state/containerd/state"
[grpc]
  address = "$sock"
[ttrpc]
  address = "$sock.ttrpc"
[plugins."io.containerd.internal.v1.opt"]
  path = "$state/containerd/opt"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause_image"
  # root in this sandbox may not lower oom_score_adj; without this every pod sandbox fails to start
  restrict_oom_score_adj = true
  stream_server_address = "127.0.0.1"
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$state/cni/net.d"
EOF
  # firewall: accepts the pods' forwarded traffic, which Docker's FORWARD policy (DROP) would otherwise drop
  cat >"$state/cni/net.d/10-pagestream.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "pagestream-local",
  "plugins": [
    {
      "type": "bridge", "bridge": "pscni0", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {"type": "host-local", "ranges": [[{"subnet": "$pod_cidr"}]], "routes": [{"dst": "0.0.0.0/0"}],
               "dataDir": "$state/cni/ipam"}
    },
    {"type": "portmap", "capabilities": {"portMappings": true}},
    {"type": "firewall", "backend": "iptables"}
  ]
}
EOF
  start containerd containerd --config "$state/containerd/config.toml"
  wait_for containerd 30 ctr --address "$sock" version
}

# binary_image <ref> <binary> <user> [args...]: a one-file image from a static binary, imported into containerd
# (a Docker archive assembled by hand: no registry, no Docker needed for the cluster's own images)
binary_image() {
  local ref=$1 binary=$2 user=$3; shift 3
  ctr --address "$sock" -n k8s.io images check "name==$ref" 2>/dev/null | grep -q . && return 0
  local dir; dir=$(mktemp -d)
  local name; name=$(basename "$binary")
  mkdir -p "$dir/rootfs" "$dir/archive"
  cp -L "$binary" "$dir/rootfs/$name"
  tar -C "$dir/rootfs" --owner=0 --group=0 --mtime=@0 -cf "$dir/layer.tar" "$name"
  local layer; layer=$(sha256sum "$dir/layer.tar" | cut -d' ' -f1)
  mkdir -p "$dir/archive/$layer"; mv "$dir/layer.tar" "$dir/archive/$layer/layer.tar"
  local entry; entry=$(printf '"/%s"' "$name"); local a
  for a in "$@"; do entry+=$(printf ', "%s"' "$a"); done
  printf '{"architecture":"amd64","os":"linux","config":{"Entrypoint":[%s],"User":"%s"},%s}' "$entry" "$user" \
    "\"rootfs\":{\"type\":\"layers\",\"diff_ids\":[\"sha256:$layer\"]}" >"$dir/config.json"
  local config; config=$(sha256sum "$dir/config.json" | cut -d' ' -f1)
  mv "$dir/config.json" "$dir/archive/$config.json"
  printf '[{"Config":"%s.json","RepoTags":["%s"],"Layers":["%s/layer.tar"]}]' "$config" "$ref" "$layer" \
    >"$dir/archive/manifest.json"
  tar -C "$dir/archive" -cf - . | ctr --address "$sock" -n k8s.io images import - >/dev/null
  rm -rf "$dir"
}

kubelet_up() {
  mkdir -p "$state/kubelet" "$state/pod-logs"
  cat >"$state/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $pki/ca.crt}
authorization: {mode: Webhook}
# cgroup v1 and no systemd here
cgroupDriver: cgroupfs
failCgroupV1: false
failSwapOn: false
containerRuntimeEndpoint: unix://$sock
clusterDomain: cluster.local
clusterDNS: [$dns_ip]
tlsCertFile: $pki/kubelet.crt
tlsPrivateKeyFile: $pki/kubelet.key
podLogsDir: $state/pod-logs
healthzBindAddress: 127.0.0.1
readOnlyPort: 0
serializeImagePulls: false
maxPods: 60
# a developer's disk, shared with build caches: percentages of it say nothing about this node, so no disk-pressure
# eviction or taint and no image garbage collection (as kind configures its nodes)
evictionHard: {nodefs.available: "0%", nodefs.inodesFree: "0%", imagefs.available: "0%"}
imageGCHighThresholdPercent: 100
EOF
  start kubelet "$bin/kubelet" --config "$state/kubelet.yaml" --kubeconfig "$state/kubelet.kubeconfig" \
    --root-dir "$state/kubelet" --node-ip "$(node_ip)" --hostname-override "$node"
}

proxy_up() {
  cat >"$state/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $state/kube-proxy.kubeconfig}
mode: iptables
clusterCIDR: $cluster_cidr
hostnameOverride: $node
# leave the host's conntrack table sizes alone
conntrack: {maxPerCore: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
nodePortAddresses: [primary]
metricsBindAddress: 127.0.0.1:10249
healthzBindAddress: 127.0.0.1:10256
EOF
  start kube-proxy "$bin/kube-proxy" --config "$state/kube-proxy.yaml"
}

addons_up() {
  COREDNS_IMAGE=$coredns_image DNS_IP=$dns_ip envsubst '${COREDNS_IMAGE} ${DNS_IP}' <"$here/manifests/coredns.yaml" \
    | kubectl_ apply -f - >/dev/null
  kubectl_ apply -f "$here/manifests/traefik.yaml" >/dev/null
}

traefik_up() {
  local token
  wait_for "traefik's token" 60 kubectl_ -n kube-system get secret traefik-token -o jsonpath='{.data.token}' \
    --allow-missing-template-keys=false
  until token=$(kubectl_ -n kube-system get secret traefik-token -o jsonpath='{.data.token}' | base64 -d) \
    && [ -n "$token" ]; do sleep 0.5; done
  # the token goes into a static configuration file only root reads, never onto a command line
  (umask 077; cat >"$state/traefik.yaml" <<EOF
global: {checkNewVersion: false, sendAnonymousUsage: false}
entryPoints:
  # Traefik v3 limits reading a request to 60 s by default; an SSE stream is one long request
  web: {address: "127.0.0.1:$ingress_port", transport: {respondingTimeouts: {readTimeout: 0s}}}
  traefik: {address: "127.0.0.1:39381"}
ping: {}
log: {level: INFO, noColor: true}
providers:
  kubernetesIngress:
    endpoint: https://127.0.0.1:6443
    certAuthFilePath: $pki/ca.crt
    token: "$token"
    ingressEndpoint: {ip: 127.0.0.1}
EOF
  )
  start traefik "$bin/traefik" --configfile="$state/traefik.yaml"
}

node_ready() {
  [ "$(kubectl_ get node "$node" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}' 2>/dev/null)" = True ]
}

up() {
  local began=$SECONDS
  system
  bin=$(bin_dir)
  mkdir -p "$state"
  certificates
  sysctl -qw net.ipv4.ip_forward=1 net.bridge.bridge-nf-call-iptables=1
  etcd_up
  apiserver_up
  controllers_up
  containerd_up
  binary_image "$pause_image" "$bin/pause" 65535
  binary_image "$coredns_image" "$bin/coredns" 65532
  kubelet_up
  proxy_up
  addons_up
  wait_for "node $node" 90 node_ready
  traefik_up
  wait_for "traefik" 30 curl -sf http://127.0.0.1:39381/ping
  kubectl_ -n kube-system rollout status deployment/coredns --timeout=120s >/dev/null \
    || die "CoreDNS did not become ready (kubectl -n kube-system describe pod -l k8s-app=kube-dns)"
  log "cluster up in $((SECONDS - began)) s: node $node Ready; ingress on http://127.0.0.1:$ingress_port"
  echo "$state/admin.kubeconfig"
}

# the name containerd gives an image imported from `docker save`: docker.io/library/ for short names
ctr_name() {
  case $1 in
    */*/*) echo "$1" ;;
    */*) case ${1%%/*} in *.*|*:*|localhost) echo "$1" ;; *) echo "docker.io/$1" ;; esac ;;
    *) echo "docker.io/library/$1" ;;
  esac
}

load() {
  [ $# -gt 0 ] || die "usage: cluster.sh load IMAGE..."
  ours containerd >/dev/null || die "the cluster is not up (cluster.sh up)"
  local image id stamp
  mkdir -p "$images/pagestream-loaded"
  for image in "$@"; do
    stamp=$images/pagestream-loaded/$(printf '%s' "$image" | tr '/:' '__')
    if ! id=$(docker image inspect --format '{{.Id}}' "$image" 2>/dev/null); then
      [ -f "$stamp" ] || die "no Docker image $image, and none loaded before"
      log "no Docker image $image: using the one loaded before ($(cut -c8-19 "$stamp"))"
      continue
    fi
    if [ "$(cat "$stamp" 2>/dev/null)" = "$id" ] \
      && ctr --address "$sock" -n k8s.io images check "name~=$image" 2>/dev/null | grep -q complete; then
      continue
    fi
    log "loading $image"
    if ! docker save "$image" | ctr --address "$sock" -n k8s.io images import - >/dev/null; then
      # seen once here: "parent snapshot ... does not exist" while the replaced image's layers were collected
      log "importing $image failed; removing the copy loaded before and importing once more"
      ctr --address "$sock" -n k8s.io images rm "$(ctr_name "$image")" >/dev/null 2>&1 || true
      docker save "$image" | ctr --address "$sock" -n k8s.io images import - >/dev/null
    fi
    echo "$id" >"$stamp"
  done
}

install() {
  bin=$(bin_dir bin)
  local image=${IMAGE:-pagestream:dev} namespace=${NAMESPACE:-pagestream} release=${RELEASE:-pagestream}
  local broker helm
  broker=$("$root/test/compose/broker-image.sh")
  helm=$("$root/deploy/local/setup.sh" helm)
  load "$image" "$broker"
  kubectl_ create namespace "$namespace" --dry-run=client -o yaml | kubectl_ apply -f - >/dev/null
  kubectl_ label namespace "$namespace" --overwrite pod-security.kubernetes.io/enforce=restricted \
    pod-security.kubernetes.io/warn=restricted >/dev/null
  log "installing release $release into namespace $namespace"
  KUBECONFIG=$state/admin.kubeconfig "$helm" upgrade --install "$release" "$root/charts/pagestream" \
    --namespace "$namespace" --values "$here/values.yaml" \
    --set "image.repository=${image%:*}" --set "image.tag=${image##*:}" \
    --set "redpanda.image.repository=${broker%:*}" --set "redpanda.image.tag=${broker##*:}" --wait --timeout 10m
  KUBECONFIG=$state/admin.kubeconfig "$helm" test "$release" --namespace "$namespace" --logs
  echo
  echo "  kubectl                   eval \"\$($0 env)\"; kubectl -n $namespace get pods"
  echo "  dashboard (ingress)       http://127.0.0.1:$ingress_port/"
  echo "  dashboard (port-forward)  kubectl -n $namespace port-forward service/$release-analytics 8080:8080"
  echo "  publish an event          curl http://127.0.0.1:$ingress_port/publish/R2/blog"
}

env_() {
  bin=$(bin_dir bin)
  echo "export KUBECONFIG=$state/admin.kubeconfig"
  echo "export PATH=$bin:\$PATH"
  echo "export K8S_INGRESS_URL=http://127.0.0.1:$ingress_port"
}

status() {
  bin=$(bin_dir bin)
  node_ready
}

# ---- down ---------------------------------------------------------------------------------------------------

stop() {
  local name=$1 pid
  pid=$(ours "$name") || return 0
  kill "$pid" 2>/dev/null || true
  local deadline=$((SECONDS + 20))
  while kill -0 "$pid" 2>/dev/null && [ $SECONDS -lt $deadline ]; do sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$run/$name.pid"
}

# firewall_cleanup: the chains the kubelet and the CNI firewall plugin add, with the jumps into them
firewall_cleanup() {
  local table chain
  iptables -D FORWARD -m comment --comment "CNI firewall plugin rules" -j CNI-FORWARD 2>/dev/null || true
  iptables -D INPUT -j KUBE-FIREWALL 2>/dev/null || true
  iptables -D OUTPUT -j KUBE-FIREWALL 2>/dev/null || true
  for table in filter nat mangle; do
    for chain in CNI-FORWARD CNI-ADMIN KUBE-FIREWALL KUBE-KUBELET-CANARY KUBE-IPTABLES-HINT; do
      iptables -t "$table" -F "$chain" 2>/dev/null && iptables -t "$table" -X "$chain" 2>/dev/null || true
    done
  done
}

down() {
  [ -d "$state" ] || { log "nothing to stop"; return 0; }
  bin=$(bin_dir bin)
  stop traefik
  if ours kubelet >/dev/null && ours kube-apiserver >/dev/null; then
    # no controller recreates what is deleted now; the kubelet stops each pod and CNI releases its address and rules
    stop kube-controller-manager
    stop kube-scheduler
    kubectl_ delete pods --all --all-namespaces --grace-period=1 --wait=false >/dev/null 2>&1 || true
    local deadline=$((SECONDS + 90))
    while [ -n "$(kubectl_ get pods --all-namespaces -o name 2>/dev/null)" ] && [ $SECONDS -lt $deadline ]; do
      sleep 1
    done
  fi
  stop kubelet
  if ours containerd >/dev/null; then
    # the pods' containers and sandboxes, so their shims exit and CNI releases their addresses
    local c
    for c in $(ctr --address "$sock" -n k8s.io tasks ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks kill -s SIGKILL "$c" >/dev/null 2>&1 || true
    done
    sleep 1
    for c in $(ctr --address "$sock" -n k8s.io containers ls -q 2>/dev/null); do
      ctr --address "$sock" -n k8s.io tasks delete -f "$c" >/dev/null 2>&1 || true
      ctr --address "$sock" -n k8s.io containers delete "$c" >/dev/null 2>&1 || true
    done
  fi
  stop containerd
  # shims of our containerd outlive it: they name its socket on their command line
  local pid
  for pid in $(pgrep -f "containerd-shim-runc-v2 .*-address $sock" || true); do
    kill -KILL "$pid" 2>/dev/null || true
  done
  stop kube-proxy
  "$bin/kube-proxy" --cleanup >/dev/null 2>&1 || true
  stop kube-scheduler
  stop kube-controller-manager
  stop kube-apiserver
  stop etcd
  # the bridge of our CNI configuration (the pods' namespaces went with their sandboxes)
  ip link del pscni0 2>/dev/null || true
  firewall_cleanup
  # volumes and snapshots the kubelet and containerd mounted under the state folder
  local mount
  for mount in $(grep -F " $state/" /proc/mounts | cut -d' ' -f2 | sort -r || true); do
    umount -l "$mount" 2>/dev/null || true
  done
  rm -rf "$state"
  log "cluster down; state removed"
}

case ${1:-} in
  up) up ;;
  load) shift; bin=$(bin_dir bin); load "$@" ;;
  install) install ;;
  env) env_ ;;
  status) status ;;
  down) down ;;
  *) sed -n '2,15p' "$0" >&2; exit 2 ;;
esac
