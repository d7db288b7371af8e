#!/usr/bin/env bash
# A real node for the local cluster of scripts/kube-cluster.sh: a kubelet and
# kube-proxy (built with the control plane), a containerd instance of its own
# with Debian's runc, Debian's CNI plugins on a bridge of this host, and CoreDNS
# for cluster.local. Pods scheduled to it really run. No registry: the pause
# image is built here and every image is imported into this containerd.
#
# Run through scripts/kube-cluster.sh (node-up, node-down), which sets:
#   REAL_NODE_CLUSTER_DIR   the cluster's kwokctl directory (PKI in pki/)
#   REAL_NODE_KUBECONFIG    its admin kubeconfig
#   REAL_NODE_BIN_DIR       the binaries it runs (kubelet, kube-proxy, kubectl)
#   REAL_NODE_CACHE_DIR     the machine-level cache (CoreDNS and pause builds)
#   REAL_NODE_SERVICE_CIDR  the API server's --service-cluster-ip-range
# Optional: COREDNS_VERSION (default below), REAL_NODE_VOLUMES (local volumes, 8).
#
# Addresses: everything is inside 198.18.0.0/15 (RFC 2544, benchmarking), not a
# private range, so nothing the tests send can reach a network outside this host:
#   198.18.0.1      the node's address (link ctnode0): kubelet, CoreDNS
#   198.18.1.0/24   pods (bridge ctbr0, gateway 198.18.1.1)
#   198.19.0.0/16   Services (kube-proxy, iptables mode)
# The links, the /run directory and the KUBE-*/CNI-* iptables chains are
# host-wide, so one real node runs per host: up refuses while another
# cluster's node is up.
#
# Add-ons (up starts them, down removes them; addons-up/-down on a running node):
#   metrics-server  host process behind the APIService v1beta1.metrics.k8s.io,
#                   198.18.0.1:4443; scrapes the kubelet with a client certificate
#   kube-router     network policy controller only (iptables, ipset)
#
# Usage: real-node.sh build | up | down | status | import (docker save <images> | import)
#                     | addons-up | addons-down
set -euo pipefail
shopt -s inherit_errexit

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
COREDNS_VERSION="${COREDNS_VERSION:-v1.15.0}"
METRICS_SERVER_VERSION="${METRICS_SERVER_VERSION:-v0.9.0}"
KUBE_ROUTER_VERSION="${KUBE_ROUTER_VERSION:-v2.1.0}"
METRICS_SERVER_PORT=4443  # on NODE_IP
VOLUMES="${REAL_NODE_VOLUMES:-8}"

NODE_NAME=real-node
NODE_IP=198.18.0.1
POD_SUBNET=198.18.1.0/24
POD_GATEWAY=198.18.1.1
CLUSTER_CIDR=198.18.0.0/16
NODE_LINK=ctnode0
BRIDGE=ctbr0
# Only pods that tolerate this taint (and select this label) land here.
NODE_LABEL=counter-template.local/real-node
RUN_DIR=/run/counter-template-node  # containerd state, sockets, netns, pid files
SOCKET="$RUN_DIR/containerd.sock"
OWNER_FILE="$RUN_DIR/cluster"
# The kubelet's root dir holds unix sockets (pod-resources, plugins), whose paths must stay
# under 108 bytes: a fixed short path, not under the cluster's directory (one node per host).
KUBELET_DIR=/var/lib/counter-template-node/kubelet
# Host settings the kubelet changes at start (protectKernelDefaults: false);
# up records them, down puts them back.
KUBELET_SYSCTLS=(vm.overcommit_memory vm.panic_on_oom kernel.panic kernel.panic_on_oops
  kernel.keys.root_maxkeys kernel.keys.root_maxbytes)

die() { echo "real-node.sh: $*" >&2; exit 1; }
log() { echo "real-node: $*" >&2; }

need_env() {
  local name
  for name in REAL_NODE_CLUSTER_DIR REAL_NODE_KUBECONFIG REAL_NODE_BIN_DIR REAL_NODE_CACHE_DIR \
    REAL_NODE_SERVICE_CIDR; do
    [[ -n "${!name:-}" ]] || die "$name is not set (run me through scripts/kube-cluster.sh node-up)"
  done
  NODE_DIR="$REAL_NODE_CLUSTER_DIR/real-node"
  PKI="$REAL_NODE_CLUSTER_DIR/pki"
}

kubectl_() { "$REAL_NODE_BIN_DIR/kubectl" --kubeconfig "$REAL_NODE_KUBECONFIG" "$@"; }
ctr_() { ctr --address "$SOCKET" --namespace k8s.io "$@"; }

# --- builds (cached) ----------------------------------------------------------

# go_binary NAME MODULE VERSION [LDFLAGS]: `go install MODULE@VERSION`, cached under
# the machine cache. Only for modules without replace directives (go install
# refuses those): CoreDNS, metrics-server and kube-router have none (checked with
# `go mod download -json MODULE@VERSION` and their go.mod).
go_binary() {
  local name="$1" module="$2" version="$3" ldflags="-s -w ${4:-}"
  local dir="$REAL_NODE_CACHE_DIR/$name/$version-$(go env GOVERSION)"
  if [[ ! -x "$dir/$name" ]]; then
    log "building $name $version ..."
    rm -rf "$dir.tmp" && mkdir -p "$dir.tmp"
    GOBIN="$dir.tmp" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$module@$version" >&2
    rm -rf "$dir" && mv "$dir.tmp" "$dir"
  fi
  echo "$dir/$name"
}

coredns_binary() {  # cold: ~6 min
  go_binary coredns github.com/coredns/coredns "$COREDNS_VERSION"
}

metrics_server_binary() {  # cold: ~4 min
  go_binary metrics-server sigs.k8s.io/metrics-server/cmd/metrics-server "$METRICS_SERVER_VERSION" \
    "-X k8s.io/client-go/pkg/version.gitVersion=$METRICS_SERVER_VERSION"
}

kube_router_binary() {  # cold: ~4 min
  go_binary kube-router github.com/cloudnativelabs/kube-router/v2/cmd/kube-router "$KUBE_ROUTER_VERSION" \
    "-X github.com/cloudnativelabs/kube-router/v2/pkg/version.Version=$KUBE_ROUTER_VERSION"
}

# The pause image is named after the hash of its source and Go version.
pause_image() {
  local source="$SCRIPTS_DIR/real-node/pause.go" key dir
  key="$( (cat "$source"; go env GOVERSION) | sha256sum | cut -c1-12)"
  echo "counter-template.local/pause:$key"
  docker image inspect "counter-template.local/pause:$key" >/dev/null 2>&1 && return
  log "building the pause image ..."
  dir="$(mktemp -d)"
  (cd "$dir" && CGO_ENABLED=0 go build -trimpath -ldflags "-s -w" -o pause "$source" \
    && printf 'FROM scratch\nCOPY pause /pause\nUSER 65535:65535\nENTRYPOINT ["/pause"]\n' >Dockerfile \
    && docker build --quiet -t "counter-template.local/pause:$key" . >/dev/null) >&2
  rm -rf "$dir"
}

# --- credentials from the cluster's PKI -----------------------------------------

# sign NAME SUBJECT EXTENSIONS: a key and a certificate signed by the cluster CA.
sign() {
  local name="$1" subject="$2" extensions="$3"
  [[ -s "$NODE_DIR/pki/$name.crt" ]] && return
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -subj "$subject" \
    -keyout "$NODE_DIR/pki/$name.key" -out "$NODE_DIR/pki/$name.csr" 2>/dev/null
  openssl x509 -req -in "$NODE_DIR/pki/$name.csr" -CA "$PKI/ca.crt" -CAkey "$PKI/ca.key" \
    -set_serial "0x$(openssl rand -hex 16)" -days 365 -out "$NODE_DIR/pki/$name.crt" \
    -extfile <(printf 'basicConstraints=CA:FALSE\nkeyUsage=critical,digitalSignature\n%s\n' "$extensions") \
    2>/dev/null
  rm -f "$NODE_DIR/pki/$name.csr"
}

# kubeconfig NAME: a kubeconfig for the identity in pki/NAME.{crt,key}.
kubeconfig() {
  local name="$1" server
  server="$(kubectl_ config view --minify -o jsonpath='{.clusters[0].cluster.server}')"
  cat >"$NODE_DIR/$name.kubeconfig" <<EOF
apiVersion: v1
kind: Config
clusters:
- name: local
  cluster: {server: "$server", certificate-authority: "$PKI/ca.crt"}
users:
- name: $name
  user: {client-certificate: "$NODE_DIR/pki/$name.crt", client-key: "$NODE_DIR/pki/$name.key"}
contexts:
- name: $name
  context: {cluster: local, user: $name}
current-context: $name
EOF
}

credentials() {
  mkdir -p "$NODE_DIR/pki"
  # The Node authorizer and NodeRestriction know the kubelet by this name and group.
  sign kubelet "/O=system:nodes/CN=system:node:$NODE_NAME" "extendedKeyUsage=clientAuth"
  sign kubelet-serving "/CN=$NODE_NAME" \
    "extendedKeyUsage=serverAuth
subjectAltName=IP:$NODE_IP,DNS:$NODE_NAME"
  # Bound to the built-in ClusterRole system:node-proxier.
  sign kube-proxy "/CN=system:kube-proxy" "extendedKeyUsage=clientAuth"
  sign coredns "/CN=system:coredns" "extendedKeyUsage=clientAuth"
  kubeconfig kubelet
  kubeconfig kube-proxy
  kubeconfig coredns
  # What CoreDNS's kubernetes plugin reads (the same rules as kubeadm's system:coredns).
  kubectl_ apply -f - >/dev/null <<EOF
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:coredns"}
rules:
- {apiGroups: [""], resources: [endpoints, services, pods, namespaces], verbs: [list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [list, watch]}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRoleBinding
metadata: {name: "system:coredns"}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: ClusterRole, name: "system:coredns"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "system:coredns"}
EOF
}

# --- configuration --------------------------------------------------------------

write_configs() {
  local pause="$1"
  mkdir -p "$NODE_DIR/cni/net.d" "$NODE_DIR/logs"
  cat >"$NODE_DIR/containerd.toml" <<EOF
# Not the containerd dockerd runs: own root, state, sockets and CNI.
version = 2
root = "$NODE_DIR/containerd"
state = "$RUN_DIR/containerd"
[grpc]
  address = "$SOCKET"
[ttrpc]
  address = "$RUN_DIR/containerd.sock.ttrpc"
[plugins."io.containerd.grpc.v1.cri"]
  sandbox_image = "$pause"
  # This sandbox lacks CAP_SYS_RESOURCE: raising a child's oom_score_adj
  # fails there ("can't get final child's PID from pipe: EOF" from runc).
  restrict_oom_score_adj = true
  # Network namespaces under the state dir, so down finds every one of them.
  netns_mounts_under_state_dir = true
  enable_unprivileged_ports = true
  [plugins."io.containerd.grpc.v1.cri".containerd]
    snapshotter = "overlayfs"
    default_runtime_name = "runc"
    [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc]
      runtime_type = "io.containerd.runc.v2"
      [plugins."io.containerd.grpc.v1.cri".containerd.runtimes.runc.options]
        BinaryName = "$(command -v runc)"
        Root = "$RUN_DIR/runc"
        SystemdCgroup = false
  [plugins."io.containerd.grpc.v1.cri".cni]
    bin_dir = "/usr/lib/cni"
    conf_dir = "$NODE_DIR/cni/net.d"
EOF
  # Docker's FORWARD policy is DROP and bridged pod traffic passes the FORWARD
  # chain (br_netfilter): the firewall plugin accepts the pods' traffic there.
  cat >"$NODE_DIR/cni/net.d/10-counter-template.conflist" <<EOF
{
  "cniVersion": "1.0.0",
  "name": "counter-template",
  "plugins": [
    {
      "type": "bridge", "bridge": "$BRIDGE", "isGateway": true, "ipMasq": false, "hairpinMode": true,
      "ipam": {
        "type": "host-local", "dataDir": "$NODE_DIR/cni/ipam",
        "ranges": [[{"subnet": "$POD_SUBNET", "gateway": "$POD_GATEWAY"}]],
        "routes": [{"dst": "0.0.0.0/0"}]
      }
    },
    {"type": "firewall", "backend": "iptables"},
    {"type": "portmap", "capabilities": {"portMappings": true}}
  ]
}
EOF
  cat >"$NODE_DIR/kubelet.yaml" <<EOF
apiVersion: kubelet.config.k8s.io/v1beta1
kind: KubeletConfiguration
address: $NODE_IP
readOnlyPort: 0
healthzBindAddress: 127.0.0.1
tlsCertFile: $NODE_DIR/pki/kubelet-serving.crt
tlsPrivateKeyFile: $NODE_DIR/pki/kubelet-serving.key
authentication:
  anonymous: {enabled: false}
  webhook: {enabled: true}
  x509: {clientCAFile: $PKI/ca.crt}
authorization: {mode: Webhook}
containerRuntimeEndpoint: unix://$SOCKET
podLogsDir: $NODE_DIR/pod-logs
cgroupDriver: cgroupfs
# Kubernetes 1.36 refuses cgroup v1 unless told otherwise; this sandbox has only v1.
failCgroupV1: false
failSwapOn: false
clusterDomain: cluster.local
clusterDNS: [$NODE_IP]
registerWithTaints:
- {key: $NODE_LABEL, value: "true", effect: NoSchedule}
# Images are imported, never pulled: never collect them, and evict only when
# the shared disk is really full.
imageGCHighThresholdPercent: 100
imageGCLowThresholdPercent: 99
evictionHard: {memory.available: 200Mi, nodefs.available: 2%, imagefs.available: 2%}
maxPods: 40
EOF
  cat >"$NODE_DIR/kube-proxy.yaml" <<EOF
apiVersion: kubeproxy.config.k8s.io/v1alpha1
kind: KubeProxyConfiguration
clientConnection: {kubeconfig: $NODE_DIR/kube-proxy.kubeconfig}
hostnameOverride: $NODE_NAME
mode: iptables
clusterCIDR: $CLUSTER_CIDR
healthzBindAddress: 127.0.0.1:10256
metricsBindAddress: 127.0.0.1:10249
nodePortAddresses: [$NODE_IP/32]
# Leave the host's conntrack settings alone (0: do not change).
conntrack: {maxPerCore: 0, min: 0, tcpEstablishedTimeout: 0s, tcpCloseWaitTimeout: 0s}
EOF
  cat >"$NODE_DIR/Corefile" <<EOF
cluster.local:53 in-addr.arpa:53 {
    bind $NODE_IP
    errors
    kubernetes cluster.local in-addr.arpa {
        kubeconfig $NODE_DIR/coredns.kubeconfig coredns
        pods insecure
    }
    cache 5
}
# No upstream: this host is offline, and names outside the cluster get NXDOMAIN
# instead of being forwarded anywhere.
.:53 {
    bind $NODE_IP
    errors
    template ANY ANY {
        rcode NXDOMAIN
    }
}
EOF
}

# Local volumes on this node for the Redis claims of pods placed here (hostPath
# volumes get no fsGroup, so a non-root Redis could not write them).
storage() {
  local i
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata: {name: real-node}
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: WaitForFirstConsumer
reclaimPolicy: Retain
EOF
    for ((i = 0; i < VOLUMES; i++)); do
      mkdir -p "$NODE_DIR/volumes/$i"
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: real-node-volume-$i
  labels: {$NODE_LABEL: "true"}
spec:
  storageClassName: real-node
  capacity: {storage: 8Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  local: {path: $NODE_DIR/volumes/$i}
  nodeAffinity:
    required:
      nodeSelectorTerms:
      - matchExpressions:
        - {key: kubernetes.io/hostname, operator: In, values: [$NODE_NAME]}
EOF
    done
  } | kubectl_ apply -f - >/dev/null
}

# --- processes ------------------------------------------------------------------

start() {
  local name="$1"
  shift
  log "starting $name (log: $NODE_DIR/logs/$name.log)"
  setsid "$@" </dev/null >>"$NODE_DIR/logs/$name.log" 2>&1 &
  echo $! >"$RUN_DIR/$name.pid"
}

alive() { [[ -f "$RUN_DIR/$1.pid" ]] && kill -0 "$(cat "$RUN_DIR/$1.pid")" 2>/dev/null; }

stop() {
  local name="$1" pid i
  [[ -f "$RUN_DIR/$name.pid" ]] || return 0
  pid="$(cat "$RUN_DIR/$name.pid")"
  kill "$pid" 2>/dev/null || true
  for ((i = 0; i < 50; i++)); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$RUN_DIR/$name.pid"
}

# wait_for WHAT SECONDS COMMAND...
wait_for() {
  local what="$1" seconds="$2" i
  shift 2
  for ((i = 0; i < seconds * 4; i++)); do "$@" >/dev/null 2>&1 && return; sleep 0.25; done
  die "$what not ready after ${seconds}s (logs: $NODE_DIR/logs)"
}

network() {
  # Pods reach the node (kubelet, CoreDNS) at NODE_IP; Service addresses are
  # routed there too, so they never go out of eth0 (kube-proxy DNATs them).
  # A veth pair stands in for a dummy link (this sandbox's kernel has no dummy
  # driver); its far end only swallows what nothing answers.
  ip link show "$NODE_LINK" >/dev/null 2>&1 || ip link add "$NODE_LINK" type veth peer name "$NODE_LINK-peer"
  ip addr replace "$NODE_IP/32" dev "$NODE_LINK"
  ip link set "$NODE_LINK-peer" up
  ip link set "$NODE_LINK" up
  ip route replace "$REAL_NODE_SERVICE_CIDR" dev "$NODE_LINK" src "$NODE_IP"
}

node_ready() {
  [[ "$(kubectl_ get node "$NODE_NAME" -o jsonpath='{.status.conditions[?(@.type=="Ready")].status}')" == True ]]
}

# What up needs from this host, checked before it changes anything.
preflight() {
  [[ "$(id -u)" -eq 0 ]] || die "needs root (network namespaces, links, mounts, iptables)"
  local command missing=()
  for command in containerd ctr runc ip iptables ipset; do
    command -v "$command" >/dev/null || missing+=("$command")
  done
  for command in bridge host-local firewall portmap loopback; do
    [[ -x "/usr/lib/cni/$command" ]] || missing+=("/usr/lib/cni/$command")
  done
  [[ ${#missing[@]} -eq 0 ]] || die "missing ${missing[*]} (Debian: containerd runc containernetworking-plugins iproute2 iptables ipset; scripts/install-system-packages.sh)"
}

up() {
  need_env
  preflight
  mkdir -p "$RUN_DIR"
  if [[ -f "$OWNER_FILE" && "$(cat "$OWNER_FILE")" != "$REAL_NODE_CLUSTER_DIR" ]]; then
    die "the real node of $(cat "$OWNER_FILE") is up on this host; one per host (its node-down first)"
  fi
  if alive containerd && alive kubelet && alive kube-proxy && alive coredns && addons_alive && node_ready; then
    log "$NODE_NAME is already up"
    return
  fi
  echo "$REAL_NODE_CLUSTER_DIR" >"$OWNER_FILE"
  local pause coredns
  eval "$("$SCRIPTS_DIR/docker-engine.sh")"
  pause="$(pause_image)"
  coredns="$(coredns_binary)"
  mkdir -p "$NODE_DIR"
  [[ -f "$RUN_DIR/sysctls" ]] || sysctl "${KUBELET_SYSCTLS[@]}" >"$RUN_DIR/sysctls"
  credentials
  write_configs "$pause"
  network
  storage
  alive containerd || start containerd containerd --config "$NODE_DIR/containerd.toml"
  wait_for containerd 30 ctr_ version
  docker save "$pause" | ctr_ images import - >/dev/null
  alive kubelet || start kubelet "$REAL_NODE_BIN_DIR/kubelet" --config "$NODE_DIR/kubelet.yaml" \
    --kubeconfig "$NODE_DIR/kubelet.kubeconfig" --root-dir "$KUBELET_DIR" \
    --hostname-override "$NODE_NAME" --node-ip "$NODE_IP" --node-labels "$NODE_LABEL=true"
  alive kube-proxy || start kube-proxy "$REAL_NODE_BIN_DIR/kube-proxy" --config "$NODE_DIR/kube-proxy.yaml"
  alive coredns || start coredns "$coredns" -conf "$NODE_DIR/Corefile"
  wait_for "node $NODE_NAME" 90 node_ready
  wait_for CoreDNS 30 bash -c "exec 3<>/dev/tcp/$NODE_IP/53"
  log "$NODE_NAME is Ready: label $NODE_LABEL=true, taint $NODE_LABEL=true:NoSchedule"
  addons_up
}

# --- add-ons: metrics-server and kube-router's network policy controller ---------

# binding KIND NAME ROLE_KIND ROLE USER [NAMESPACE]: a (Cluster)RoleBinding for one user.
binding() {
  cat <<EOF
---
apiVersion: rbac.authorization.k8s.io/v1
kind: $1
metadata: {name: "$2"${6:+, namespace: $6}}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: $3, name: "$4"}
subjects:
- {apiGroup: rbac.authorization.k8s.io, kind: User, name: "$5"}
EOF
}

# metrics-server runs on this host and serves the metrics.k8s.io API through the
# API server's aggregator: an APIService backed by a Service without selector
# whose endpoint is this address (kube-proxy DNATs the aggregator's connections).
# As a host process it needs no image, pod, ServiceAccount or node placement.
addon_resources() {
  local ca_bundle
  ca_bundle="$(base64 -w0 "$PKI/ca.crt")"
  {
    cat <<EOF
# metrics-server reads the kubelets' resource metrics and the nodes and pods
# (the rules of its upstream manifests), as system:metrics-server.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:metrics-server"}
rules:
- {apiGroups: [""], resources: [nodes/metrics], verbs: [get]}
- {apiGroups: [""], resources: [pods, nodes], verbs: [get, list, watch]}
---
# kubectl top for whoever may view pods (aggregated into view, edit, admin).
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata:
  name: "system:aggregated-metrics-reader"
  labels:
    rbac.authorization.k8s.io/aggregate-to-view: "true"
    rbac.authorization.k8s.io/aggregate-to-edit: "true"
    rbac.authorization.k8s.io/aggregate-to-admin: "true"
rules:
- {apiGroups: [metrics.k8s.io], resources: [pods, nodes], verbs: [get, list, watch]}
---
apiVersion: v1
kind: Service
metadata: {name: metrics-server, namespace: kube-system}
spec:
  ports: [{name: https, port: 443, targetPort: $METRICS_SERVER_PORT, protocol: TCP}]
---
# Its one endpoint: metrics-server on this host.
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: metrics-server
  namespace: kube-system
  labels:
    kubernetes.io/service-name: metrics-server
    endpointslice.kubernetes.io/managed-by: counter-template.local-real-node
addressType: IPv4
endpoints: [{addresses: [$NODE_IP], conditions: {ready: true}}]
ports: [{name: https, port: $METRICS_SERVER_PORT, protocol: TCP}]
---
apiVersion: apiregistration.k8s.io/v1
kind: APIService
metadata: {name: v1beta1.metrics.k8s.io}
spec:
  group: metrics.k8s.io
  version: v1beta1
  service: {name: metrics-server, namespace: kube-system, port: 443}
  # The aggregator checks metrics-server's certificate (cluster CA, name metrics-server.kube-system.svc).
  caBundle: $ca_bundle
  groupPriorityMinimum: 100
  versionPriority: 100
---
# kube-router's network policy controller watches these (its upstream rules,
# without the routing and service proxy parts), as system:kube-router.
apiVersion: rbac.authorization.k8s.io/v1
kind: ClusterRole
metadata: {name: "system:kube-router"}
rules:
- {apiGroups: [""], resources: [namespaces, pods, services, nodes, endpoints], verbs: [get, list, watch]}
- {apiGroups: [networking.k8s.io], resources: [networkpolicies], verbs: [get, list, watch]}
- {apiGroups: [discovery.k8s.io], resources: [endpointslices], verbs: [get, list, watch]}
EOF
    binding ClusterRoleBinding system:metrics-server ClusterRole system:metrics-server system:metrics-server
    # metrics-server checks its callers with the API server (TokenReview, SubjectAccessReview)
    # and trusts the client CA the API server publishes in kube-system.
    binding ClusterRoleBinding metrics-server:system:auth-delegator ClusterRole system:auth-delegator \
      system:metrics-server
    binding RoleBinding metrics-server-auth-reader Role extension-apiserver-authentication-reader \
      system:metrics-server kube-system
    binding ClusterRoleBinding system:kube-router ClusterRole system:kube-router system:kube-router
  } | kubectl_ apply -f - >/dev/null
}

metrics_served() {
  kubectl_ get --raw "/apis/metrics.k8s.io/v1beta1/nodes/$NODE_NAME" | grep -q '"cpu"'
}

# The HPA's pod metrics (metrics-server) and NetworkPolicy enforcement
# (kube-router), on a running node: node-up ends with this; alone it adds them
# to a node started without them. Idempotent.
addons_up() {
  node_ready || die "the real node is not up (scripts/kube-cluster.sh node-up)"
  preflight  # root, and ipset among the commands (alone, addons-up runs without up)
  local metrics_server kube_router
  metrics_server="$(metrics_server_binary)"
  kube_router="$(kube_router_binary)"
  mkdir -p "$RUN_DIR" "$NODE_DIR/pki" "$NODE_DIR/logs"
  # One name for the API server and, by its client certificate, for the kubelet
  # (webhook authorization: the RBAC above).
  sign metrics-server "/CN=system:metrics-server" "extendedKeyUsage=clientAuth"
  sign metrics-server-serving "/CN=metrics-server" "extendedKeyUsage=serverAuth
subjectAltName=DNS:metrics-server.kube-system.svc,IP:$NODE_IP"
  sign kube-router "/CN=system:kube-router" "extendedKeyUsage=clientAuth"
  kubeconfig metrics-server
  kubeconfig kube-router
  addon_resources
  # Only the real node has a kubelet to scrape; its serving certificate is
  # checked against the cluster CA.
  alive metrics-server || start metrics-server "$metrics_server" \
    --kubeconfig "$NODE_DIR/metrics-server.kubeconfig" \
    --authentication-kubeconfig "$NODE_DIR/metrics-server.kubeconfig" \
    --authorization-kubeconfig "$NODE_DIR/metrics-server.kubeconfig" \
    --bind-address "$NODE_IP" --secure-port "$METRICS_SERVER_PORT" \
    --tls-cert-file "$NODE_DIR/pki/metrics-server-serving.crt" \
    --tls-private-key-file "$NODE_DIR/pki/metrics-server-serving.key" \
    --kubelet-client-certificate "$NODE_DIR/pki/metrics-server.crt" \
    --kubelet-client-key "$NODE_DIR/pki/metrics-server.key" \
    --kubelet-certificate-authority "$PKI/ca.crt" \
    --kubelet-preferred-address-types InternalIP \
    --node-selector "$NODE_LABEL=true" --metric-resolution 15s
  # Network policies only: kube-proxy does Services, the CNI bridge the routing.
  # No health or metrics listener (they would bind every address of this host).
  alive kube-router || start kube-router "$kube_router" \
    --run-firewall=true --run-router=false --run-service-proxy=false \
    --kubeconfig "$NODE_DIR/kube-router.kubeconfig" --hostname-override "$NODE_NAME" \
    --service-cluster-ip-range "$REAL_NODE_SERVICE_CIDR" --enable-ipv6=false \
    --health-port 0 --metrics-port 0
  wait_for kube-router 60 iptables -n -L KUBE-ROUTER-FORWARD
  # The first CPU rate needs two scrapes.
  wait_for "metrics.k8s.io (metrics-server)" 120 metrics_served
  log "metrics-server serves metrics.k8s.io; kube-router enforces NetworkPolicies"
}

addons_alive() { alive metrics-server && alive kube-router; }

# Their API objects and processes. The APIService goes first: registered without
# metrics-server, it stalls every namespace deletion (discovery of metrics.k8s.io
# fails). Before remove_chains (kube-router's are KUBE-* chains), so nothing adds
# them back; then remove_ipsets.
addons_down() {
  if [[ -x "$REAL_NODE_BIN_DIR/kubectl" ]] && kubectl_ get --raw /readyz >/dev/null 2>&1; then
    kubectl_ delete apiservice v1beta1.metrics.k8s.io --ignore-not-found >/dev/null
    kubectl_ delete --namespace kube-system service,endpointslice metrics-server --ignore-not-found >/dev/null
  fi
  stop kube-router
  stop metrics-server
}

# kube-router's ipsets, once no rule uses them.
remove_ipsets() {
  local set
  command -v ipset >/dev/null || return 0
  for set in $(ipset list -n 2>/dev/null | grep -E '^(inet6:)?KUBE-(SRC|DST)-'); do
    ipset destroy "$set" 2>/dev/null || true
  done
}

# Every pod's containers and sandboxes, through the CRI path the kubelet uses
# would need the kubelet; with it stopped, kill the tasks and let the netns and
# mount cleanup below remove what their CNI teardown would have.
stop_containers() {
  local id
  ctr_ version >/dev/null 2>&1 || return 0
  # Without CNI DEL their results stay in libcni's fixed cache (loopback's too).
  for id in $(ctr_ containers ls -q 2>/dev/null); do rm -f /var/lib/cni/results/*-"$id"-*; done
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks kill -s SIGKILL "$id" >/dev/null 2>&1 || true; done
  sleep 1
  for id in $(ctr_ tasks ls -q 2>/dev/null); do ctr_ tasks delete --force "$id" >/dev/null 2>&1 || true; done
  for id in $(ctr_ containers ls -q 2>/dev/null); do ctr_ containers delete "$id" >/dev/null 2>&1 || true; done
}

# Shims outlive containerd; they are ours when their command line names our socket.
stop_shims() {
  local proc
  for proc in /proc/[0-9]*; do
    if tr '\0' ' ' 2>/dev/null <"$proc/cmdline" | grep -q -- "-address $SOCKET "; then
      kill -KILL "${proc#/proc/}" 2>/dev/null || true
    fi
  done
}

# What is left in the kubelet's cgroups (kubepods, one tree per controller) is
# ours: kill it, then remove the tree deepest first.
remove_cgroups() {
  local tree pid
  for tree in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$tree" ]] || continue
    find "$tree" -name cgroup.procs -exec cat {} + 2>/dev/null | while read -r pid; do
      kill -KILL "$pid" 2>/dev/null || true
    done
  done
  sleep 0.5
  for tree in /sys/fs/cgroup/*/kubepods; do
    [[ -d "$tree" ]] && find "$tree" -depth -type d -exec rmdir {} + 2>/dev/null || true
  done
}

unmount_under() {
  local dir="$1" target
  [[ -d "$dir" ]] || return 0
  # Deepest first: pod volumes, then the kubelet's bind mount of its own root dir.
  findmnt -rn -o TARGET | awk -v d="$dir" 'index($0, d) == 1' | sort -r | while read -r target; do
    umount "$target" 2>/dev/null || umount -l "$target"
  done
}

# remove_chains PREFIXES: the chains named PREFIX-* (an ERE alternation) of every
# table, and the rules in other chains that jump to them. Ours: KUBE-* (kube-proxy,
# kubelet, kube-router) and CNI-* (firewall, portmap).
remove_chains() {
  local prefixes="$1" family table chains
  for family in iptables ip6tables; do
    command -v "$family-save" >/dev/null || continue
    for table in filter nat mangle raw; do
      chains="$("$family-save" -t "$table" 2>/dev/null | sed -nE "s/^:(($prefixes)-[^ ]*) .*/\1/p")"
      [[ -n "$chains" ]] || continue
      {
        echo "*$table"
        "$family-save" -t "$table" | sed -nE "/^-A ($prefixes)-/d; /^-A .* -j ($prefixes)-/s/^-A /-D /p"
        sed 's/^/-F /' <<<"$chains"
        sed 's/^/-X /' <<<"$chains"
        echo COMMIT
      } | "$family-restore" --noflush
    done
  done
}

down() {
  need_env
  if [[ -f "$OWNER_FILE" && "$(cat "$OWNER_FILE")" != "$REAL_NODE_CLUSTER_DIR" ]]; then
    die "the real node on this host belongs to $(cat "$OWNER_FILE"), not to this cluster"
  fi
  addons_down
  stop coredns
  stop kube-proxy
  stop kubelet
  stop_containers
  stop containerd
  stop_shims
  remove_cgroups
  unmount_under "$RUN_DIR"
  unmount_under "$KUBELET_DIR"
  unmount_under "$NODE_DIR"
  ip link del "$BRIDGE" 2>/dev/null || true
  ip link del "$NODE_LINK" 2>/dev/null || true  # its peer and routes go with it
  remove_chains 'KUBE|CNI'
  remove_ipsets
  [[ -f "$RUN_DIR/sysctls" ]] && sysctl -q -p "$RUN_DIR/sysctls" >/dev/null
  rm -rf --one-file-system "$NODE_DIR" "$RUN_DIR" "$(dirname "$KUBELET_DIR")"
  rm -f /var/lib/cni/results/counter-template-*
  # The kubelet links every container's log here (a fixed path): remove ours.
  find /var/log/containers -maxdepth 1 -type l -lname "$NODE_DIR/*" -delete 2>/dev/null || true
  if [[ -x "$REAL_NODE_BIN_DIR/kubectl" ]] && kubectl_ get --raw /readyz >/dev/null 2>&1; then
    kubectl_ delete node "$NODE_NAME" --ignore-not-found >/dev/null
    kubectl_ delete persistentvolume --selector "$NODE_LABEL=true" --wait=false >/dev/null
  fi
  log "$NODE_NAME removed"
}

case "${1:-}" in
  # The slow builds alone (CoreDNS, metrics-server, kube-router), so kube-cluster.sh build can do them ahead of up.
  build)
    [[ -n "${REAL_NODE_CACHE_DIR:-}" ]] || die "REAL_NODE_CACHE_DIR is not set (run me through scripts/kube-cluster.sh build)"
    coredns_binary >/dev/null
    metrics_server_binary >/dev/null
    kube_router_binary >/dev/null
    ;;
  up) up ;;
  down) down ;;
  # The add-ons alone, on a running node (up and down do them too).
  addons-up)
    need_env
    addons_up
    ;;
  addons-down)
    need_env
    addons_down
    remove_chains 'KUBE-ROUTER|KUBE-POD-FW|KUBE-NWPLCY'
    remove_ipsets
    ;;
  status)
    need_env
    alive containerd && alive kubelet && alive kube-proxy && alive coredns && node_ready \
      || die "the real node is not up (scripts/kube-cluster.sh node-up)"
    addons_alive || die "metrics-server or kube-router is not running (scripts/kube-cluster.sh node-addons-up)"
    echo "$NODE_NAME"
    ;;
  import)
    # docker save IMAGE... | real-node.sh import: images for the pods on this node.
    ctr_ images import - >/dev/null
    ;;
  *) die "usage: real-node.sh build | up | down | status | import | addons-up | addons-down" ;;
esac
