# shellcheck shell=bash
# Sourced by the other scripts: the Python tooling (a venv cached by the hash of its requirements),
# the checkout importable as the collection infn_cloud.backup, and the Docker engine.
set -euo pipefail
REPO_ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CACHE="${LAB_CACHE:-/var/cache/infn-cloud-backup}"
REQS="${REPO_ROOT}/tests/requirements.txt"
# The controller's Python: the distribution's own when it is recent enough for ansible-core (Debian builds it with
# PGO and LTO; the unit tests, which run Ansible, take about a fifth less CPU on it than on a plain source build such
# as pyenv's), else the first python3 on PATH. The venv is keyed by the requirements and by the interpreter.
PYTHON=python3
if /usr/bin/python3 -c 'import ensurepip, sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then PYTHON=/usr/bin/python3; fi
VENV="${CACHE}/venv-$({ cat "${REQS}"; "${PYTHON}" -c 'import sys; print(sys.executable, sys.version)'; } | sha256sum | cut -c1-12)"

if [ ! -f "${VENV}/.complete" ]; then
  mkdir -p "${CACHE}"
  # one creator at a time: a second caller waits for it, then uses its venv
  exec 8>"${CACHE}/venv.lock"
  flock 8
fi
if [ ! -f "${VENV}/.complete" ]; then
  echo "[env] creating the Python tooling in ${VENV} (a few minutes, once per requirements change)" >&2
  rm -rf "${VENV}"
  "${PYTHON}" -m venv "${VENV}"
  "${VENV}/bin/pip" install -q --upgrade pip >"${CACHE}/pip.log" 2>&1
  "${VENV}/bin/pip" install -q -r "${REQS}" >>"${CACHE}/pip.log" 2>&1 \
    || { grep -v "^WARNING: Location" "${CACHE}/pip.log" | tail -30 >&2; echo "[env] pip install failed" >&2; exit 1; }
  touch "${VENV}/.complete"
fi
exec 8>&- 2>/dev/null || true
export PATH="${VENV}/bin:${PATH}"
export VIRTUAL_ENV="${VENV}"

COLLECTIONS="${REPO_ROOT}/.cache/collections"
mkdir -p "${COLLECTIONS}/ansible_collections/infn_cloud"
ln -sfn "${REPO_ROOT}" "${COLLECTIONS}/ansible_collections/infn_cloud/backup"
export ANSIBLE_CONFIG="${REPO_ROOT}/ansible.cfg"
export ANSIBLE_COLLECTIONS_PATH="${COLLECTIONS}"
cd "${REPO_ROOT}"
