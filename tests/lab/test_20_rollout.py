"""Rollout to the lab fleet: first run, rerun changed=0, check and diff mode, handlers."""

import json
import subprocess
import time

import pytest

from labkit import host_state, lab_vms, playbook, vm_exec


@pytest.fixture(scope="module")
def vms():
    vms = lab_vms()
    first = playbook()
    assert first.rc == 0, first.out[-6000:]
    return vms


def _container(vm, name):
    out = vm_exec(vm, "docker inspect %s" % name).stdout
    info = json.loads(out)[0]
    return info["Id"], info["State"]["StartedAt"]


def _repository_id(vm):
    return json.loads(vm_exec(vm, "docker exec -u user cloud-backup restic cat config").stdout)["id"]


def test_rerun_reports_no_change_and_initialises_no_repository(vms):
    ids = {h: _repository_id(vm) for h, vm in vms.items()}
    run = playbook()
    assert run.rc == 0, run.out[-4000:]
    assert {h: run.changed(h) for h in vms} == {h: 0 for h in vms}, run.out[-4000:]
    # the repositories were initialised once: the rerun reaches the task and each host keeps its own
    assert "Ensure the restic repository exists" in run.out
    assert {h: _repository_id(vm) for h, vm in vms.items()} == ids
    assert len(set(ids.values())) == len(vms), "each host has its own repository"


def test_check_mode_on_a_converged_fleet_changes_nothing(vms):
    before = host_state(vms.values())
    run = playbook("--check", "--diff")
    assert run.rc == 0, run.out[-4000:]
    assert {h: run.changed(h) for h in vms} == {h: 0 for h in vms}, run.out[-4000:]
    assert host_state(vms.values()) == before


def test_diff_mode_predicts_a_change_without_secrets_and_changes_nothing(vms):
    before = host_state(vms.values())
    new_secret = "rotated-rest-password-4f9a1c"
    run = playbook("--check", "--diff", "--limit", "vm1", "-e", "cloud_backup_rest_password=" + new_secret,
                   "-e", '{"cloud_backup_sources": [{"name": "www", "path": "/srv/www", "tags": ["web", "static"]}]}')
    assert run.rc == 0, run.out[-4000:]
    assert run.changed("vm1") > 0
    assert "+command = backup --tag www --tag web --tag static" in run.out  # ofelia config diff
    assert '-      - "/srv/projects:/backup/projects:ro"' in run.out        # compose diff
    assert new_secret not in run.out and "lab-rest-password-vm1" not in run.out
    assert host_state(vms.values()) == before


def test_ofelia_config_change_restarts_only_ofelia(vms):
    vm1 = vms["vm1"]
    backup_before = _container(vm1, "cloud-backup")
    ofelia_before = _container(vm1, "cloud-backup-ofelia")
    try:
        run = playbook("--limit", "vm1", "-e", "cloud_backup_forget_schedule='0 1 5 * * *'")
        assert run.rc == 0, run.out[-4000:]
        assert "RUNNING HANDLER [infn_cloud.backup.cloud_backup : Restart ofelia]" in run.out
        assert _container(vm1, "cloud-backup") == backup_before
        ofelia_after = _container(vm1, "cloud-backup-ofelia")
        assert ofelia_after[0] == ofelia_before[0] and ofelia_after[1] != ofelia_before[1]
        assert "schedule = 0 1 5 * * *" in vm_exec(vm1, "cat /opt/cloud-backup/ofelia/config.ini").stdout
    finally:
        assert playbook("--limit", "vm1").rc == 0


def test_env_change_recreates_the_backup_container(vms):
    vm1 = vms["vm1"]
    backup_before = _container(vm1, "cloud-backup")
    try:
        run = playbook("--limit", "vm1", "-e", "cloud_backup_restic_compression=max")
        assert run.rc == 0 and run.changed("vm1") > 0, run.out[-4000:]
        assert _container(vm1, "cloud-backup")[0] != backup_before[0]
        env = vm_exec(vm1, "docker exec cloud-backup printenv RESTIC_COMPRESSION").stdout.strip()
        assert env == "max"
    finally:
        assert playbook("--limit", "vm1").rc == 0


def test_secrets_only_in_the_private_secret_files(vms):
    for vm in vms.values():
        listing = vm_exec(vm, "stat -c '%a %u' /opt/cloud-backup/.env /opt/cloud-backup/secrets/RESTIC_REST_PASSWORD")
        assert listing.stdout.split() == ["600", "0", "600", "1000"]
        leaks = subprocess.run(["docker", "exec", vm, "grep", "-rl", "lab-rest-password", "/opt/cloud-backup",
                                "/etc/cron.d"], capture_output=True, text=True).stdout.split()
        assert leaks == ["/opt/cloud-backup/secrets/RESTIC_REST_PASSWORD"]


@pytest.mark.parametrize("docker_install", ["false", "true"])
def test_wrong_password_fails_before_any_change_and_keeps_the_repository(vms, docker_install):
    """The password probe runs whenever a stack runs, whatever cloud_backup_docker_install says (with true it was
    skipped, and the wrong password was found only after .env was rewritten and the stack recreated)."""
    vm1 = vms["vm1"]
    repo_id = _repository_id(vm1)
    before = host_state(vms.values())
    run = playbook("-e", "cloud_backup_restic_password=not-the-repository-password",
                   "-e", "cloud_backup_docker_install=" + docker_install, "-vvv")
    assert run.rc != 0
    assert "wrong password" in run.out and "left untouched (not initialised)" in run.out
    assert "Nothing was changed on any host" in run.out
    assert "not-the-repository-password" not in run.out
    assert host_state(vms.values()) == before
    assert _repository_id(vm1) == repo_id


def test_cron_jobs_really_fire(vms):
    """On the cron VM, cron itself runs the backup job: a new snapshot appears within two minutes."""
    vm2 = vms["vm2"]

    def count():
        out = vm_exec(vm2, "docker exec -u user cloud-backup restic snapshots --json --tag alice").stdout
        return len(json.loads(out))

    before = count()
    try:
        run = playbook("--limit", "vm2", "-e",
                       '{"cloud_backup_sources": [{"name": "alice", "path": "/home/alice", "schedule": "0 * * * * *"}]}')
        assert run.rc == 0, run.out[-4000:]
        assert ("* * * * * root flock -n /run/lock/cloud-backup-backup-alice.lock docker exec -u user "
                "-e CLOUD_BACKUP_JOB=backup-alice -e CLOUD_BACKUP_PING_VAR=HC_PING_BACKUP_ALICE cloud-backup backup"
                ) in vm_exec(vm2, "cat /etc/cron.d/cloud-backup").stdout
        deadline = time.time() + 150
        while time.time() < deadline and count() == before:
            time.sleep(5)
        assert count() > before, vm_exec(vm2, "tail -20 /opt/cloud-backup/logs/*", check=False).stdout
        log = vm_exec(vm2, "cat /opt/cloud-backup/logs/backup-alice-*.log").stdout
        assert "snapshot" in log and "saved" in log
    finally:
        assert playbook("--limit", "vm2").rc == 0
