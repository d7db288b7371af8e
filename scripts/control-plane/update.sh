#!/usr/bin/env bash
# Regenerate go.mod/go.sum of this wrapper module for another Kubernetes release:
#   scripts/control-plane/update.sh v1.36.3
# Every `k8s.io/X => ./staging/src/k8s.io/X` replace of that release's go.mod
# becomes `k8s.io/X => k8s.io/X v0.Y.Z` (the published staging tag; the ones
# never published, like sample-cli-plugin, are not needed and dropped); etcd
# stays at the version that release pins.
set -euo pipefail
version="${1:?usage: update.sh vX.Y.Z}"
cd "$(dirname "$0")"
upstream="$(GOFLAGS=-mod=mod go mod download -json "k8s.io/kubernetes@$version" | sed -n 's/^[[:space:]]*"GoMod": "\(.*\)",$/\1/p')"
staging="v0.${version#v1.}"
etcd="$(awk '$1 == "go.etcd.io/etcd/server/v3" { print $2; exit }' "$upstream")"
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
    if GOFLAGS=-mod=mod go mod download "$module@$staging" 2>/dev/null; then
      echo "	$module => $module $staging"
    fi
  done
  echo ")"
  echo
  for tool in kube-apiserver kube-controller-manager kube-scheduler kubectl; do
    echo "tool k8s.io/kubernetes/cmd/$tool"
  done
  echo "tool go.etcd.io/etcd/server/v3"
} >go.mod.new
mv go.mod.new go.mod
rm -f go.sum
GOFLAGS=-mod=mod go mod tidy
echo "go.mod now builds Kubernetes $version with etcd $etcd" >&2
