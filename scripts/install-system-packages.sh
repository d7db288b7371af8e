#!/usr/bin/env bash
# Installs the Debian packages the template's tests drive for real (as root, or
# through sudo). Idempotent: apt is only touched when something is missing.
#   redis-server   integration/fault tests of the generated service
#   docker.io      container build/run/compose tests (scripts/docker-engine.sh starts it)
#   debootstrap    offline stand-in base images (scripts/base-images.sh)
#   wrk            HTTP load generator for the benchmark (make bench)
#   prometheus, prometheus-redis-exporter
#                  dashboards and alerts evaluated against a real Prometheus
#                  (tests/test_observability.py; promtool comes with prometheus)
set -euo pipefail

packages=(redis-server docker.io debootstrap ca-certificates git make wrk prometheus prometheus-redis-exporter)
missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "ok installed" || missing+=("$package")
done
if [ ${#missing[@]} -eq 0 ]; then
  echo "system packages: all present (${packages[*]})"
  exit 0
fi

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
echo "system packages: installing ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
# The Debian packages start redis-server (:6379) and prometheus (:9090) via init
# scripts on some systems; the tests start their own on free ports and need none.
