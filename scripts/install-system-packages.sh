#!/usr/bin/env bash
# Installs the Debian packages the template's tests drive for real (as root, or
# through passwordless sudo). Idempotent: apt is only touched when something is missing.
#   redis-server   integration/fault tests of the generated service
#   docker.io      container build/run/compose tests (scripts/docker-engine.sh starts it);
#                  skipped when a Docker engine already answers (e.g. a CI runner's own)
#   debootstrap    offline stand-in base images (scripts/base-images.sh)
#   wrk            HTTP load generator for the benchmark (make bench)
#   prometheus, prometheus-redis-exporter
#                  dashboards and alerts evaluated against a real Prometheus
#                  (tests/test_observability.py; promtool comes with prometheus)
#   python3-venv   `python3 -m venv` (Debian ships venv separately)
#   containerd, runc, containernetworking-plugins, iproute2, iptables, ipset
#                  the local cluster's real node (scripts/real-node.sh), which runs
#                  its own containerd instance, never the one dockerd uses; ipset
#                  for kube-router's network policies there
# Exit status: 0 all present, 3 some missing and this user cannot install them
# (one line on stderr says which, and the command that would).
set -euo pipefail

packages=(redis-server docker.io debootstrap ca-certificates git make wrk prometheus
  prometheus-redis-exporter python3-venv containerd runc containernetworking-plugins iproute2 iptables ipset)
missing=()
for package in "${packages[@]}"; do
  if [ "$package" = docker.io ] && docker info >/dev/null 2>&1; then continue; fi
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${packages[*]})" >&2
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then sudo=""
elif sudo -n true 2>/dev/null; then sudo="sudo"
else
  echo "system packages: missing ${missing[*]}; installing them needs root: sudo apt-get install ${missing[*]}" >&2
  exit 3
fi
if ! command -v apt-get >/dev/null 2>&1; then
  echo "system packages: missing ${missing[*]}; no apt-get on this machine: install them with its package manager" >&2
  exit 3
fi
echo "system packages: installing ${missing[*]}" >&2
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start redis-server (:6379) and prometheus (:9090) via init
# scripts on some systems; the tests start their own on free ports and need none.
