#!/usr/bin/env bash
# Prepares this machine for the template's test suite and prints the
# environment for it; `make test` runs: eval "$(scripts/test-env.sh)" && pytest.
# Progress goes to stderr, export lines to stdout. Every step is idempotent and
# cached, so a second run takes seconds.
#
#   1. Go >= go.mod's (scripts/install-go.sh), then the control plane build in
#      the background (CPU-bound, ~10 min cold; it overlaps the I/O-bound steps)
#   2. system packages, when root or passwordless sudo and apt are there
#      (scripts/install-system-packages.sh)
#   3. a Docker engine and compose (scripts/docker-engine.sh)
#   4. offline only: stand-in base images (scripts/base-images.sh) and the
#      schema cache as KUBECONFORM_SCHEMA_LOCATION
#   5. helm, kubeconform, kubectl, actionlint and the schema cache (scripts/install-tools.sh)
#   6. this checkout's local Kubernetes cluster (scripts/kube-cluster.sh up)
#      and its real node, which runs pods (kube-cluster.sh node-up; needs root)
#
# A step that cannot be done is one line on stderr, and the tests that need
# its result skip with that line as the reason (COUNTER_TEMPLATE_SETUP_NOTES);
# with COUNTER_TEMPLATE_STRICT=1 (CI) the first such step fails the run instead.
#
# Env: COUNTER_TEMPLATE_OFFLINE   auto (default: probe the registry and GitHub), 1 or 0
#      KUBECONFORM_SCHEMA_LOCATION, CRD_SCHEMA_LOCATION  kept when set (offline, the
#                                 CRD schemas must be a local directory: see README)
#      COUNTER_TEMPLATE_CLUSTER   the cluster's name (default: one per checkout)
#      COUNTER_TEMPLATE_NO_CLUSTER=1  skip step 6 (and the control plane build)
#      PYTHON                     the template venv's python (runs build-schemas.py)
set -uo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."

STRICT="${COUNTER_TEMPLATE_STRICT:-}"
[[ "$STRICT" == 0 || "$STRICT" == false ]] && STRICT=""
CACHE_DIR="${COUNTER_TEMPLATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/counter-template}"
mkdir -p "$CACHE_DIR"
notes=()

step() { printf '\n=== test-env: %s (%ss)\n' "$*" "$SECONDS" >&2; }
export_var() { printf 'export %s=%q\n' "$1" "$2"; export "$1=$2"; }

# A step that did not work: stop under strict mode, else note it for the tests.
unavailable() {  # COMPONENT REASON
  printf 'test-env: %s unavailable: %s\n' "$1" "$2" >&2
  if [[ -n "$STRICT" ]]; then
    echo "test-env: COUNTER_TEMPLATE_STRICT is set, so this fails the run" >&2
    exit 1
  fi
  notes+=("$1: $2")
}

step "Go toolchain"
if go_bin="$(scripts/install-go.sh)"; then
  export_var PATH "$go_bin:$PATH"
else
  unavailable go "scripts/install-go.sh failed (above); helm, kubeconform and the cluster are built with Go"
fi

control_plane_build=""
if [[ -z "${COUNTER_TEMPLATE_NO_CLUSTER:-}" ]] && command -v go >/dev/null; then
  step "control plane build (background)"
  control_plane_log="$CACHE_DIR/control-plane-build.log"
  scripts/kube-cluster.sh build >"$control_plane_log" 2>&1 &
  control_plane_build=$!
  # Never leave the build behind when this script is stopped.
  trap '[[ -n "$control_plane_build" ]] && kill "$control_plane_build" 2>/dev/null' EXIT
fi

step "system packages"
if ! packages_log="$(scripts/install-system-packages.sh 2>&1)"; then
  unavailable "system packages" "$(tail -n 1 <<<"$packages_log")"
else
  printf '%s\n' "$packages_log" >&2
fi

step "docker engine + compose"
if engine_env="$(scripts/docker-engine.sh)"; then
  eval "$engine_env"
  printf '%s\n' "$engine_env"
else
  unavailable docker "scripts/docker-engine.sh could not start an engine (above)"
fi

step "network"
offline="${COUNTER_TEMPLATE_OFFLINE:-auto}"
if [[ "$offline" == auto ]]; then
  if python3 - <<'PY'
import sys, urllib.error, urllib.request
for url in ("https://registry-1.docker.io/v2/", "https://raw.githubusercontent.com/"):
    try:
        urllib.request.urlopen(url, timeout=5)
    except urllib.error.HTTPError:
        pass  # it answered
    except OSError:
        sys.exit(1)
PY
  then offline=0; else offline=1; fi
fi
if [[ "$offline" == 1 ]]; then
  echo "test-env: offline (COUNTER_TEMPLATE_OFFLINE=1, or the registry and GitHub do not answer): stand-in images, local schemas" >&2
  if docker info >/dev/null 2>&1; then
    step "stand-in base images (no registry)"
    if images_env="$(scripts/base-images.sh)"; then
      eval "$images_env"
      printf '%s\n' "$images_env"
    else
      unavailable "stand-in images" "scripts/base-images.sh failed (above)"
    fi
  fi
  [[ -n "${KUBECONFORM_SCHEMA_LOCATION:-}" ]] || export_var KUBECONFORM_SCHEMA_LOCATION "$CACHE_DIR/kube-schemas"
  if [[ -z "${CRD_SCHEMA_LOCATION:-}" ]]; then
    unavailable "CRD schemas" "offline and CRD_SCHEMA_LOCATION is not set: point it at a directory laid out {group}/{kind}_{version}.json (README: offline machines)"
  fi
else
  echo "test-env: online: official images and schema locations" >&2
fi
[[ -n "${CRD_SCHEMA_LOCATION:-}" ]] && export_var CRD_SCHEMA_LOCATION "$CRD_SCHEMA_LOCATION"

step "helm, kubeconform, kubectl, actionlint, schema cache"
if command -v go >/dev/null && tools_bin="$(scripts/install-tools.sh)"; then
  export_var PATH "$tools_bin:$PATH"
else
  unavailable "kubernetes tools" "scripts/install-tools.sh failed or Go is missing (above)"
fi

if [[ -n "$control_plane_build" ]]; then
  step "local Kubernetes cluster"
  if ! wait "$control_plane_build"; then
    tail -n 20 "$control_plane_log" >&2
    unavailable cluster "the control plane build failed (log: $control_plane_log)"
  elif [[ -z "${CRD_SCHEMA_LOCATION:-}" && "$offline" == 1 ]]; then
    unavailable cluster "its CRDs need CRD_SCHEMA_LOCATION offline (see above)"
  elif scripts/kube-cluster.sh up >/dev/null; then
    export_var COUNTER_TEMPLATE_KUBECONFIG "$(scripts/kube-cluster.sh kubeconfig)"
    step "real node (kubelet, containerd, CNI, CoreDNS)"
    if ! node_log="$(scripts/kube-cluster.sh node-up 2>&1)"; then
      printf '%s\n' "$node_log" | tail -n 20 >&2
      unavailable "real node" "$(tail -n 1 <<<"$node_log")"
    fi
  else
    unavailable cluster "scripts/kube-cluster.sh up failed (above)"
  fi
  control_plane_build=""
elif [[ -n "${COUNTER_TEMPLATE_NO_CLUSTER:-}" ]]; then
  notes+=("cluster: COUNTER_TEMPLATE_NO_CLUSTER is set")
fi

if [[ ${#notes[@]} -gt 0 ]]; then
  export_var COUNTER_TEMPLATE_SETUP_NOTES "$(printf '%s\n' "${notes[@]}")"
  printf '\ntest-env: not set up (the tests that need these skip):\n' >&2
  printf '  %s\n' "${notes[@]}" >&2
fi
step "ready"
