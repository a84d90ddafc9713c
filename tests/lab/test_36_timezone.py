"""One time zone for schedules (issue 12, defect d): on hosts in Europe/Rome the scheduler runs the jobs in the
host's zone (cron reads it; ofelia's container gets it as TZ) and every Healthchecks check expects them there, so a
job's real run time is the time its check expects. One VM per scheduler, both in Europe/Rome."""

import json
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

import pytest

from labkit import REPO, hc_pings, lab_vms, playbook, vm_exec

ROME = ZoneInfo("Europe/Rome")
RUN = uuid.uuid4().hex[:6]
VMS = {"tzcron%s" % RUN: "infn-lab-tzcron-%s" % RUN, "tzofelia%s" % RUN: "infn-lab-tzofelia-%s" % RUN}
SCHEDULER = {name: ("cron" if name.startswith("tzcron") else "ofelia") for name in VMS}


def _checks():
    with urllib.request.urlopen("http://127.0.0.1:58000/_admin/checks", timeout=10) as res:
        return {c["name"]: c for c in json.load(res)["checks"]}


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    lab_vms()  # the lab's network, S3 and Healthchecks must be up
    procs = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", c, "with-image"], cwd=REPO, stdout=subprocess.PIPE,
                              stderr=subprocess.STDOUT) for c in VMS.values()]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    for container in VMS.values():
        # the host lives in Rome; its cron daemon is started again to read the zone, once the old one has exited (it
        # holds /var/run/crond.pid until then; it stays a zombie, as the lab VM's PID 1 is dockerd, not an init)
        vm_exec(container, "ln -sf /usr/share/zoneinfo/Europe/Rome /etc/localtime && pkill -x cron;"
                           " for i in $(seq 1 100); do ps -o stat= -C cron | grep -qv '^Z' || break; sleep 0.1; done;"
                           " cron")
    path = tmp_path_factory.mktemp("tz") / "hosts.yml"
    path.write_text("all:\n  children:\n    cloud_backup:\n      hosts:\n" + "".join(
        "        %s: {ansible_host: %s, cloud_backup_scheduler: %s}\n" % (name, c, SCHEDULER[name])
        for name, c in VMS.items()))
    yield path
    for container in VMS.values():
        subprocess.run(["docker", "rm", "-f", "-v", container], capture_output=True)


def _rollout(inventory, schedule):
    sources = json.dumps({"cloud_backup_sources": [{"name": "www", "path": "/srv/www", "schedule": schedule}]})
    run = playbook("-i", str(inventory), "--limit", ",".join(VMS), "-e", sources)
    assert run.rc == 0, run.out[-4000:]
    return run


def test_jobs_run_when_their_checks_expect_them_in_the_hosts_zone(inventory):
    _rollout(inventory, "0 0 3 * * *")  # first rollout; then a run time a minute or two ahead
    at = datetime.now(ROME).replace(second=0, microsecond=0) + timedelta(minutes=2)
    _rollout(inventory, "0 %d %d * * *" % (at.minute, at.hour))
    checks = _checks()
    for name, container in VMS.items():
        check = checks["%s-backup-www" % name]
        assert (check["schedule"], check["tz"]) == ("%d %d * * *" % (at.minute, at.hour), "Europe/Rome"), check
    ofelia = [c for n, c in VMS.items() if SCHEDULER[n] == "ofelia"][0]
    env = vm_exec(ofelia, "docker inspect -f '{{json .Config.Env}}' cloud-backup-ofelia").stdout
    assert "TZ=Europe/Rome" in env
    cron = [c for n, c in VMS.items() if SCHEDULER[n] == "cron"][0]
    assert "\n%d %d * * * root " % (at.minute, at.hour) in vm_exec(cron, "cat /etc/cron.d/cloud-backup").stdout

    deadline = time.time() + (at.astimezone(ROME) - datetime.now(ROME)).total_seconds() + 150
    done = {}
    while time.time() < deadline and len(done) < len(VMS):
        for name in VMS:
            success = [p for p in hc_pings("%s-backup-www" % name) if p["type"] == "success"]
            if success:
                done[name] = success[0]
        time.sleep(3)
    assert set(done) == set(VMS), "jobs that did not run by %s (Rome): %s" % (at, sorted(set(VMS) - set(done)))
    for name, ping in done.items():
        ran = datetime.fromisoformat(ping["date"].replace("Z", "+00:00")).astimezone(ROME)
        # the run falls in the minute the check expects (the job takes seconds; the check's grace is an hour)
        assert (ran.hour, ran.minute) == (at.hour, at.minute), (name, SCHEDULER[name], ran.isoformat())
