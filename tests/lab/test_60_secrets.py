"""Secrets never leak: a full rollout and a backup job at -vvv show no password, key or ping URL, and
every file holding one is 0600 and owned by the right user."""

import json
import re
import urllib.request

import pytest
import yaml

from labkit import LAB_INVENTORY, lab_vms, playbook, run_job, vm_exec


@pytest.fixture(scope="module")
def vms():
    return lab_vms()


def _secrets(vms):
    group = yaml.safe_load(open(LAB_INVENTORY + "/group_vars/all.yml"))
    values = {group["cloud_backup_destination"]["secret_access_key"], group["cloud_backup_healthchecks_api_key"]}
    for host in vms:
        values.add(group["cloud_backup_restic_password"].replace("{{ inventory_hostname }}", host))
        values.add(group["cloud_backup_rest_password"].replace("{{ inventory_hostname }}", host))
    with urllib.request.urlopen("http://127.0.0.1:58000/_admin/checks", timeout=10) as response:
        checks = json.load(response)["checks"]
    values |= {c["uuid"] for c in checks if any("host-%s" % h in c["tags"].split() for h in vms)}
    assert len(values) > 2 * len(vms) + 2
    return values


def test_rollout_at_vvv_shows_no_secret(vms):
    # a change on every host, so that the tasks that write secrets really run
    run = playbook("-vvv", "-e", "cloud_backup_restic_compression=max")
    assert run.rc == 0, run.out[-3000:]
    again = playbook("-vvv")
    assert again.rc == 0
    for secret in _secrets(vms):
        assert secret not in run.out and secret not in again.out, "a secret is in the -vvv output"


def test_job_output_shows_no_secret(vms):
    vm1 = vms["vm1"]
    result = run_job(vm1, "backup-www")
    logs = vm_exec(vm1, "docker logs cloud-backup 2>&1").stdout
    for secret in _secrets(vms):
        assert secret not in result.stdout + result.stderr + logs


def test_files_holding_secrets_are_private(vms):
    for host, vm in vms.items():
        assert vm_exec(vm, "stat -c '%a %U %G' /opt/cloud-backup/.env").stdout.split() == ["600", "root", "root"]
        # secrets only in the secret files (0600, the container's user, in a 0700 directory): not even in .env
        found = vm_exec(vm, "grep -rlE 'lab restic password|lab-rest-password|lab-secret-key|/ping/' "
                            "/opt/cloud-backup /etc/cron.d || true").stdout.split()
        assert found and all(f.startswith("/opt/cloud-backup/secrets/") for f in found), (host, found)
        modes = vm_exec(vm, "stat -c '%a %u' /opt/cloud-backup/secrets " + " ".join(found)).stdout.splitlines()
        assert modes == ["700 1000"] + ["600 1000"] * len(found), (host, modes)
        # no secret on the argv of any process on the VM
        ps = vm_exec(vm, "ps -eo args").stdout
        assert not re.search(r"lab restic password|lab-rest-password|lab-secret-key|/ping/", ps)
