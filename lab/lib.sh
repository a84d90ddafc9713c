# shellcheck shell=bash
# Shared helpers for the lab scripts. Sourced, never executed.
# Everything the lab makes is named infn-lab* so that teardown can find it.

set -euo pipefail

LAB_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "${LAB_ROOT}/.." && pwd)"
# Caches that survive between runs on the same machine (CI reuses them when inputs are unchanged).
LAB_CACHE="${LAB_CACHE:-/var/cache/infn-cloud-backup}"
LAB_NET="${LAB_NET:-infn-lab}"
LAB_SUBNET="${LAB_SUBNET:-172.31.240.0/24}"
# Addresses below .128 are given out by the lab scripts, the rest dynamically (molecule's VMs).
LAB_IP_RANGE="${LAB_IP_RANGE:-172.31.240.128/25}"
LAB_STATE="${LAB_STATE:-${REPO_ROOT}/.lab}"
# The lab's SSH key pair and the known_hosts pinning the VMs' host keys.
LAB_SSH="${LAB_STATE}/ssh"
LAB_BASE_IMAGE="infn-lab/trixie:base"

log() { printf '[lab %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

# Content hash of files (for cache keys of images built from them).
content_hash() { cat "$@" | sha256sum | cut -c1-12; }

image_exists() { docker image inspect "$1" >/dev/null 2>&1; }

ensure_engine() {
  if docker info >/dev/null 2>&1; then return 0; fi
  if ! command -v dockerd >/dev/null 2>&1; then
    log "installing the Docker engine (docker.io) and debootstrap from Debian"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq docker.io debootstrap iproute2 >/dev/null
  fi
  command -v debootstrap >/dev/null 2>&1 || apt-get install -y -qq debootstrap >/dev/null
  log "starting dockerd"
  mkdir -p /var/log
  setsid dockerd >/var/log/dockerd.log 2>&1 < /dev/null &
  for _ in $(seq 1 60); do
    docker info >/dev/null 2>&1 && return 0
    sleep 1
  done
  tail -20 /var/log/dockerd.log >&2 || true
  die "dockerd did not answer within 60 s"
}

ensure_base_image() {
  if image_exists "${LAB_BASE_IMAGE}"; then return 0; fi
  local tarball="${LAB_CACHE}/trixie-minbase.tar"
  mkdir -p "${LAB_CACHE}"
  if [ ! -s "${tarball}" ]; then
    local dir
    dir="$(mktemp -d /var/tmp/infn-lab-debootstrap.XXXXXX)"
    log "debootstrap trixie (minbase) into ${dir}: about 1.5 min, cached in ${tarball}"
    debootstrap --variant=minbase trixie "${dir}" http://deb.debian.org/debian >"${LAB_CACHE}/debootstrap.log" 2>&1 \
      || { tail -20 "${LAB_CACHE}/debootstrap.log" >&2; die "debootstrap failed"; }
    # apt inside containers: no recommends, no docs, no caches (smaller images).
    printf 'APT::Install-Recommends "false";\nAPT::Install-Suggests "false";\n' >"${dir}/etc/apt/apt.conf.d/90lab"
    rm -rf "${dir}/var/cache/apt/archives/"*.deb "${dir}/var/lib/apt/lists/"*
    tar -C "${dir}" -cf "${tarball}.tmp" .
    mv "${tarball}.tmp" "${tarball}"
    rm -rf "${dir}"
  fi
  log "importing ${LAB_BASE_IMAGE}"
  docker import "${tarball}" "${LAB_BASE_IMAGE}" >/dev/null
}

ensure_network() {
  docker network inspect "${LAB_NET}" >/dev/null 2>&1 \
    || docker network create --subnet "${LAB_SUBNET}" --ip-range "${LAB_IP_RANGE}" "${LAB_NET}" >/dev/null
}

# build_image NAME DIR: builds DIR/Dockerfile as NAME:<hash of DIR>, also tagged NAME:latest,
# unless an image with that hash exists already.
build_image() {
  local name="$1" dir="$2" tag
  tag="$(cd "${dir}" && find . -type f -print0 | sort -z | xargs -0 cat | sha256sum | cut -c1-12)"
  if ! image_exists "${name}:${tag}"; then
    log "building ${name}:${tag}"
    docker build --network host --build-arg "BASE_IMAGE=${LAB_BASE_IMAGE}" -t "${name}:${tag}" "${dir}" >"${LAB_CACHE}/build-${name//\//_}.log" 2>&1 \
      || { tail -30 "${LAB_CACHE}/build-${name//\//_}.log" >&2; die "building ${name} failed"; }
  fi
  docker tag "${name}:${tag}" "${name}:latest"
  printf '%s:%s\n' "${name}" "${tag}"
}
