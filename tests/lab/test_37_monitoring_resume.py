"""Monitoring that cannot go silent (issue 17), on a lab VM of its own (never vm1..vm3):

- a source removed from the inventory has its check paused; put back, the rollout resumes that check (check mode
  predicts it and diff mode shows it, writing nothing), reports it, and writes nothing else to Healthchecks; a rerun
  changes nothing;
- checks kept paused on purpose (a source's `monitoring: paused`, `cloud_backup_healthchecks_paused`) are paused
  and stay paused;
- status: a job's check paused by hand makes the host `unmonitored` (the job named), the removed source's check is
  listed apart as retired, and the table is printed as plain aligned lines."""

import json
import re
import subprocess
import uuid

import boto3
import pytest

from labkit import REPO, hc_api, hc_requests, hc_writes, lab_vms, playbook, run_job

RUN = uuid.uuid4().hex[:6]
HOST = "m37%s" % RUN
VM = "infn-lab-m37-%s" % RUN
WWW = {"name": "www", "path": "/srv/www"}
PROJECTS = {"name": "projects", "path": "/srv/projects"}
S3 = dict(endpoint_url="http://127.0.0.1:59000", aws_access_key_id="lab-access-key",
          aws_secret_access_key="lab-secret-key", region_name="us-east-1")


def checks():
    """{job: check} of the host (the lab's Healthchecks, by the host's tag)."""
    found = hc_api("/api/v3/checks/?tag=host-%s" % HOST)["checks"]
    return {c["name"][len(HOST) + 1:]: c for c in found}


def api_writes(since):
    """The write calls about this host's checks after the cursor SINCE (other modules write to the server meanwhile)."""
    return hc_writes(since, [HOST])


def cursor():
    return len(hc_requests())


@pytest.fixture(scope="module")
def inventory(tmp_path_factory):
    lab_vms()  # the lab's network, S3 and Healthchecks must be up
    started = subprocess.run(["bash", "lab/lab.sh", "extra-vm", VM, "with-image"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    path = tmp_path_factory.mktemp("m37") / "hosts.yml"
    path.write_text("all:\n  children:\n    cloud_backup:\n      hosts:\n        %s: {ansible_host: %s}\n" % (HOST, VM))
    yield path
    subprocess.run(["docker", "rm", "-f", "-v", VM], capture_output=True)
    for check in checks().values():
        hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")
    s3 = boto3.client("s3", **S3)
    for item in s3.list_objects_v2(Bucket="lab-backups", Prefix=HOST + "/").get("Contents", []):
        s3.delete_object(Bucket="lab-backups", Key=item["Key"])


def rollout(inventory, sources, *args, **extra):
    variables = json.dumps(dict(cloud_backup_sources=sources, **extra))
    run = playbook("-i", str(inventory), "--limit", HOST, "-e", variables, *args)
    assert run.rc == 0, run.out[-5000:]
    return run


def status(inventory, tmp):
    out = tmp / "status.json"
    run = playbook("-i", str(inventory), "--limit", HOST, "-e", json.dumps({"cloud_backup_sources": [WWW]}),
                   "-e", "cloud_backup_status_json=%s" % out, "-e", "cloud_backup_status_html=",
                   playbook_path="infn_cloud.backup.status")
    return run, json.loads(out.read_text())["hosts"][0]


def test_a_source_put_back_has_its_check_resumed(inventory):
    rollout(inventory, [WWW, PROJECTS])
    assert {job: c["status"] for job, c in checks().items()} == {
        "backup-www": "new", "backup-projects": "new", "forget": "new", "check": "new"}
    rollout(inventory, [WWW])  # removed: its check is paused (cloud_backup_healthchecks_removed: paused)
    before = checks()
    assert before["backup-projects"]["status"] == "paused"

    since = cursor()
    predicted = rollout(inventory, [WWW, PROJECTS], "--check", "--diff")
    assert predicted.changed(HOST) > 0
    shown = re.search(r"Show what was written to Healthchecks.*?\n(ok|changed): \[%s\] => (\{.*?\n\})" % HOST,
                      predicted.out, re.S)
    assert shown, predicted.out[-5000:]
    written = json.loads(shown.group(2))["msg"]
    assert list(written) == ["%s-backup-projects" % HOST], written
    assert written["%s-backup-projects" % HOST]["writes"] == "resume"
    assert (written["%s-backup-projects" % HOST]["before"]["paused"],
            written["%s-backup-projects" % HOST]["after"]["paused"]) == (True, False)
    assert api_writes(since) == [] and checks()["backup-projects"]["status"] == "paused"  # check mode wrote nothing

    since = cursor()
    rollout(inventory, [WWW, PROJECTS])
    after = checks()
    assert after["backup-projects"]["status"] == "new"  # active again: it alerts if the job stops
    # only the resume was written: no other check was touched
    assert api_writes(since) == [("POST", "/api/v3/checks/%s/resume" % after["backup-projects"]["uuid"])]
    assert {job: c["status"] for job, c in after.items() if job != "backup-projects"} == {
        job: c["status"] for job, c in before.items() if job != "backup-projects"}
    assert {job: c["uuid"] for job, c in after.items()} == {job: c["uuid"] for job, c in before.items()}

    since = cursor()
    again = rollout(inventory, [WWW, PROJECTS])
    assert again.changed(HOST) == 0 and api_writes(since) == [], again.out[-3000:]


def test_checks_kept_paused_on_purpose_stay_paused(inventory):
    kept = [WWW, dict(PROJECTS, monitoring="paused")]
    run = rollout(inventory, kept, cloud_backup_healthchecks_paused=["forget"])
    assert run.changed(HOST) > 0
    assert {job: c["status"] == "paused" for job, c in checks().items()} == {
        "backup-www": False, "backup-projects": True, "forget": True, "check": False}
    since = cursor()
    again = rollout(inventory, kept, cloud_backup_healthchecks_paused=["forget"])
    assert again.changed(HOST) == 0 and api_writes(since) == [], again.out[-3000:]
    # the switches taken away: both are resumed
    rollout(inventory, [WWW, PROJECTS])
    assert not [job for job, c in checks().items() if c["status"] == "paused"]


def test_status_names_the_unmonitored_job_and_prints_a_plain_table(inventory, tmp_path):
    rollout(inventory, [WWW])  # projects removed again: its check is paused, retired
    run_job(VM, "backup-www", check=True)  # a fresh snapshot: the host is otherwise ok
    run, row = status(inventory, tmp_path)
    assert run.rc == 0 and row["verdict"] == "ok", run.out[-4000:]
    assert row["checks_text"].endswith("; retired: backup-projects (paused)"), row["checks_text"]
    # the check of a job of the inventory paused by hand: nobody would be told if the job stopped
    hc_api("/api/v3/checks/%s/pause" % checks()["backup-www"]["uuid"], method="POST")
    run, row = status(inventory, tmp_path)
    assert run.rc == 2 and row["verdict"] == "unmonitored", run.out[-4000:]
    assert row["reasons"] == ["check backup-www is paused: roll out to resume it"]
    lines = run.out.splitlines()
    header = [i for i, line in enumerate(lines) if re.match(r"^HOST\s+DESTINATION\s.*VERDICT$", line)]
    assert header, run.out[-4000:]
    table = lines[header[0]:header[0] + 4]
    assert re.match(r"^%s\s+s3:http://172\.31\.240\.10:5000/lab-backups/%s\s.*\sunmonitored$" % (HOST, HOST), table[1])
    assert table[1].index("unmonitored") == table[0].index("VERDICT")
    assert table[2:4] == ["1 host(s), 0 ok, 1 not ok", "%s: unmonitored: check backup-www is paused: roll out to resume it" % HOST]
    assert run.out.count("fatal: ") == 1 and "1 of 1 host(s) not ok: %s unmonitored" % HOST in run.out
    # the rollout resumes it
    rollout(inventory, [WWW])
    assert checks()["backup-www"]["status"] != "paused"
