#!/usr/bin/env bash
# Benchmarks on the lab fleet (see bench/bench.py): bash bench/run.sh [--sizes 1,3,6,10] [--only backup]
#   [--connections docker,ssh] (the rollout rows over the Docker connection and over SSH as ubuntu with sudo) ...
# Leaves the lab running with 1 VM; bash lab/lab.sh down removes it.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
# the lab VMs' cache of compiled module code stays out: the rows time what a real VM does (lab/images/vm/pycode_cache.py)
export LAB_PYCODE_CACHE=off
bash lab/lab.sh up 1
exec python bench/bench.py "$@"
