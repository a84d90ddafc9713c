"""Faults during a rollout and in operation, on VMs of their own (persistent disks, like real VMs):
a VM stopped in the middle of a rollout, Healthchecks down during a rollout, a VM rebooted, and the S3 server
stopped (frozen) in the middle of a backup."""

import json
import os
import re
import socket
import subprocess
import time
import urllib.request

import pytest

from labkit import BIN, REPO, hc_pings, host_state, lab_vms, playbook, run_job, scheduled_job, vm_exec

VMS = {"fault-a": "infn-lab-fault-a", "fault-b": "infn-lab-fault-b"}
SOURCES = '{"cloud_backup_sources": [{"name": "www", "path": "/srv/www"}]}'


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    lab_vms()  # the lab's network, S3 and Healthchecks must be up
    for container in VMS.values():
        subprocess.run(["bash", "lab/lab.sh", "extra-vm", container, "persistent", "with-image"], cwd=REPO, check=True,
                       capture_output=True)
    path = tmp_path_factory.mktemp("faults") / "hosts.yml"
    path.write_text("all:\n  children:\n    cloud_backup:\n      hosts:\n" + "".join(
        "        %s: {ansible_host: %s}\n" % item for item in VMS.items()))
    yield path
    for container in VMS.values():
        subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True)
        subprocess.run(["docker", "volume", "rm", "-f", container + "-disk"], capture_output=True)


def _rollout(inventory, *args):
    return playbook("-i", str(inventory), "--limit", ",".join(VMS), "-e", SOURCES, *args)


def test_vm_stopped_in_the_middle_of_a_rollout(inventory):
    argv = [BIN + "/ansible-playbook", "-i", "inventories/lab", "-i", str(inventory), "playbooks/site.yml",
            "--limit", ",".join(VMS), "-e", SOURCES]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", PYTHONUNBUFFERED="1"))
    out, stopped = [], False
    for line in proc.stdout:
        out.append(line)
        if not stopped and "TASK [infn_cloud.backup.cloud_backup : Write the stack's directories and files]" in line:
            subprocess.run(["docker", "stop", "-t", "0", VMS["fault-b"]], check=True, capture_output=True)
            stopped = True
    proc.wait(timeout=900)
    text = "".join(out)
    assert stopped, text[-3000:]
    assert proc.returncode != 0
    recap = text[text.rindex("PLAY RECAP"):]
    assert "fault-a" in recap and "fault-b" in recap
    a_line = [l for l in recap.splitlines() if l.startswith("fault-a")][0]
    b_line = [l for l in recap.splitlines() if l.startswith("fault-b")][0]
    assert "failed=0" in a_line and "unreachable=0" in a_line, recap  # the other VM finished
    assert "unreachable=1" in b_line or "failed=1" in b_line, recap    # the recap names the stopped one
    assert vm_exec(VMS["fault-a"], "docker inspect -f '{{.State.Running}}' cloud-backup").stdout.strip() == "true"

    subprocess.run(["docker", "start", VMS["fault-b"]], check=True, capture_output=True)
    for _ in range(60):
        if vm_exec(VMS["fault-b"], "docker info", check=False).returncode == 0:
            break
        time.sleep(1)
    again = _rollout(inventory)
    assert again.rc == 0, again.out[-4000:]
    third = _rollout(inventory)
    assert third.rc == 0 and {h: third.changed(h) for h in VMS} == {h: 0 for h in VMS}, third.out[-3000:]


def test_healthchecks_down_during_a_rollout(inventory):
    """The Healthchecks server down: nothing listens at the API's address (a port of this machine just closed), which
    is what a stopped server gives its clients. The lab's own server stays up: other test modules use it meanwhile."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        down = "http://127.0.0.1:%d" % sock.getsockname()[1]
    before = host_state(VMS.values())
    run = _rollout(inventory, "-e", "cloud_backup_healthchecks_grace=7200", "-e", "cloud_backup_healthchecks_api_url=" + down)
    assert run.rc != 0
    # the module's own message, shown although the task is no_log (it holds no secret)
    assert re.search(r"fault-[ab]: Healthchecks API (GET|POST) [^\n]* failed after \d attempt\(s\): [^\n]*"
                     r"(Connection refused|Errno 111)", run.out), run.out[-4000:]
    assert host_state(VMS.values()) == before, "nothing may change on the hosts"
    # the server back: the rollout converges
    again = _rollout(inventory)
    assert again.rc == 0, again.out[-4000:]
    assert _rollout(inventory).rc == 0


def test_vm_reboot_brings_the_stack_back(inventory):
    container = VMS["fault-a"]
    subprocess.run(["docker", "restart", "-t", "5", container], check=True, capture_output=True)
    for _ in range(90):
        state = vm_exec(container, "docker inspect -f '{{.State.Running}}' cloud-backup", check=False).stdout.strip()
        if state == "true":
            break
        time.sleep(1)
    assert state == "true", "the stack did not come back after the reboot"
    job = scheduled_job(container, "backup-www")
    for _ in range(30):  # the REST server needs a moment after the start
        result = vm_exec(container, job, check=False)
        if result.returncode == 0:
            break
        time.sleep(2)
    assert result.returncode == 0, result.stdout + result.stderr
    snapshots = json.loads(vm_exec(container, "docker exec -u user cloud-backup restic snapshots --json").stdout)
    assert snapshots
    assert _rollout(inventory).rc == 0


def test_s3_stopped_during_a_backup(inventory):
    """An S3 server of its own (moto keeps its objects in memory, so it is frozen with docker pause rather than
    restarted). The backup job stops at its time limit and pings failure; once the server is back, restic check
    finds the repository consistent and the next backup succeeds."""
    vm, s3 = VMS["fault-b"], "infn-lab-fault-s3"
    subprocess.run(["docker", "rm", "-f", s3], capture_output=True)
    subprocess.run(["docker", "run", "-d", "--name", s3, "--network", "infn-lab", "--label", "infn-lab=1",
                    "infn-lab/s3:latest"], check=True, capture_output=True)
    try:
        ip = subprocess.run(["docker", "inspect", "-f", '{{(index .NetworkSettings.Networks "infn-lab").IPAddress}}', s3],
                            check=True, capture_output=True, text=True).stdout.strip()
        for _ in range(60):
            try:
                urllib.request.urlopen(urllib.request.Request("http://%s:5000/fault-backups" % ip, method="PUT"), timeout=5)
                break
            except OSError:
                time.sleep(0.5)
        vm_exec(vm, "mkdir -p /srv/big && head -c 400M /dev/urandom > /srv/big/random.bin")
        extra = json.dumps({
            "cloud_backup_sources": [{"name": "big", "path": "/srv/big"}],
            "cloud_backup_destination": {"type": "s3", "endpoint": "http://%s:5000" % ip, "bucket": "fault-backups",
                                         "path": "fault-b", "access_key_id": "k", "secret_access_key": "s",
                                         "region": "us-east-1"},
            "cloud_backup_job_timeout": "30s"})
        run = playbook("-i", str(inventory), "--limit", "fault-b", "-e", extra)
        assert run.rc == 0, run.out[-4000:]
        assert "CLOUD_BACKUP_JOB_TIMEOUT='30s'" in vm_exec(vm, "cat /opt/cloud-backup/.env").stdout

        job = scheduled_job(vm, "backup-big")
        started = time.monotonic()
        proc = subprocess.Popen(["docker", "exec", vm, "sh", "-c", job], stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT, text=True)
        listing = "http://%s:5000/fault-backups?list-type=2&prefix=fault-b/data/" % ip
        for _ in range(600):  # freeze the server once restic's first packs have landed
            with urllib.request.urlopen(listing, timeout=5) as res:
                if b"<Key>" in res.read():
                    break
            assert proc.poll() is None, "the backup ended before the server could be stopped: " + proc.stdout.read()
            time.sleep(0.1)
        # the cgroup freezer can time out on a machine whose cores are all busy (runc then thaws it): tried again
        for _ in range(10):
            paused = subprocess.run(["docker", "pause", s3], capture_output=True, text=True)
            if paused.returncode == 0:
                break
            time.sleep(0.5)
        assert paused.returncode == 0, paused.stderr
        out, _ = proc.communicate(timeout=300)
        elapsed = time.monotonic() - started
        assert proc.returncode == 124, out[-3000:]
        assert "time limit" in out and elapsed < 30 + 60 + 30, (elapsed, out[-2000:])
        pings = hc_pings("fault-b-backup-big")
        assert pings[-1]["type"] == "fail" and pings[-1]["exitstatus"] == 124, pings[-2:]
        assert "time limit" in pings[-1]["body"]

        subprocess.run(["docker", "unpause", s3], check=True, capture_output=True)
        check = run_job(vm, "check", command="check")
        assert check.returncode == 0 and "no errors were found" in check.stdout, check.stdout + check.stderr
        again = vm_exec(vm, job, check=False)
        assert again.returncode == 0, again.stdout + again.stderr
        snapshots = json.loads(vm_exec(vm, "docker exec -u user cloud-backup restic snapshots --json").stdout)
        assert len(snapshots) == 1 and snapshots[0]["paths"] == ["/backup/big"]
        assert hc_pings("fault-b-backup-big")[-1]["type"] == "success"
    finally:
        subprocess.run(["docker", "unpause", s3], capture_output=True)
        subprocess.run(["docker", "rm", "-f", s3], capture_output=True)
        vm_exec(vm, "rm -rf /srv/big", check=False)
