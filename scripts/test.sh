#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the tooling, starts the Docker engine and the lab
# (3 VMs + S3 + Healthchecks), then ONE pytest run whose test modules run side by side on TEST_WORKERS workers
# (pytest-xdist, default 3; each module's tests on one worker, in order): the unit tests, lint and sanity, the module
# tests against real peers (tests/integration: their own fake Healthchecks, containers and buckets), the lab tests
# (tests/lab: rollout, bad input, jobs, faults, day-2, AWX runner, status page; each module on VMs of its own, but
# for those on the lab's vm1..vm3, which run one after the other) and the molecule scenario. Lab tests share the lab's
# S3 and Healthchecks: each reads only what concerns its own hosts. How modules are grouped and ordered: tests/conftest.py.
#   scripts/test.sh                 everything
#   scripts/test.sh -k bad_input    any pytest arguments: one pytest run of exactly those, one worker
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash lab/lab.sh up 3
# the fleet's backup image, as the host model names it: the tests' VMs started `with-image` have it (lab/lab.sh)
fleet_image="$(bash lab/lab.sh fleet-image 2>&1)" || { printf '%s\n' "${fleet_image}" >&2; exit 1; }
# headless Chromium opens the status page (tests/lab/test_85_status_page.py): Debian's package, once per machine
bash lab/chromium.sh
PYTEST=(python -m pytest -p no:cacheprovider -ra --durations=25)
rc=0
if [ "$#" -gt 0 ]; then
  "${PYTEST[@]}" "$@" || rc=$?
else
  start=${SECONDS}
  "${PYTEST[@]}" -n "${TEST_WORKERS:-3}" --dist loadscope --no-loadscope-reorder \
    tests/unit tests/quality tests/integration tests/lab tests/molecule || rc=$?
  echo "suite wall time: $(( SECONDS - start )) s on ${TEST_WORKERS:-3} workers; exit status ${rc}"
fi
if [ "${KEEP_LAB:-0}" != 1 ]; then bash lab/lab.sh down; fi
exit "${rc}"
