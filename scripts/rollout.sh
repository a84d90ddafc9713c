#!/usr/bin/env bash
# The main job: roll the backup stack out to a fleet.
#   scripts/rollout.sh                               the local lab fleet (LAB_VMS=N VMs, default 3): roll out, back every
#                                                    host up once with the scheduler's own job command (backup_now), then
#                                                    print the fleet's status table (the proof: every host ok, a snapshot
#                                                    seconds old) and where its HTML and JSON reports were written
#   scripts/rollout.sh -i inventories/production     a real fleet (any ansible-playbook arguments): roll out only, then
#                                                    say how to back up now and read the status
source "$(dirname "${BASH_SOURCE[0]}")/env.sh"
args=("$@")
if printf '%s\n' "${args[@]}" | grep -qE '^(-i|--inventory)'; then
  ansible-playbook playbooks/site.yml "${args[@]}" || exit $?
  cat <<EOF

Rolled out. The first backups run at their scheduled times; to back up now and read the fleet's status:
  ansible-playbook playbooks/backup_now.yml ${args[*]}
  ansible-playbook playbooks/status.yml ${args[*]}
EOF
  exit 0
fi

bash lab/lab.sh up "${LAB_VMS:-3}"
reports="${ROLLOUT_REPORT_DIR:-${REPO_ROOT}/reports}"
mkdir -p "${reports}"
lab=(-i inventories/lab "${args[@]}")
ansible-playbook playbooks/site.yml "${lab[@]}" || exit $?
echo
echo "== one backup on every host, through the scheduler's own job command =="
ansible-playbook playbooks/backup_now.yml "${lab[@]}" || exit $?
echo
echo "== the fleet's status =="
ansible-playbook playbooks/status.yml "${lab[@]}" \
  -e "cloud_backup_status_json=${reports}/status.json" -e "cloud_backup_status_html=${reports}/status.html" || exit $?
cat <<EOF

The lab fleet is backed up and monitored. Reports:
  ${reports}/status.html
  ${reports}/status.json
Run it again at any time:  ansible-playbook playbooks/status.yml -i inventories/lab
Remove the lab:            bash lab/lab.sh down
EOF
