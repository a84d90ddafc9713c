"""A job fired by the stack's own scheduler: a fresh lab VM rolled out by the role with one source on
`@every 20s`; the ofelia container (the lab's stand-in, which schedules and runs jobs as ofelia 0.3.21 does)
runs the backup by itself, the lab's Healthchecks receives its /start and success pings, and restic lists
the snapshot. Nothing here runs the job by hand."""

import json
import subprocess
import time
import uuid
from datetime import datetime

import pytest
import yaml

from labkit import REPO, hc_pings, lab_vms, playbook, vm_exec

RUN = uuid.uuid4().hex[:6]
HOST = "s35%s" % RUN
VM = "infn-lab-s35-%s" % RUN
CHECK = "%s-backup-data" % HOST
STANDIN = "infn-lab/ofelia-standin:0.3.21"
DEADLINE = 240  # seconds for the first scheduled run to finish (20 s to the first fire, then the backup)


@pytest.fixture(scope="module")
def rolled_out(tmp_path_factory):
    lab_vms()  # the lab network, S3 and Healthchecks must be up
    tmp = tmp_path_factory.mktemp("s35")
    try:
        res = subprocess.run(["bash", "lab/lab.sh", "extra-vm", VM, "with-image"], cwd=REPO, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        vm_exec(VM, "mkdir -p /srv/data/sub && head -c 500000 /dev/urandom > /srv/data/blob.bin"
                    " && for i in $(seq 1 10); do seq 1 $((i * 100)) > /srv/data/sub/f$i.txt; done")
        host_vars = {"ansible_host": VM,
                     "cloud_backup_sources": [{"name": "data", "path": "/srv/data", "schedule": "@every 20s"}]}
        inventory = tmp / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"cloud_backup": {"hosts": {HOST: host_vars}}}}}))
        run = playbook("-i", str(inventory), "--limit", HOST)
        assert run.rc == 0, run.out[-6000:]
        yield
    finally:
        subprocess.run(["docker", "rm", "-f", VM], capture_output=True, timeout=120)


def scheduler_log():
    return vm_exec(VM, "docker logs cloud-backup-ofelia 2>&1", check=False).stdout


def runs(log, job):
    """{execution id: {"started": datetime, "finished": datetime, "line": text}} of a job in the stand-in's log."""
    found = {}
    for line in log.splitlines():
        stamp, _, rest = line.partition(" ")
        marker = '[Job "%s" (' % job
        if marker not in rest:
            continue
        run_id = rest.split(marker, 1)[1].split(")", 1)[0]
        entry = found.setdefault(run_id, {})
        if "] Started - " in rest:
            entry["started"] = datetime.fromisoformat(stamp)
        elif "] Finished in " in rest:
            entry.update(finished=datetime.fromisoformat(stamp), line=rest)
    return found


def snapshots():
    res = vm_exec(VM, "docker exec cloud-backup snapshots --json", check=False)
    return json.loads(res.stdout) if res.returncode == 0 and res.stdout.strip() else []


def test_the_config_rendered_by_the_role_passes_the_stand_ins_validate(rolled_out):
    res = vm_exec(VM, "docker run --rm -v /opt/cloud-backup/ofelia/config.ini:/c.ini:ro %s validate --config=/c.ini"
                  % STANDIN, check=False)
    assert res.returncode == 0, res.stdout + res.stderr
    assert 'New job registered "backup-data"' in res.stdout and "@every 20s" in res.stdout
    assert "Failed to register job" not in res.stdout


def test_a_scheduled_backup_runs_pings_healthchecks_and_lands_a_snapshot(rolled_out):
    deadline = time.time() + DEADLINE
    done = {}
    while time.time() < deadline:
        done = {k: r for k, r in runs(scheduler_log(), "backup-data").items() if "finished" in r and "started" in r}
        pings = hc_pings(CHECK)
        if done and {"start", "success"} <= {p["type"] for p in pings} and snapshots():
            break
        time.sleep(2)
    log = scheduler_log()
    assert done, "no run of backup-data finished within %d s; the stand-in's log:\n%s" % (DEADLINE, log[-4000:])
    assert 'New job registered "backup-data" - ' in log and "Failed to register job" not in log
    ok = {k: r for k, r in done.items() if "failed: false, skipped: false, error: none" in r["line"]}
    assert ok, [r["line"] for r in done.values()]
    # the pings were sent during one of the scheduler's runs (the fake stamps them to the second)
    pings = hc_pings(CHECK)

    def during(ping, run):
        when = datetime.fromisoformat(ping["date"]).timestamp()
        return int(run["started"].timestamp()) <= when <= run["finished"].timestamp() + 1

    assert any(any(during(p, r) and p["type"] == "start" for p in pings)
               and any(during(p, r) and p["type"] == "success" for p in pings) for r in ok.values()), (pings, ok)
    listed = snapshots()
    assert listed and listed[-1]["hostname"] == HOST and listed[-1]["paths"] == ["/backup/data"], listed
