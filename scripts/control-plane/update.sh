#!/usr/bin/env bash
# Regenerate go.mod/go.sum of this wrapper module for another Kubernetes release:
#   scripts/control-plane/update.sh v1.36.3
# Every `k8s.io/X => ./staging/src/k8s.io/X` replace of that release's go.mod
# becomes `k8s.io/X => k8s.io/X v0.Y.Z` (the published staging tag; the ones
# never published, like sample-cli-plugin, are not needed and dropped); etcd
# stays at the version that release pins.
set -euo pipefail
shopt -s inherit_errexit
version="${1:-}"
[[ "$version" =~ ^v1\.[0-9]+\.[0-9]+$ ]] || { echo "usage: update.sh v1.Y.Z (got '$version')" >&2; exit 2; }
cd "$(dirname "$0")"
upstream="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
staging="v0.${version#v1.}"
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$upstream")"
[[ -n "$etcd" ]] || { echo "update.sh: $upstream pins no go.etcd.io/etcd/server/v3" >&2; exit 1; }
{
  sed -n '1,/^module /p' go.mod
  echo
  awk '$1 == "go" { print; exit }' "$upstream"
  echo
  echo "require ("
  echo "	k8s.io/kubernetes $version"
  echo "	go.etcd.io/etcd/server/v3 $etcd"
  echo ")"
  echo
  echo "replace ("
  awk '$3 ~ /^\.\/staging\// { print $1 }' "$upstream" | while read -r module; do
    if error="$(GOFLAGS=-mod=mod go mod download "$module@$staging" 2>&1)"; then
      echo "	$module => $module $staging"
    else
      echo "update.sh: leaving out $module (not served at $staging: ${error##*$'\n'})" >&2
    fi
  done
  echo ")"
  echo
  for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl kubelet kube-proxy; do
    echo "tool k8s.io/kubernetes/cmd/$tool"
  done
  echo "tool go.etcd.io/etcd/server/v3"
} >go.mod.new
mv go.mod.new go.mod
rm -f go.sum
GOFLAGS=-mod=mod go mod tidy
echo "go.mod now builds Kubernetes $version with etcd $etcd" >&2
