"""cloud_backup_image_source: controller on three fresh VMs: the image is built once on the controller's Docker engine
(this machine's), kept compressed in the controller's cache, and loaded on every VM that lacks it. Check mode predicts
the load and changes nothing; after the rollout all three run one image ID, the controller's; the rerun changes
nothing and transfers nothing (no copy, no load on any VM)."""

import json
import os
import re
import subprocess
import tarfile
import time
import uuid

import pytest

import yaml

from labkit import LAB_INVENTORY, REPO, docker, host_state, playbook, vm_exec

RUN = uuid.uuid4().hex[:6]
VMS = {"ci%d" % i: "infn-lab-c25%d-%s" % (i, RUN) for i in (1, 2, 3)}


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    for service in ("infn-lab-s3", "infn-lab-hc"):
        state = docker("inspect", "-f", "{{.State.Running}}", service, check=False)
        assert state.stdout.strip() == "true", "%s is not running: start the lab (lab/lab.sh up)" % service
    starts = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", vm], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE) for vm in VMS.values()]
    for proc in starts:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
    hosts = {host: {"ansible_host": vm, "cloud_backup_sources": [{"name": "www", "path": "/srv/www"}],
                    "cloud_backup_healthchecks_api_url": ""}
             for host, vm in VMS.items()}
    inventory = tmp_path_factory.mktemp("c25") / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"cloud_backup": {"hosts": hosts}}}}))
    yield inventory
    for vm in VMS.values():
        docker("rm", "-f", vm, check=False)


def run(inventory, *args):
    # the lab's group_vars (cloud_backup_image_source: controller) apply through the lab inventory
    return playbook("-i", str(inventory), "--limit", ",".join(VMS), "-e", "cloud_backup_image_source=controller", *args)


def archive_image_id(out, ref):
    """The image ID inside the controller's compressed archive of REF (its manifest's config blob). The archive is the
    one the play's output names (the loop label of the task that keeps it: the host model's image.archive), in
    cloud_backup_image_cache_dir."""
    (line,) = task_results(out, "Keep the image compressed on the controller")
    name = re.search(r"\(item=([^)]+)\)", line).group(1)
    group_vars = yaml.safe_load(open(os.path.join(LAB_INVENTORY, "group_vars", "all.yml")))
    with tarfile.open(os.path.join(group_vars["cloud_backup_image_cache_dir"], name), "r:gz") as archive:
        manifest = json.load(archive.extractfile("manifest.json"))
    (entry,) = [m for m in manifest if ref in (m.get("RepoTags") or [])]
    return "sha256:" + entry["Config"].rsplit("/", 1)[-1].replace(".json", "")


def image_ids():
    return {vm: vm_exec(vm, "docker inspect -f '{{.Image}}' cloud-backup").stdout.strip() for vm in VMS.values()}


def task_results(out, task):
    """The result lines (ok/changed/skipping) of one task in a play's output."""
    section = out.split("TASK [infn_cloud.backup.cloud_backup : %s]" % task, 1)
    assert len(section) == 2, "task %r not in the output" % task
    return [line for line in section[1].split("TASK [", 1)[0].splitlines() if line.startswith(("ok:", "changed:"))]


def test_check_mode_predicts_the_load_and_changes_nothing(fleet):
    before = host_state(list(VMS.values()))
    check = run(fleet, "--check")
    assert check.rc == 0, check.out[-5000:]
    for host in VMS:
        assert check.changed(host) >= 3, check.out[-3000:]
    assert len(task_results(check.out, "Report the image that would be loaded")) == 3, check.out[-3000:]
    assert host_state(list(VMS.values())) == before


def test_one_image_id_on_every_vm_the_controllers(fleet):
    first = run(fleet)
    assert first.rc == 0, first.out[-5000:]
    assert len(task_results(first.out, "Load the image")) == 3, first.out[-3000:]
    ids = image_ids()
    assert len(set(ids.values())) == 1 and "" not in ids.values(), ids
    ref = vm_exec(VMS["ci1"], "docker inspect -f '{{.Config.Image}}' cloud-backup").stdout.strip()
    # the image of the controller's archive: built there once (the archive stays when the controller's engine has
    # pruned the image since)
    assert archive_image_id(first.out, ref) == set(ids.values()).pop()
    for vm in VMS.values():
        # nothing was built on the VM (no build context) and the shipped archive did not stay
        left = vm_exec(vm, "ls -A /opt/cloud-backup").stdout.split()
        assert "image" not in left and not [f for f in left if f.endswith(".tar.gz")], left
    # the status report shows the image each host runs: the same short ID on all three
    status = playbook("-i", str(fleet), "--limit", ",".join(VMS), "-e", "cloud_backup_status_json=%s" % (fleet.parent / "s.json"),
                      "-e", "cloud_backup_status_html=%s" % (fleet.parent / "s.html"), playbook_path="playbooks/status.yml")
    short = set(ids.values()).pop().split(":")[1][:12]
    rows = [line for line in status.out.splitlines()
            if any(line.lstrip().startswith(h + " ") for h in VMS) and "lab-backups/" in line]
    assert len(rows) == 3 and all(short in line for line in rows), status.out[-3000:]


def test_the_rerun_changes_and_transfers_nothing(fleet):
    ids = image_ids()
    since = str(int(time.time()))
    rerun = run(fleet)
    assert rerun.rc == 0, rerun.out[-5000:]
    for host in VMS:
        assert rerun.changed(host) == 0, rerun.out[-3000:]
    # every host has its image: the tasks that build, copy and load one are not even reached (tasks/image.yml)
    for task in ("Build the backup image on the controller", "Copy the compressed image to the host", "Load the image"):
        assert "TASK [infn_cloud.backup.cloud_backup : %s]" % task not in rerun.out, (task, rerun.out[-3000:])
    until = str(int(time.time()) + 1)
    for vm in VMS.values():
        events = vm_exec(vm, "docker events --since %s --until %s --filter type=image --format '{{.Action}}'"
                         % (since, until)).stdout.split()
        assert "load" not in events and "pull" not in events, (vm, events)
    assert image_ids() == ids
