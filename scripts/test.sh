#!/usr/bin/env bash
# The whole test suite, on a fresh machine: installs the tooling, starts the Docker engine and the lab
# (3 VMs + S3), then one pytest run: unit tests, lint and sanity, module tests against real peers,
# the lab tests (rollout, bad input, jobs) and the molecule scenario.
#   scripts/test.sh                 everything
#   scripts/test.sh -k bad_input    any pytest arguments narrow the run
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
bash lab/lab.sh up 3
# headless Chromium opens the status page (tests/lab/test_85_status_page.py): Debian's package, once per machine
bash lab/chromium.sh
rc=0
python -m pytest -p no:cacheprovider -ra --durations=15 "${@:-tests}" || rc=$?
if [ "${KEEP_LAB:-0}" != 1 ]; then bash lab/lab.sh down; fi
exit "${rc}"
