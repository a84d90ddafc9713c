"""Healthchecks wiring on the lab fleet: the role ensures one check per job through the API (the lab's
fake Healthchecks, lab/healthchecks), idempotently; the ping URLs reach only the hosts' private .env;
real job runs turn checks up or down; a removed source's check is paused."""

import json
import re
import urllib.request

import pytest

from labkit import hc_requests, hc_writes, lab_vms, playbook, run_job, scheduled_job, vm_exec

HC = "http://127.0.0.1:58000"
API_KEY = "hcw_labfleetreadwritekey00000001"


def admin(path, method="GET"):
    request = urllib.request.Request(HC + "/_admin/" + path, method=method)
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def checks():
    return {c["name"]: c for c in admin("checks")["checks"]}


@pytest.fixture(scope="module")
def vms():
    vms = lab_vms()
    run = playbook()
    assert run.rc == 0, run.out[-4000:]
    return vms


EXPECTED = {
    "vm1": {"vm1-backup-www", "vm1-backup-projects", "vm1-forget", "vm1-check"},
    "vm2": {"vm2-backup-alice", "vm2-forget", "vm2-check"},
    "vm3": {"vm3-backup-projects", "vm3-forget", "vm3-check"},
}


def test_one_check_per_job_with_tags_schedule_and_channels(vms):
    current = checks()
    for host, names in EXPECTED.items():
        mine = {n for n, c in current.items() if "host-%s" % host in c["tags"].split()}
        assert names <= mine, (host, mine)
        active = {n for n in mine if current[n]["status"] != "paused"}
        assert active == names, (host, active)
    www = current["vm1-backup-www"]
    assert set(www["tags"].split()) >= {"cloud-backup", "host-vm1", "group-cloud_backup"}
    assert www["tz"] == "UTC" and len(www["schedule"].split()) == 5
    assert www["grace"] == 3600
    assert www["channels"], "the ops-email channel is attached"
    assert current["vm3-backup-projects"]["timeout"] == 6 * 3600  # @every 6h becomes a period
    assert current["vm2-backup-alice"]["schedule"] == "15 1 * * *"  # "0 15 1 * * *" without seconds


def test_rerun_makes_no_write_call(vms):
    since = len(hc_requests())
    run = playbook()
    assert run.rc == 0
    assert {h: run.changed(h) for h in vms} == {h: 0 for h in vms}, run.out[-3000:]
    # other test modules use the server meanwhile: the writes about these hosts' checks (named in the log) are none;
    # how many reads a rerun makes (one list and one channel lookup) is counted by
    # tests/integration/test_healthchecks_modules.py on a server of its own
    calls = hc_requests()[since:]
    assert hc_writes(since, vms) == [], calls
    assert not [r for r in calls if r["status"] in (301, 302)], calls
    assert [r for r in calls if r["path"].startswith("/api/v3/checks/")], "the rerun read no check"


def test_ping_urls_only_in_private_secret_files(vms):
    current = checks()
    for host, vm in vms.items():
        env = vm_exec(vm, "cat /opt/cloud-backup/.env").stdout
        for name in EXPECTED[host]:
            uuid = current[name]["uuid"]
            # the job's environment, as its scheduler passes it, names the variable that holds its ping URL; the
            # .env names the file the container reads it from; the file is private to the container's user
            job = scheduled_job(vm, name[len(host) + 1:])
            var = re.search(r"CLOUD_BACKUP_PING_VAR=(\w+)", job).group(1)
            assert re.search(r"CLOUD_BACKUP_SECRET_ENV='[^']*\b%s=/run/secrets/%s\b" % (var, var), env), env
            url = vm_exec(vm, "cat /opt/cloud-backup/secrets/%s" % var).stdout.strip()
            assert url == "http://172.31.240.11:8000/ping/%s" % uuid
            mode = vm_exec(vm, "stat -c %%a /opt/cloud-backup/secrets/%s" % var).stdout.strip()
            assert mode == "600"
        public = vm_exec(vm, "cat /opt/cloud-backup/.env /opt/cloud-backup/compose.yaml "
                             "/opt/cloud-backup/ofelia/config.ini /etc/cron.d/cloud-backup 2>/dev/null",
                         check=False).stdout
        assert "/ping/" not in public


def test_job_runs_turn_checks_up_and_down(vms):
    vm1 = vms["vm1"]
    run_job(vm1, "backup-www", check=True)
    check = checks()["vm1-backup-www"]
    assert check["status"] == "up"
    pings = [p for p in admin("pings")["pings"] if p["check"] == "vm1-backup-www"]
    assert [p["type"] for p in pings[-2:]] == ["start", "success"]
    assert pings[-1]["rid"] == pings[-2]["rid"] and "snapshot" in pings[-1]["body"]
    # the same job with a password the repository refuses: restic exits 12, the check goes down
    failing = run_job(vm1, "backup-www", env={"RESTIC_PASSWORD": "wrong"})
    assert failing.returncode == 12
    assert checks()["vm1-backup-www"]["status"] == "down"
    last = [p for p in admin("pings")["pings"] if p["check"] == "vm1-backup-www"][-1]
    assert last["exitstatus"] == 12 and "wrong password" in last["body"]
    run_job(vm1, "backup-www", check=True)
    assert checks()["vm1-backup-www"]["status"] == "up"


def test_removed_source_pauses_its_check(vms):
    try:
        run = playbook("--limit", "vm1", "-e", '{"cloud_backup_sources": [{"name": "www", "path": "/srv/www"}]}')
        assert run.rc == 0, run.out[-3000:]
        current = checks()
        assert current["vm1-backup-projects"]["status"] == "paused"
        assert current["vm1-backup-www"]["status"] != "paused"
        assert "HC_PING_BACKUP_PROJECTS" not in vm_exec(vms["vm1"], "cat /opt/cloud-backup/.env").stdout
    finally:
        assert playbook("--limit", "vm1").rc == 0
        # a paused check resumes on its next ping: the job's next run
        run_job(vms["vm1"], "backup-projects", check=True)
    assert checks()["vm1-backup-projects"]["status"] == "up"


def test_api_key_and_ping_urls_never_in_output(vms):
    run = playbook("--limit", "vm2", "-vvv")
    assert run.rc == 0
    assert API_KEY not in run.out
    for name in EXPECTED["vm2"]:
        assert checks()[name]["uuid"] not in run.out
