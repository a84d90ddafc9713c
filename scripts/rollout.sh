#!/usr/bin/env bash
# The main job: roll the backup stack out to a fleet.
#   scripts/rollout.sh                               the local lab fleet (LAB_VMS=N VMs, default 3)
#   scripts/rollout.sh -i inventories/production     a real fleet (any ansible-playbook arguments)
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
args=("$@")
if ! printf '%s\n' "${args[@]}" | grep -qE '^(-i|--inventory)'; then
  bash lab/lab.sh up "${LAB_VMS:-3}"
  args=(-i inventories/lab "${args[@]}")
fi
exec ansible-playbook playbooks/site.yml "${args[@]}"
