#!/usr/bin/env bash
# Builds stand-in base images where no container registry is reachable (CI
# here). The generated Dockerfile and compose.yaml keep the official images as
# defaults; the template tests point the image variables at these instead.
#
#   counter-template-standin/python:3.11-bookworm      for python:<v>-slim: a Debian
#       bookworm minbase rootfs (debootstrap) with python3 + python3-venv and the
#       host CA bundle, so pip inside builds trusts what the host trusts.
#   counter-template-standin/redis:7.0-bookworm        for redis:7-alpine: Debian's
#       redis-server; `redis-server ...` or bare `--option` arguments work as
#       with the official image, and redis-cli is there for healthchecks.
#   counter-template-standin/prometheus:2.42-bookworm  for prom/prometheus
#   counter-template-standin/redis-exporter:1.45-bookworm  for oliver006/redis_exporter
#   counter-template-standin/busybox:1.35-bookworm   for busybox (the chart's `helm test`
#       pod: Debian's busybox, with wget on PATH)
#   (Debian has no Grafana: the compose grafana service needs the real image.)
#
# Every image carries the hash of its recipe as a label and is rebuilt only
# when that hash changes: the base image's recipe is the debootstrap step, the
# import settings and the CA bundle; a derived image's is the base's hash plus
# its Dockerfile and files. The rootfs is also kept as a tarball in the cache,
# so an engine that lost its images re-imports it in seconds.
#
# Usage: scripts/base-images.sh            (progress on stderr)
#        eval "$(scripts/base-images.sh)"  (stdout: PYTHON_IMAGE, REDIS_IMAGE,
#                                           PROMETHEUS_IMAGE, REDIS_EXPORTER_IMAGE,
#                                           BUSYBOX_IMAGE exports)
# Env:   COUNTER_TEMPLATE_CACHE  machine-level cache dir
#        DEBIAN_MIRROR           debootstrap/apt mirror (http://deb.debian.org/debian)
#        STANDIN_CA_BUNDLE       CA bundle baked into the images (/etc/ssl/certs/ca-certificates.crt)
#        STANDIN_PYTHON_IMAGE, STANDIN_REDIS_IMAGE, STANDIN_PROMETHEUS_IMAGE,
#        STANDIN_REDIS_EXPORTER_IMAGE, STANDIN_BUSYBOX_IMAGE   tags to build (defaults above)
set -euo pipefail

cache_dir=${COUNTER_TEMPLATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/counter-template}
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
ca_bundle=${STANDIN_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}
python_image=${STANDIN_PYTHON_IMAGE:-counter-template-standin/python:3.11-bookworm}
redis_image=${STANDIN_REDIS_IMAGE:-counter-template-standin/redis:7.0-bookworm}
prometheus_image=${STANDIN_PROMETHEUS_IMAGE:-counter-template-standin/prometheus:2.42-bookworm}
redis_exporter_image=${STANDIN_REDIS_EXPORTER_IMAGE:-counter-template-standin/redis-exporter:1.45-bookworm}
busybox_image=${STANDIN_BUSYBOX_IMAGE:-counter-template-standin/busybox:1.35-bookworm}
suite=bookworm
rootfs_packages=python3,python3-venv,python-is-python3,ca-certificates
recipe_label=org.counter-template.recipe
standin_dir=$cache_dir/standin-images

# Environment like the official python image, plus CA variables so pip and
# requests use the baked bundle rather than their own.
import_changes=(
  'LABEL org.opencontainers.image.description="Stand-in for python:3.11-slim, built offline by counter-template scripts/base-images.sh"'
  'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin'
  'ENV LANG=C.UTF-8'
  'ENV SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt'
  'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt'
  'ENV REQUESTS_CA_BUNDLE=/etc/ssl/certs/ca-certificates.crt'
  'CMD ["python3"]'
)

log() { printf 'base-images: %s\n' "$*" >&2; }

as_root() {
  # -n: a password prompt would hang an unattended run; fail instead.
  if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo -n "$@"; fi
}

short_hash() { sha256sum | cut -c1-16; }

image_is_current() {  # IMAGE HASH
  [ "$(docker image inspect --format "{{ index .Config.Labels \"$recipe_label\" }}" "$1" 2>/dev/null)" = "$2" ]
}

build_rootfs_tarball() {  # TARBALL
  local tarball=$1 rootfs
  rootfs=$(mktemp -d "$standin_dir/rootfs.XXXXXX")
  mkdir -p "$standin_dir/debs"
  log "debootstrap --variant=minbase $suite from $mirror (packages: $rootfs_packages)"
  if ! as_root debootstrap --variant=minbase --include="$rootfs_packages" \
    --cache-dir="$standin_dir/debs" "$suite" "$rootfs" "$mirror" >"$standin_dir/debootstrap.log" 2>&1; then
    tail -n 30 "$standin_dir/debootstrap.log" >&2
    log "debootstrap failed (full log: $standin_dir/debootstrap.log)"
    exit 1
  fi
  # Same conventions as Debian's official container images: package scripts
  # never start services, and apt keeps no lists or downloaded packages.
  printf '#!/bin/sh\nexit 101\n' >"$rootfs/usr/sbin/policy-rc.d"
  chmod 755 "$rootfs/usr/sbin/policy-rc.d"
  printf 'APT::Install-Recommends "false";\n' >"$rootfs/etc/apt/apt.conf.d/90no-recommends"
  printf '%s\n' \
    'DPkg::Post-Invoke { "rm -f /var/cache/apt/archives/*.deb /var/cache/apt/archives/partial/*.deb /var/cache/apt/*.bin || true"; };' \
    'Dir::Cache::pkgcache ""; Dir::Cache::srcpkgcache "";' >"$rootfs/etc/apt/apt.conf.d/90docker-clean"
  cp "$ca_bundle" "$rootfs/etc/ssl/certs/ca-certificates.crt"
  # update-ca-certificates (run by later apt installs) rebuilds the bundle from
  # this directory, so keep the host's certificates there too.
  cp "$ca_bundle" "$rootfs/usr/local/share/ca-certificates/host-bundle.crt"
  as_root chroot "$rootfs" apt-get clean
  rm -rf "$rootfs"/var/lib/apt/lists/* "$rootfs"/var/cache/apt/*.bin "$rootfs"/var/log/*.log
  as_root tar --numeric-owner -C "$rootfs" -cf "$tarball.partial" .
  mv "$tarball.partial" "$tarball"
  as_root rm -rf "$rootfs"
  # Tarballs of earlier recipes are dead weight now.
  find "$standin_dir" -maxdepth 1 -name 'python-bookworm-*.tar' ! -name "$(basename "$tarball")" -delete
}

# build_derived IMAGE OFFICIAL: builds IMAGE from what the caller wrote into
# $build_dir, unless the image already has this recipe.
build_derived() {
  local image=$1 official=$2 hash
  hash=$( { echo "$python_hash"; cat "$build_dir"/*; } | short_hash)
  if image_is_current "$image" "$hash"; then
    log "$image is current (recipe $hash)"
    return
  fi
  log "building $image"
  DOCKER_BUILDKIT=0 docker build --network host --quiet --force-rm \
    --label "$recipe_label=$hash" \
    --label "org.opencontainers.image.description=Stand-in for $official, built offline by counter-template scripts/base-images.sh" \
    -t "$image" "$build_dir" >&2
}

if ! docker info >/dev/null 2>&1; then
  log "no Docker engine answers; run scripts/docker-engine.sh first"
  exit 1
fi
if [ ! -s "$ca_bundle" ]; then
  log "STANDIN_CA_BUNDLE=$ca_bundle is not a readable file; a PEM CA bundle is needed"
  exit 1
fi
mkdir -p "$standin_dir"

python_hash=$( {
  echo "$suite $rootfs_packages"
  declare -f build_rootfs_tarball
  printf '%s\n' "${import_changes[@]}"
  cat "$ca_bundle"
} | short_hash)
if image_is_current "$python_image" "$python_hash"; then
  log "$python_image is current (recipe $python_hash)"
else
  rootfs_tarball=$standin_dir/python-bookworm-$python_hash.tar
  [ -s "$rootfs_tarball" ] || build_rootfs_tarball "$rootfs_tarball"
  log "importing $python_image"
  changes=(--change "LABEL $recipe_label=$python_hash")
  for change in "${import_changes[@]}"; do changes+=(--change "$change"); done
  docker import "${changes[@]}" "$rootfs_tarball" "$python_image" >&2
fi

build_dir=$(mktemp -d)
trap 'rm -rf "$build_dir"' EXIT

cat >"$build_dir/docker-entrypoint.sh" <<'ENTRYPOINT'
#!/bin/sh
# Mirrors the official redis image: bare options run redis-server, redis-server
# drops to the redis user, and protected mode is off (the port is only
# reachable inside the container network).
set -e
case "$1" in -*) set -- redis-server "$@" ;; esac
if [ "$1" = redis-server ]; then
  case "$*" in *protected-mode*) ;; *) set -- "$@" --protected-mode no ;; esac
  if [ "$(id -u)" = 0 ]; then
    chown -R redis:redis /data
    exec setpriv --reuid=redis --regid=redis --init-groups "$@"
  fi
fi
exec "$@"
ENTRYPOINT
cat >"$build_dir/Dockerfile" <<DOCKERFILE
FROM $python_image
COPY docker-entrypoint.sh /usr/local/bin/docker-entrypoint.sh
RUN apt-get update \\
 && apt-get install -y --no-install-recommends redis-server redis-tools \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir /data && chown redis:redis /data \\
 && chmod 755 /usr/local/bin/docker-entrypoint.sh
VOLUME /data
WORKDIR /data
EXPOSE 6379
ENTRYPOINT ["docker-entrypoint.sh"]
CMD ["redis-server"]
DOCKERFILE
build_derived "$redis_image" redis:7-alpine

rm -f "$build_dir"/*
# Same command line and data directory as the official image. The web UI's
# JavaScript libraries (over 200 MB, mostly time zone data) are left out:
# the tests use the HTTP API only.
cat >"$build_dir/Dockerfile" <<DOCKERFILE
FROM $python_image
RUN apt-get update \\
 && apt-get install -y --no-install-recommends -o Dpkg::Options::=--path-exclude=/usr/share/javascript/* prometheus \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/* \\
 && mkdir -p /prometheus && chown nobody:nogroup /prometheus
USER nobody
VOLUME /prometheus
WORKDIR /prometheus
EXPOSE 9090
ENTRYPOINT ["/usr/bin/prometheus"]
CMD ["--config.file=/etc/prometheus/prometheus.yml", "--storage.tsdb.path=/prometheus"]
DOCKERFILE
build_derived "$prometheus_image" prom/prometheus

# Reads REDIS_ADDR / REDIS_PASSWORD from the environment like the official image.
cat >"$build_dir/Dockerfile" <<DOCKERFILE
FROM $python_image
RUN apt-get update \\
 && apt-get install -y --no-install-recommends prometheus-redis-exporter \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/*
USER nobody
EXPOSE 9121
ENTRYPOINT ["/usr/bin/prometheus-redis-exporter"]
DOCKERFILE
build_derived "$redis_exporter_image" oliver006/redis_exporter

# The official busybox image has its applets on PATH; Debian's package leaves
# them to `busybox <applet>`, so link the one the chart's test pod runs.
cat >"$build_dir/Dockerfile" <<DOCKERFILE
FROM $python_image
RUN apt-get update \\
 && apt-get install -y --no-install-recommends busybox \\
 && apt-get clean \\
 && rm -rf /var/lib/apt/lists/* \\
 && ln -s /bin/busybox /usr/local/bin/wget
CMD ["sh"]
DOCKERFILE
build_derived "$busybox_image" busybox

# Images of earlier recipes lost their tags above; drop them.
docker image prune --force --filter "label=$recipe_label" >/dev/null

echo "export PYTHON_IMAGE=$python_image"
echo "export REDIS_IMAGE=$redis_image"
echo "export PROMETHEUS_IMAGE=$prometheus_image"
echo "export REDIS_EXPORTER_IMAGE=$redis_exporter_image"
echo "export BUSYBOX_IMAGE=$busybox_image"
