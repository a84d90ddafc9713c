#!/usr/bin/env bash
# Benchmarks on the lab fleet (see bench/bench.py): bash bench/run.sh [--sizes 1,3,6,10] [--only backup] ...
# Leaves the lab running with 1 VM; bash lab/lab.sh down removes it.
source "$(dirname "${BASH_SOURCE[0]}")/../scripts/env.sh"
bash lab/lab.sh up 1
exec python bench/bench.py "$@"
