#!/usr/bin/env bash
# A local Kubernetes control plane with simulated nodes, for deploying baked
# projects for real: etcd, kube-apiserver, kube-controller-manager and
# kube-scheduler run as plain processes under `kwokctl --runtime binary`, and
# KWOK plays the kubelets (pods become Running/Ready, nothing is executed).
# No container engine and no download site are needed: every binary is built
# from the Go module proxy (scripts/control-plane/go.mod) and cached.
#
# The scheduler has extra profiles for tests: scripts/kube-scheduler-config.yaml.
#
# Usage: scripts/kube-cluster.sh COMMAND
#   build       build/cache the binaries and the real node's CoreDNS, metrics-server and
#               kube-router (cold: ~25 min on 2 cores; then instant)
#   up          build, create the cluster, add nodes, a default StorageClass with
#               volumes, and the Istio + Prometheus Operator CRDs; prints the
#               kubeconfig path (use: export KUBECONFIG=<path>)
#   down        delete the cluster
#   kubeconfig  print the kubeconfig path of the running cluster (exit 1 if none)
#   bin-dir     print the binaries' directory of the running cluster (kubectl that
#               matches the server; never builds)
#   node-up     add a real node that runs pods (scripts/real-node.sh): kubelet,
#               kube-proxy, its own containerd, CNI bridge, CoreDNS, metrics-server
#               (metrics.k8s.io, for the HPA) and kube-router (NetworkPolicies); label
#               and taint counter-template.local/real-node=true (root; one per host)
#   node-down   remove it: processes, mounts, links, iptables chains, ipsets (down does too)
#   node-addons-up, node-addons-down
#               start or remove only metrics-server and kube-router on a running node
#   node-status exit 0 when the real node runs and is Ready
#   node-import `docker save IMAGE... | kube-cluster.sh node-import`: images for its pods
# Environment:
#   COUNTER_TEMPLATE_CLUSTER   cluster name (default: counter-template-<hash of this
#                              checkout's path>, so two clones, or a clone beside a CI
#                              run, never share or tear down each other's cluster)
#   CLUSTER_NODES              simulated nodes (default 4, in 2 zones)
#   CRD_SCHEMA_LOCATION        CRD JSON schemas in {group}/{kind}_{version}.json
#                              layout: a directory, a URL prefix or a kubeconform
#                              location template (default: the public CRDs-catalog)
#   KWOK_VERSION               kwok/kwokctl pin (the Kubernetes version is the one
#                              scripts/control-plane/go.mod builds: update.sh changes it)
#   COUNTER_TEMPLATE_CACHE     cache root (default ~/.cache/counter-template)
#   KWOK_WORKDIR               kwokctl's state: config, PKI, logs, etcd data
#                              (default <cache root>/kwok)
#   PYTHON                     runs crds_from_schemas.py (default python3)
set -euo pipefail
# `dir="$(build)"` must stop at a failed step inside build, as the script does.
shopt -s inherit_errexit

KWOK_VERSION="${KWOK_VERSION:-v0.8.0}"
NODES="${CLUSTER_NODES:-4}"
CRD_SCHEMA_LOCATION="${CRD_SCHEMA_LOCATION:-https://raw.githubusercontent.com/datreeio/CRDs-catalog/main}"
# The custom resources the chart renders (group/version/kind).
CRDS=(
  networking.istio.io/v1/VirtualService
  networking.istio.io/v1/DestinationRule
  monitoring.coreos.com/v1/ServiceMonitor
  monitoring.coreos.com/v1/PrometheusRule
)

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CLUSTER="${COUNTER_TEMPLATE_CLUSTER:-counter-template-$(cd "$SCRIPTS_DIR/.." && pwd -P | sha256sum | cut -c1-8)}"
MODULE_DIR="$SCRIPTS_DIR/control-plane"
KUBE_VERSION="$(awk '$1 == "k8s.io/kubernetes" && $2 ~ /^v/ { print $2; exit }' "$MODULE_DIR/go.mod")"
CACHE_DIR="${COUNTER_TEMPLATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/counter-template}"
# kwokctl keeps each cluster's config, PKI, logs and etcd data here.
export KWOK_WORKDIR="${KWOK_WORKDIR:-$CACHE_DIR/kwok}"
CLUSTER_DIR="$KWOK_WORKDIR/clusters/$CLUSTER"
KUBECONFIG_FILE="$CLUSTER_DIR/counter-template.kubeconfig"
KWOKCTL_CONFIG="$CLUSTER_DIR/counter-template.kwokctl.yaml"
# Services get addresses in 198.19.0.0/16 (benchmarking range, RFC 2544), not a
# private range: traffic to them never leaves this host (scripts/real-node.sh).
SERVICE_CIDR=198.19.0.0/16
# Which binaries the cluster was started with: down and kubectl keep using them
# even if go.mod or the Go version changed since.
BIN_LINK="$CLUSTER_DIR/counter-template.bin"

die() { echo "kube-cluster.sh: $*" >&2; exit 1; }

# The binaries live in a directory named after everything that decides them,
# so a changed pin or go.sum builds afresh and an interrupted build never counts.
bin_dir() {
  local key
  key="$( (cat "$MODULE_DIR/go.mod" "$MODULE_DIR/go.sum"; echo "$KWOK_VERSION"; go env GOVERSION) \
    | sha256sum | cut -c1-12)"
  echo "$CACHE_DIR/control-plane/$KUBE_VERSION-$key"
}

BINARIES=(etcd kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy kwok kwokctl)

built() {
  local dir="$1" name
  for name in "${BINARIES[@]}"; do [[ -x "$dir/$name" ]] || return 1; done
}

# Same stamps as Kubernetes' hack/lib/version.sh: without them the binaries
# report v0.0.0 and kwokctl, kubectl and helm pick the wrong behaviour.
kube_ldflags() {
  local major minor package flags="-s -w"
  IFS=. read -r major minor _ <<<"${KUBE_VERSION#v}"
  for package in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
    flags+=" -X $package.gitVersion=$KUBE_VERSION -X $package.gitMajor=$major -X $package.gitMinor=$minor"
    flags+=" -X $package.gitTreeState=clean -X $package.buildDate=1970-01-01T00:00:00Z"
  done
  echo "$flags"
}

build() {
  command -v go >/dev/null 2>&1 || die "'go' is required to build the control plane (https://go.dev/dl/)"
  local dir staging
  dir="$(bin_dir)"
  # The real node's CoreDNS (cached), here so test-env's background build covers it.
  REAL_NODE_CACHE_DIR="$CACHE_DIR" "$SCRIPTS_DIR/real-node.sh" build
  built "$dir" && { echo "$dir"; return; }
  mkdir -p "$CACHE_DIR/control-plane"
  staging="$(mktemp -d "$CACHE_DIR/control-plane/.build-XXXXXX")"
  trap 'rm -rf "$staging"' EXIT
  echo "building Kubernetes $KUBE_VERSION control plane, kubelet, kube-proxy + etcd (cold: ~11 min) ..." >&2
  (cd "$MODULE_DIR" && CGO_ENABLED=0 go build -trimpath -ldflags "$(kube_ldflags)" -o "$staging/" \
    k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
    k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kubectl \
    k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kube-proxy go.etcd.io/etcd/server/v3)
  mv "$staging/server" "$staging/etcd"  # go names it after the path: server/v3
  echo "building kwok + kwokctl $KWOK_VERSION ..." >&2
  # kwok has no replace directives, so plain `go install` works (own pins).
  GOBIN="$staging" CGO_ENABLED=0 go install -trimpath \
    -ldflags "-s -w -X sigs.k8s.io/kwok/pkg/consts.Version=$KWOK_VERSION" \
    "sigs.k8s.io/kwok/cmd/kwok@$KWOK_VERSION" "sigs.k8s.io/kwok/cmd/kwokctl@$KWOK_VERSION"
  built "$staging" || die "build finished without all of: ${BINARIES[*]}"
  rm -rf "$dir"
  mv "$staging" "$dir"
  trap - EXIT
  echo "$dir"
}

# The binaries of the cluster that exists, else the ones go.mod builds now.
cluster_bin_dir() {
  if [[ -d "$BIN_LINK" ]]; then readlink -f "$BIN_LINK"; else bin_dir; fi
}

kwokctl_() {
  "$(cluster_bin_dir)/kwokctl" --name "$CLUSTER" "$@"
}

kubectl_() {
  "$(cluster_bin_dir)/kubectl" --kubeconfig "$KUBECONFIG_FILE" "$@"
}

running() {
  [[ -f "$KUBECONFIG_FILE" && -x "$(cluster_bin_dir)/kubectl" ]] && kubectl_ get --raw /readyz >/dev/null 2>&1
}

# Nodes node-0..N-1, labelled like a cloud provider's. The zones are uneven on
# purpose: the last node alone is zone-b, so spreading over zones (2+2 pods)
# and spreading over nodes (3+1) give different placements.
add_nodes() {
  local i zone
  for ((i = 0; i < NODES; i++)); do
    zone=zone-a
    ((i == NODES - 1)) && zone=zone-b
    cat <<EOF
---
apiVersion: v1
kind: Node
metadata:
  name: node-$i
  annotations:
    kwok.x-k8s.io/node: fake
    node.alpha.kubernetes.io/ttl: "0"
  labels:
    kubernetes.io/hostname: node-$i
    kubernetes.io/os: linux
    kubernetes.io/arch: amd64
    kubernetes.io/role: agent
    type: kwok
    topology.kubernetes.io/region: local
    topology.kubernetes.io/zone: $zone
spec: {}
status:
  allocatable: {cpu: "4", memory: 16Gi, pods: "110"}
  capacity: {cpu: "4", memory: 16Gi, pods: "110"}
EOF
  done | kubectl_ apply -f - >/dev/null
  kubectl_ wait --for=condition=Ready node --all --timeout=60s >/dev/null
}

# No volume provisioner runs here, so a default StorageClass without one and
# pre-made volumes bind claims statically, as on a bare-metal cluster.
add_storage() {
  local i
  {
    cat <<EOF
apiVersion: storage.k8s.io/v1
kind: StorageClass
metadata:
  name: standard
  annotations:
    storageclass.kubernetes.io/is-default-class: "true"
provisioner: kubernetes.io/no-provisioner
volumeBindingMode: Immediate
reclaimPolicy: Retain
EOF
    for ((i = 0; i < 40; i++)); do
      cat <<EOF
---
apiVersion: v1
kind: PersistentVolume
metadata:
  name: local-volume-$i
spec:
  storageClassName: standard
  capacity: {storage: 8Gi}
  accessModes: [ReadWriteOnce]
  persistentVolumeReclaimPolicy: Retain
  hostPath: {path: /tmp/kwok-volumes/$i}
EOF
    done
  } | kubectl_ apply -f - >/dev/null
}

# The CRDs as one List, built before anything starts: an unreachable schema
# location stops `up` at once, with one line naming the variable.
crd_manifests() {
  "${PYTHON:-python3}" "$SCRIPTS_DIR/crds_from_schemas.py" --schemas "$CRD_SCHEMA_LOCATION" "${CRDS[@]}" \
    || die "no CRDs for the cluster: the schemas at CRD_SCHEMA_LOCATION=$CRD_SCHEMA_LOCATION could not be read (offline: set CRD_SCHEMA_LOCATION to a local directory laid out {group}/{kind}_{version}.json)"
}

add_crds() {  # MANIFESTS
  kubectl_ apply --server-side -f - <<<"$1" >/dev/null
  kubectl_ wait --for=condition=Established crd --all --timeout=60s >/dev/null
}

# Changes to what kwokctl runs: the Service range; the API server reaches real
# kubelets by InternalIP with the admin certificate and checks theirs against the
# cluster CA (kubectl logs/exec/port-forward); the KWOK controller plays only the
# simulated nodes (annotation kwok.x-k8s.io/node=fake), never the real one.
write_kwokctl_config() {
  cat >"$KWOKCTL_CONFIG" <<EOF
apiVersion: config.kwok.x-k8s.io/v1alpha1
kind: KwokctlConfiguration
componentsPatches:
- name: kube-apiserver
  extraArgs:
  - {key: service-cluster-ip-range, value: $SERVICE_CIDR}
  - {key: kubelet-preferred-address-types, value: "InternalIP,Hostname"}
  - {key: kubelet-client-certificate, value: $CLUSTER_DIR/pki/admin.crt}
  - {key: kubelet-client-key, value: $CLUSTER_DIR/pki/admin.key}
  - {key: kubelet-certificate-authority, value: $CLUSTER_DIR/pki/ca.crt}
- name: kwok-controller
  extraArgs:
  - {key: manage-all-nodes, value: "false", override: true}
  - {key: manage-nodes-with-annotation-selector, value: kwok.x-k8s.io/node=fake}
EOF
}

# scripts/real-node.sh for this cluster.
real_node() {
  REAL_NODE_CLUSTER_DIR="$CLUSTER_DIR" REAL_NODE_KUBECONFIG="$KUBECONFIG_FILE" \
    REAL_NODE_BIN_DIR="$(cluster_bin_dir)" REAL_NODE_CACHE_DIR="$CACHE_DIR" \
    REAL_NODE_SERVICE_CIDR="$SERVICE_CIDR" "$SCRIPTS_DIR/real-node.sh" "$@"
}

up() {
  local dir crds
  crds="$(crd_manifests)"
  if running; then
    echo "cluster $CLUSTER is already up" >&2
  else
    [[ -d "$CLUSTER_DIR" ]] && down
    dir="$(build)"
    mkdir -p "$CLUSTER_DIR"
    ln -sfn "$dir" "$BIN_LINK"
    write_kwokctl_config
    echo "starting cluster $CLUSTER (kwokctl --runtime binary) ..." >&2
    KWOK_KUBECTL_BINARY="$dir/kubectl" kwokctl_ --config "$KWOKCTL_CONFIG" create cluster --runtime binary --wait 2m \
      --kubeconfig "$KUBECONFIG_FILE" \
      --etcd-binary "$dir/etcd" \
      --kube-apiserver-binary "$dir/kube-apiserver" \
      --kube-controller-manager-binary "$dir/kube-controller-manager" \
      --kube-scheduler-binary "$dir/kube-scheduler" \
      --kwok-controller-binary "$dir/kwok" \
      --kube-scheduler-config "$SCRIPTS_DIR/kube-scheduler-config.yaml" >&2
    # kwokctl only logs a --wait timeout; say where to look instead of failing later.
    running || die "cluster $CLUSTER did not become ready; its logs: $CLUSTER_DIR/logs"
    add_nodes
    add_storage
  fi
  add_crds "$crds"
  echo "cluster $CLUSTER: $NODES nodes, CRDs: ${CRDS[*]}" >&2
  echo "$KUBECONFIG_FILE"
}

down() {
  [[ -d "$CLUSTER_DIR" ]] || return 0
  # The real node first: rm -rf must not meet its mounts.
  if [[ -d "$CLUSTER_DIR/real-node" ]]; then real_node down; fi
  [[ -x "$(cluster_bin_dir)/kwokctl" ]] \
    || die "no kwokctl to stop cluster $CLUSTER with; its processes may still run (state: $CLUSTER_DIR)"
  # Stops the processes and removes the state (the recorded binaries link included).
  kwokctl_ delete cluster >&2
  rm -rf "$CLUSTER_DIR"
}

case "${1:-}" in
  build) build ;;
  up) up ;;
  down) down ;;
  kubeconfig | bin-dir)
    running || die "cluster $CLUSTER is not running (start it: make cluster-up)"
    if [[ "$1" == kubeconfig ]]; then echo "$KUBECONFIG_FILE"; else cluster_bin_dir; fi
    ;;
  node-up | node-down | node-status | node-import | node-addons-up | node-addons-down)
    [[ "$1" == node-down ]] || running || die "cluster $CLUSTER is not running (start it: make cluster-up)"
    real_node "${1#node-}"
    ;;
  -h | --help | "") sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//' ;;
  *) die "unknown command '$1' (allowed: build, up, down, kubeconfig, bin-dir, node-up, node-down, node-status, node-import, node-addons-up, node-addons-down)" ;;
esac
