#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the tooling, starts the Docker engine and the lab
# (3 VMs + S3), then the tests in two pytest runs side by side, which share nothing but the Docker engine:
#   - the lab tests (tests/lab: rollout, bad input, jobs, faults, day-2, AWX runner, status page), on the lab's VMs
#     and VMs of their own, then the molecule scenario (its own VMs, but the lab's Healthchecks, whose request log
#     some lab tests read: never at the same time);
#   - everything else: unit tests, lint and sanity, module tests against real peers (tests/integration: their own
#     fake Healthchecks, containers and buckets), none of which touches a lab VM or the lab's Healthchecks.
# The lab run prints as it goes; the other run's output follows when both are done. The exit status is the worse.
#   scripts/test.sh                 everything
#   scripts/test.sh -k bad_input    any pytest arguments: one pytest run of exactly those, nothing side by side
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash lab/lab.sh up 3
# headless Chromium opens the status page (tests/lab/test_85_status_page.py): Debian's package, once per machine
bash lab/chromium.sh
PYTEST=(python -m pytest -p no:cacheprovider -ra --durations=15)
rc=0
if [ "$#" -gt 0 ]; then
  "${PYTEST[@]}" "$@" || rc=$?
else
  out="$(mktemp -d)"
  start=${SECONDS}
  "${PYTEST[@]}" --basetemp="${out}/tmp-other" tests/unit tests/quality tests/integration \
    >"${out}/other.log" 2>&1 &
  other=$!
  echo "====== tests/lab, tests/molecule (the other tests run side by side, their output follows) ======"
  "${PYTEST[@]}" --basetemp="${out}/tmp-lab" tests/lab tests/molecule || rc=$?
  wait "${other}" || rc=$?
  echo "=============== tests/unit, tests/quality, tests/integration ==============="
  cat "${out}/other.log"
  echo "suite wall time: $(( SECONDS - start )) s (both runs side by side); exit status ${rc}"
  rm -rf "${out}"
fi
if [ "${KEEP_LAB:-0}" != 1 ]; then bash lab/lab.sh down; fi
exit "${rc}"
