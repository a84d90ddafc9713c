"""Check mode on a host that has never been rolled out: it predicts changes and changes nothing."""

import subprocess

import pytest

from labkit import REPO, host_state, lab_vms, playbook

FRESH = "infn-lab-fresh"


@pytest.fixture(scope="module")
def fresh(tmp_path_factory):
    lab_vms()  # the lab (network, S3, Healthchecks) must be up
    subprocess.run(["bash", "lab/lab.sh", "extra-vm", FRESH], cwd=REPO, check=True, capture_output=True)
    inventory = tmp_path_factory.mktemp("fresh") / "hosts.yml"
    inventory.write_text("all:\n  children:\n    cloud_backup:\n      hosts:\n        fresh: {ansible_host: %s}\n" % FRESH)
    yield inventory
    subprocess.run(["docker", "rm", "-f", FRESH], capture_output=True)


def _run(inventory, *args):
    # the lab's group_vars apply through a second inventory source; the image is built on the host here (the lab
    # builds it once on the controller otherwise: tests/lab/test_25_controller_image.py)
    return playbook("-i", str(inventory), "--limit", "fresh", *args, "-e",
                    '{"cloud_backup_sources": [{"name": "www", "path": "/srv/www"}], "cloud_backup_image_source": "build"}')


def test_check_mode_on_a_fresh_host_predicts_and_changes_nothing(fresh):
    before = host_state([FRESH])
    run = _run(fresh, "--check", "--diff")
    assert run.rc == 0, run.out[-5000:]
    assert run.changed("fresh") >= 3, run.out[-3000:]
    # what a first rollout writes, builds and starts is predicted task by task
    for task in ("Write the stack's directories and files", "Copy the backup image's build context"):
        assert "changed: [fresh]" in run.out.split("TASK [infn_cloud.backup.cloud_backup : %s]" % task, 1)[1].split("TASK [")[0], task
    assert host_state([FRESH]) == before
    assert "lab restic password" not in run.out and "lab-rest-password" not in run.out


def test_then_the_real_rollout_and_rerun(fresh):
    first = _run(fresh)
    assert first.rc == 0 and first.changed("fresh") > 0, first.out[-5000:]
    second = _run(fresh)
    assert second.rc == 0 and second.changed("fresh") == 0, second.out[-5000:]
