"""Bad input fails before anything is changed on any host, with a message naming the variable or the
host's problem (issue: foundation, "Bad input"). Runs against the lab's real VMs."""

import os

import pytest

from labkit import copy_inventory, edit_yaml, host_state, lab_vms, playbook, vm_exec


@pytest.fixture(scope="module")
def vms():
    return lab_vms()


ARGSPEC_FAILED = "TASK [infn_cloud.backup.cloud_backup : Validating arguments against arg spec 'main'"
GATE = "Nothing was changed on any host: preflight failed on"


def _assert_refused(vms, tmp_path, change, message, host_file="group_vars/all.yml", stage="preflight"):
    """The rollout is refused with MESSAGE at STAGE (argspec: ansible-core's validation of argument_specs, which
    stops each host before its first task; preflight: the role's checks, then the fleet gate) and no host changed."""
    inventory = copy_inventory(tmp_path)
    edit_yaml(os.path.join(inventory, host_file), change)
    before = host_state(vms.values())
    run = playbook(inventory=inventory)
    assert run.rc != 0, run.out
    assert message in run.out, run.out[-4000:]
    if stage == "argspec":
        failed_task = run.out[:run.out.index(message)].rsplit("TASK [", 1)[-1]
        assert ("TASK [" + failed_task).startswith(ARGSPEC_FAILED), run.out[-4000:]
        # hosts whose own variables pass argument_specs (vm3 has a local destination) go on to preflight, where the
        # fleet gate stops them
        assert GATE in run.out or "Check the variables" not in run.out, run.out[-4000:]
    else:
        assert GATE in run.out, run.out[-4000:]
    assert host_state(vms.values()) == before, "a refused rollout changed a host"
    return run


def test_missing_mandatory_variable(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.pop("cloud_backup_restic_password"),
                    "missing required arguments: cloud_backup_restic_password", stage="argspec")


def test_placeholder_password(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_rest_password="changeme"),
                    "cloud_backup_rest_password is empty or a placeholder")


def test_empty_password(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_restic_password=""),
                    "cloud_backup_restic_password is empty or a placeholder")


def test_five_field_cron(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_forget_schedule="0 3 * * *"),
                    "cloud_backup_forget_schedule: '0 3 * * *' has 5 fields; ofelia needs 6")


def test_out_of_range_field(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_backup_schedule="0 75 2 * * *"),
                    "cloud_backup_backup_schedule: minutes: 75 is out of range 0-59")


def test_duplicate_source_names(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_sources=[
        {"name": "www", "path": "/srv/www"}, {"name": "www", "path": "/srv/projects"}]),
        "cloud_backup_sources[0].name 'www' and cloud_backup_sources[1].name 'www' are the same name",
        host_file="host_vars/vm1.yml")


def test_source_names_colliding_as_variable_names(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_sources=[
        {"name": "www-data", "path": "/srv/www"}, {"name": "www_data", "path": "/srv/projects"}]),
        "cloud_backup_sources[0].name 'www-data' and cloud_backup_sources[1].name 'www_data' collide once turned into "
        "variable names (both HC_PING_BACKUP_WWW_DATA)", host_file="host_vars/vm1.yml")


def test_relative_source_path(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d.update(cloud_backup_sources=[{"name": "www", "path": "srv/www"}]),
                    "cloud_backup_sources[0].path 'srv/www' must be an absolute path", host_file="host_vars/vm1.yml")


def test_missing_source_directory_on_one_host_stops_all(vms, tmp_path):
    run = _assert_refused(
        vms, tmp_path, lambda d: d.update(cloud_backup_sources=[{"name": "gone", "path": "/srv/does-not-exist"}]),
        "vm3: cloud_backup_sources: gone: /srv/does-not-exist is not an existing directory on the host",
        host_file="host_vars/vm3.yml")
    assert "preflight failed on vm3" in run.out
    assert all(run.recap[h]["failed"] >= 1 for h in vms), run.recap


def test_destination_missing_field(vms, tmp_path):
    _assert_refused(vms, tmp_path, lambda d: d["cloud_backup_destination"].pop("bucket"),
                    "type is s3 but all of the following are missing: bucket", stage="argspec")


@pytest.mark.parametrize("path, message", [
    ("/usr/bin/docker", "the Docker engine does not answer"),
    ("/usr/libexec/docker/cli-plugins/docker-compose", "Docker Compose v2 (the \"docker compose\" plugin) is missing"),
])
def test_docker_or_compose_missing(vms, tmp_path, path, message):
    vm3 = vms["vm3"]
    vm_exec(vm3, "mv %s %s.off" % (path, path))
    try:
        run = _assert_refused(vms, tmp_path, lambda d: None, "vm3: " + message)
        assert "cloud_backup_docker_install: true" in run.out
    finally:
        vm_exec(vm3, "mv %s.off %s" % (path, path))
