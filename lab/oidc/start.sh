#!/usr/bin/env bash
# The lab's OpenID Connect provider (server.mjs) in the background, over HTTPS with its own CA.
#
#   lab/oidc/start.sh [start]   install (npm ci, cached in node_modules), make the CA once, start, print
#                               OIDC_ISSUER=..., OIDC_CA_FILE=..., OIDC_ADMIN_TOKEN_FILE=..., OIDC_PID=...
#   lab/oidc/start.sh stop      stop the provider started from the same state directory
#   lab/oidc/start.sh status    print the same lines when it runs (exit 1 when not)
#
# Environment: LAB_OIDC_STATE (state directory: CA, certificate, pid, log, admin token; default
# <repo>/.lab/oidc), LAB_OIDC_PORT (9443), LAB_OIDC_HOST (127.0.0.1), LAB_OIDC_START_TIMEOUT (seconds to
# wait for the provider to answer, 90), and every LAB_OIDC_* setting of
# server.mjs (lifetimes, refresh-token format, pre-registered clients), passed through.
# The containers that use it run with --network host and get the CA file mounted (oidc-gen --cp=...).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO="$(cd "${HERE}/../.." && pwd)"
STATE="${LAB_OIDC_STATE:-${REPO}/.lab/oidc}"
export LAB_OIDC_HOST="${LAB_OIDC_HOST:-127.0.0.1}"
export LAB_OIDC_PORT="${LAB_OIDC_PORT:-9443}"
export LAB_OIDC_ISSUER="${LAB_OIDC_ISSUER:-https://${LAB_OIDC_HOST}:${LAB_OIDC_PORT}/}"
LAB_OIDC_START_TIMEOUT="${LAB_OIDC_START_TIMEOUT:-90}"

log() { printf '[lab-oidc] %s\n' "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

running_pid() {
  local pid
  [ -s "${STATE}/server.pid" ] || return 1
  pid="$(cat "${STATE}/server.pid")"
  # Only our own node process (a recycled pid is not ours).
  tr '\0' ' ' <"/proc/${pid}/cmdline" 2>/dev/null | grep -q "server.mjs" || return 1
  printf '%s' "${pid}"
}

print_env() {
  printf 'OIDC_ISSUER=%s\nOIDC_CA_FILE=%s\nOIDC_ADMIN_TOKEN_FILE=%s\nOIDC_PID=%s\n' \
    "$(cat "${STATE}/issuer")" "${STATE}/ca.pem" "${STATE}/admin-token" "$1"
}

install() {
  # npm ci only when package-lock.json changed since the last install (node_modules is the cache).
  local stamp="${HERE}/node_modules/.lab-stamp" want
  want="$(sha256sum "${HERE}/package-lock.json" | cut -c1-64)"
  (
    flock 9
    if [ "$(cat "${stamp}" 2>/dev/null)" != "${want}" ]; then
      log "npm ci in ${HERE}"
      (cd "${HERE}" && npm ci --no-audit --no-fund --loglevel=error >&2)
      printf '%s\n' "${want}" >"${stamp}"
    fi
  ) 9>"/tmp/infn-lab-oidc-npm.lock"
}

make_ca() {
  # A CA made once per state directory, and a server certificate for 127.0.0.1 and localhost.
  [ -s "${STATE}/server.pem" ] && [ -s "${STATE}/ca.pem" ] && return 0
  log "making the lab CA and server certificate in ${STATE}"
  openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -keyout "${STATE}/ca.key" -out "${STATE}/ca.pem" \
    -subj "/CN=infn-cloud-backup lab OIDC CA" \
    -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  openssl req -newkey rsa:2048 -nodes -keyout "${STATE}/server.key" -out "${STATE}/server.csr" \
    -subj "/CN=${LAB_OIDC_HOST}" 2>/dev/null
  printf 'subjectAltName=IP:127.0.0.1,DNS:localhost%s\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth\n' \
    "$([ "${LAB_OIDC_HOST}" = 127.0.0.1 ] || [ "${LAB_OIDC_HOST}" = localhost ] \
       || { [[ "${LAB_OIDC_HOST}" =~ ^[0-9.]+$ ]] && printf ',IP:%s' "${LAB_OIDC_HOST}"; } || printf ',DNS:%s' "${LAB_OIDC_HOST}")" \
    >"${STATE}/server.ext"
  openssl x509 -req -in "${STATE}/server.csr" -CA "${STATE}/ca.pem" -CAkey "${STATE}/ca.key" -CAcreateserial \
    -days 825 -extfile "${STATE}/server.ext" -out "${STATE}/server.pem" 2>/dev/null
  chmod 0644 "${STATE}/ca.pem"
}

start() {
  local pid deadline
  mkdir -p "${STATE}"
  chmod 0700 "${STATE}"
  if pid="$(running_pid)"; then
    log "already running (pid ${pid})"
    print_env "${pid}"
    return 0
  fi
  [[ "${LAB_OIDC_START_TIMEOUT}" =~ ^[1-9][0-9]*$ ]] \
    || die "LAB_OIDC_START_TIMEOUT must be a whole number of seconds, not '${LAB_OIDC_START_TIMEOUT}'"
  command -v node >/dev/null || die "node (>= 20) is not installed"
  install
  make_ca
  if [ -z "${LAB_OIDC_ADMIN_TOKEN:-}" ]; then
    [ -s "${STATE}/admin-token" ] || (umask 077; head -c 24 /dev/urandom | od -An -tx1 | tr -d ' \n' >"${STATE}/admin-token")
    LAB_OIDC_ADMIN_TOKEN="$(cat "${STATE}/admin-token")"
  else
    (umask 077; printf '%s' "${LAB_OIDC_ADMIN_TOKEN}" >"${STATE}/admin-token")
  fi
  export LAB_OIDC_ADMIN_TOKEN LAB_OIDC_TLS_CERT="${STATE}/server.pem" LAB_OIDC_TLS_KEY="${STATE}/server.key"
  printf '%s\n' "${LAB_OIDC_ISSUER}" >"${STATE}/issuer"
  log "starting the provider at ${LAB_OIDC_ISSUER} (log: ${STATE}/server.log)"
  setsid node "${HERE}/server.mjs" >"${STATE}/server.log" 2>&1 </dev/null &
  pid=$!
  printf '%s\n' "${pid}" >"${STATE}/server.pid"
  # A deadline in seconds, not a count of tries: on a loaded machine node alone can take over 10 s to load
  # oidc-provider (a CI run lost test_41 that way), and each try's curl takes longer too.
  deadline=$((SECONDS + LAB_OIDC_START_TIMEOUT))
  while [ "${SECONDS}" -lt "${deadline}" ]; do
    if curl -fsS --max-time 5 --cacert "${STATE}/ca.pem" -o /dev/null "${LAB_OIDC_ISSUER%/}/.well-known/openid-configuration" 2>/dev/null; then
      print_env "${pid}"
      return 0
    fi
    kill -0 "${pid}" 2>/dev/null || { tail -20 "${STATE}/server.log" >&2; die "the provider exited"; }
    sleep 0.1
  done
  tail -20 "${STATE}/server.log" >&2
  die "the provider did not answer at ${LAB_OIDC_ISSUER} within ${LAB_OIDC_START_TIMEOUT} s (LAB_OIDC_START_TIMEOUT)"
}

stop() {
  local pid
  if pid="$(running_pid)"; then
    kill "${pid}"
    for _ in $(seq 1 50); do kill -0 "${pid}" 2>/dev/null || break; sleep 0.1; done
    kill -0 "${pid}" 2>/dev/null && kill -9 "${pid}"
    log "stopped (pid ${pid})"
  fi
  rm -f "${STATE}/server.pid"
}

case "${1:-start}" in
  start) start ;;
  stop) stop ;;
  status) pid="$(running_pid)" || { log "not running"; exit 1; }; print_env "${pid}" ;;
  *) die "usage: $0 [start|stop|status]" ;;
esac
