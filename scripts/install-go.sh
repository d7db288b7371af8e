#!/usr/bin/env bash
# Makes the Go toolchain the builds need (helm, kubeconform, the control plane)
# available and prints its bin directory, for PATH="$(scripts/install-go.sh):$PATH".
#
# The wrapper modules need the Go version of scripts/control-plane/go.mod
# (1.26); Debian bookworm's golang-go is 1.19. Any Go >= 1.21 can fetch a newer
# toolchain by itself: with GOTOOLCHAIN=goX.Y.Z it downloads the module
# golang.org/toolchain from the Go module proxy, so no download site is needed.
#   1. a `go` on PATH (or /usr/local/go) that is new enough is used as it is;
#   2. else a bootstrap Go >= 1.21: one on PATH, Debian/Ubuntu's golang-1.2x-go,
#      or installed with apt (bookworm: from bookworm-backports, added if missing);
#   3. the bootstrap fetches GO_VERSION and bin/go in the cache links to it.
# Idempotent; progress on stderr.
#
# Env: GO_VERSION             toolchain to fetch (default: go.mod's go line, newest patch pinned below)
#      COUNTER_TEMPLATE_CACHE machine-level cache (default ~/.cache/counter-template)
#      GOPROXY                as for go itself (default proxy.golang.org)
set -euo pipefail

SCRIPTS_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
CACHE_DIR="${COUNTER_TEMPLATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/counter-template}"
GO_BIN_DIR="$CACHE_DIR/go/bin"
# The minimum is what the wrapper module declares; the pin is the patch release fetched.
REQUIRED="$(awk '$1 == "go" { print $2; exit }' "$SCRIPTS_DIR/control-plane/go.mod")"
GO_VERSION="${GO_VERSION:-go1.26.8}"

log() { printf 'install-go: %s\n' "$*" >&2; }
die() { log "$*"; exit 1; }

as_root() {
  if [ "$(id -u)" -eq 0 ]; then "$@"
  elif sudo -n true 2>/dev/null; then sudo "$@"
  else return 1
  fi
}

# "1.26.0" -> comparable number; go versions look like go1.26.8 or go1.26rc1.
version_number() {
  local major minor patch
  IFS=. read -r major minor patch <<<"${1#go}"
  echo $((major * 1000000 + ${minor%%[!0-9]*} * 1000 + ${patch:-0}))
}

go_version_of() {  # GO_BINARY -> e.g. go1.26.8 (the binary's own, never a toolchain switch)
  GOTOOLCHAIN=local "$1" env GOVERSION 2>/dev/null
}

new_enough() {  # GO_BINARY MINIMUM
  local version
  version="$(go_version_of "$1")" || return 1
  version="${version#go}"
  [ "$(version_number "${version%%[!0-9.]*}")" -ge "$(version_number "$2")" ]
}

candidates() {
  command -v go 2>/dev/null || true
  echo /usr/local/go/bin/go
  ls -d /usr/lib/go-1.*/bin/go 2>/dev/null | sort -t. -k2 -n -r || true
}

for go in $(candidates); do
  if [ -x "$go" ] && new_enough "$go" "$REQUIRED"; then
    log "using $go ($(go_version_of "$go"))"
    dirname "$(readlink -f "$go")"
    exit 0
  fi
done

if [ -x "$GO_BIN_DIR/go" ] && new_enough "$GO_BIN_DIR/go" "$REQUIRED"; then
  log "using $GO_BIN_DIR/go ($(go_version_of "$GO_BIN_DIR/go"))"
  echo "$GO_BIN_DIR"
  exit 0
fi

bootstrap=""
for go in $(candidates); do
  if [ -x "$go" ] && new_enough "$go" 1.21; then bootstrap="$go"; break; fi
done

if [ -z "$bootstrap" ]; then
  command -v apt-get >/dev/null 2>&1 || die "no Go >= 1.21 and no apt-get: install Go >= $REQUIRED (https://go.dev/doc/install)"
  package=""
  codename="$(. /etc/os-release && echo "${VERSION_CODENAME:-}")"
  if [ "$codename" = bookworm ]; then
    package=golang-1.23-go
    if ! grep -rqs bookworm-backports /etc/apt/sources.list /etc/apt/sources.list.d/; then
      log "adding bookworm-backports (golang-1.23-go; bookworm's own golang-go is 1.19)"
      echo 'deb http://deb.debian.org/debian bookworm-backports main' \
        | as_root tee /etc/apt/sources.list.d/bookworm-backports.list >/dev/null \
        || die "Go >= 1.21 is missing and adding bookworm-backports needs root: sudo apt-get install -t bookworm-backports golang-1.23-go"
    fi
  else
    # Ubuntu 24.04 and Debian trixie ship Go >= 1.22 as golang-go.
    package=golang-go
  fi
  log "installing $package (bootstrap for the Go $GO_VERSION toolchain)"
  { as_root apt-get update -qq && as_root env DEBIAN_FRONTEND=noninteractive \
      apt-get install -y -qq --no-install-recommends "$package" >/dev/null; } \
    || die "Go >= 1.21 is missing and apt-get install $package needs root: install it, or Go >= $REQUIRED (https://go.dev/doc/install)"
  for go in $(candidates); do
    if [ -x "$go" ] && new_enough "$go" 1.21; then bootstrap="$go"; break; fi
  done
  [ -n "$bootstrap" ] || die "installed $package but found no Go >= 1.21"
fi

log "fetching the $GO_VERSION toolchain through the Go module proxy (bootstrap: $bootstrap)"
goroot="$(GOTOOLCHAIN="$GO_VERSION" "$bootstrap" env GOROOT)" \
  || die "GOTOOLCHAIN=$GO_VERSION $bootstrap could not fetch golang.org/toolchain (GOPROXY=${GOPROXY:-default})"
mkdir -p "$GO_BIN_DIR"
ln -sfn "$goroot/bin/go" "$GO_BIN_DIR/go"
ln -sfn "$goroot/bin/gofmt" "$GO_BIN_DIR/gofmt"
new_enough "$GO_BIN_DIR/go" "$REQUIRED" || die "$GO_BIN_DIR/go is not Go >= $REQUIRED"
log "using $GO_BIN_DIR/go ($(go_version_of "$GO_BIN_DIR/go"))"
echo "$GO_BIN_DIR"
