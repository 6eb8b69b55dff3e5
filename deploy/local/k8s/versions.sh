# Versions of the single-node cluster's programs, all built here from the Go module proxy (deploy/local/k8s).
# kubelet 1.35 still runs on containerd 1.6 (Debian bookworm's); 1.37 drops containerd 1.x.
K8S_VERSION=${K8S_VERSION:-v1.35.4}
ETCD_VERSION=${ETCD_VERSION:-v3.6.15}
COREDNS_VERSION=${COREDNS_VERSION:-v1.15.0}
# traefik v3.7.x needs module versions the Go module proxy does not serve (403: go-http-auth, lego's DNS SDKs)
TRAEFIK_VERSION=${TRAEFIK_VERSION:-v3.6.12}
PAUSE_VERSION=${PAUSE_VERSION:-pagestream-1}
