"""Day-2 playbooks (the role's entry points) on two VMs of their own (d2a: ofelia, source www, an oidc-agent
password but no account; d2b: cron, source alice), each with its own repository in the lab's S3: backup_now,
status (ok, late on a down check, non-zero exit; no token column without an account), enroll and renew (n/a
without an account), restore onto another VM (identical checksums, refuses to overwrite), the restore drill
(passes, then detects a tampered repository), decommission (keeps the data; a later restore works), purge (only
that host's snapshots) and the variables of earlier versions refused."""

import json
import re
import subprocess
import urllib.request
import uuid

import boto3
import pytest

from labkit import REPO, playbook, vm_exec

VMS = {"d2a": "infn-lab-d2-1", "d2b": "infn-lab-d2-2"}
SOURCES = {"d2a": ("www", "/srv/www"), "d2b": ("alice", "/home/alice")}
HC = "http://127.0.0.1:58000"
API_KEY = "hcw_labfleetreadwritekey00000001"
S3 = dict(endpoint_url="http://127.0.0.1:59000", aws_access_key_id="lab-access-key",
          aws_secret_access_key="lab-secret-key", region_name="us-east-1")
BUCKET = "lab-backups"


def hc_api(path, method="GET"):
    request = urllib.request.Request(HC + path, method=method, headers={"X-Api-Key": API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body and path.startswith("/api/") else body


def checks(host):
    return {c["name"]: c for c in hc_api("/api/v3/checks/?tag=host-%s" % host)["checks"]}


def delete_checks():
    for host in VMS:
        for check in checks(host).values():
            hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")


def s3():
    return boto3.client("s3", **S3)


def s3_objects(prefix):
    """{key: etag} of a repository in the lab's S3."""
    out, token = {}, None
    while True:
        kwargs = dict(Bucket=BUCKET, Prefix=prefix + "/")
        if token:
            kwargs["ContinuationToken"] = token
        page = s3().list_objects_v2(**kwargs)
        out.update({o["Key"]: o["ETag"] for o in page.get("Contents", [])})
        if not page.get("IsTruncated"):
            return out
        token = page["NextContinuationToken"]


def s3_delete(prefix):
    for key in s3_objects(prefix):
        s3().delete_object(Bucket=BUCKET, Key=key)


def snapshots(host):
    out = vm_exec(VMS[host], "docker exec -u user cloud-backup restic snapshots --json --host %s" % host).stdout
    return json.loads(out)


def checksums(container, directory):
    return vm_exec(container, "cd %s && find . -type f | sort | xargs sha256sum" % directory).stdout


@pytest.fixture(scope="module")
def fleet(tmp_path_factory):
    # The lab's S3 and Healthchecks must be up (never skipped); the lab's own VMs are not used.
    for service in ("infn-lab-s3", "infn-lab-hc"):
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", service], capture_output=True, text=True)
        assert state.stdout.strip() == "true", "%s is not running: start the lab (lab/lab.sh up)" % service
    run = uuid.uuid4().hex[:8]
    prefixes = {host: "day2-%s-%s" % (run, host) for host in VMS}
    delete_checks()  # left over by an interrupted earlier run
    starts = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", vm, "with-image"], cwd=REPO, stdout=subprocess.DEVNULL,
                               stderr=subprocess.PIPE) for vm in VMS.values()]
    for proc in starts:
        assert proc.wait(timeout=600) == 0, proc.stderr.read()
    tmp = tmp_path_factory.mktemp("day2")
    hosts = {}
    for host, vm in VMS.items():
        name, path = SOURCES[host]
        hosts[host] = {
            "ansible_host": vm,
            "cloud_backup_sources": [{"name": name, "path": path}],
            "cloud_backup_destination": {"type": "s3", "endpoint": "http://172.31.240.10:5000", "bucket": BUCKET,
                                         "path": prefixes[host], "access_key_id": "lab-access-key",
                                         "secret_access_key": "lab-secret-key", "region": "us-east-1"},
        }
    hosts["d2b"]["cloud_backup_scheduler"] = "cron"
    # a password without an account: the host has no oidc-agent account (the role's meaning of an empty account)
    hosts["d2a"]["cloud_backup_oidc_password"] = "a-password-without-an-account"
    inventory = tmp / "hosts.yml"
    inventory.write_text(json.dumps({"all": {"children": {"cloud_backup": {"hosts": hosts}}}}))
    rollout = playbook("-i", str(inventory), "--limit", "d2a,d2b")
    assert rollout.rc == 0, rollout.out[-5000:]
    yield {"inventory": inventory, "prefixes": prefixes, "tmp": tmp}
    for vm in VMS.values():
        subprocess.run(["docker", "rm", "-f", vm], capture_output=True)
    for prefix in prefixes.values():
        s3_delete(prefix)
    delete_checks()


def day2(fleet, name, *args):
    # by their collection names, as users run them (the checkout is the installed collection here)
    return playbook("-i", str(fleet["inventory"]), *args, playbook_path="infn_cloud.backup.%s" % name)


def status(fleet):
    out = fleet["tmp"] / "status.json"
    run = day2(fleet, "status", "--limit", "d2a,d2b", "-e", "cloud_backup_status_json=%s" % out,
               "-e", "cloud_backup_status_html=%s" % (fleet["tmp"] / "status.html"))
    return run, {row["host"]: row for row in json.loads(out.read_text())["hosts"]}


def test_backup_now_adds_a_snapshot_and_pings(fleet):
    before = {host: len(snapshots(host)) for host in VMS}
    run = day2(fleet, "backup_now", "--limit", "d2a,d2b")
    assert run.rc == 0, run.out[-4000:]
    assert {host: len(snapshots(host)) for host in VMS} == {host: n + 1 for host, n in before.items()}
    assert checks("d2a")["d2a-backup-www"]["status"] == "up"
    assert checks("d2b")["d2b-backup-alice"]["status"] == "up"
    assert "d2a" in run.out and "www" in run.out and "ok" in run.out
    one = day2(fleet, "backup_now", "--limit", "d2a", "-e", "cloud_backup_backup_now_source=www")
    assert one.rc == 0, one.out[-3000:]
    assert len(snapshots("d2a")) == before["d2a"] + 2
    missing = day2(fleet, "backup_now", "--limit", "d2a", "-e", "cloud_backup_backup_now_source=nosuch")
    assert missing.rc != 0 and "no source named nosuch" in missing.out


def test_status_ok_then_late_when_a_check_is_down(fleet):
    run, rows = status(fleet)
    assert run.rc == 0, run.out[-4000:]
    assert {h: r["verdict"] for h, r in rows.items()} == {"d2a": "ok", "d2b": "ok"}
    a = rows["d2a"]
    assert a["snapshots"] == len(snapshots("d2a")) and a["last_snapshot_id"] == snapshots("d2a")[-1]["short_id"]
    assert a["destination"] == "s3:http://172.31.240.10:5000/%s/%s" % (BUCKET, fleet["prefixes"]["d2a"])
    assert a["data_bytes"] > 300000 and a["stored_bytes"] > 0 and a["age_seconds"] < 3600
    assert any(c["job"] == "backup-www" and c["status"] == "up" for c in a["checks"]), a["checks"]
    assert a["token"] == "n/a"
    page = (fleet["tmp"] / "status.html").read_text()
    assert page.startswith("<!doctype html>") and "<td>d2a</td>" in page
    assert "<script" not in page and "<link" not in page and "src=" not in page  # self-contained
    # a failing run of the backup job (exit status 1 pinged to its check): the check goes down
    hc_api("/ping/%s/1" % checks("d2a")["d2a-backup-www"]["uuid"], method="POST")
    assert checks("d2a")["d2a-backup-www"]["status"] == "down"
    late, rows = status(fleet)
    assert late.rc != 0
    assert rows["d2a"]["verdict"] == "late" and rows["d2b"]["verdict"] == "ok"
    assert "check backup-www is down" in rows["d2a"]["reasons"]
    assert "d2a: late" in late.out
    # the next successful run brings it back
    assert day2(fleet, "backup_now", "--limit", "d2a").rc == 0
    again, rows = status(fleet)
    assert again.rc == 0 and rows["d2a"]["verdict"] == "ok", again.out[-3000:]


def test_enroll_and_renew_skip_hosts_without_an_account(fleet):
    """d2a has cloud_backup_oidc_password but no cloud_backup_oidc_account: like the role, enroll, renew and status
    take that as "no account" (n/a), never as an account named cloud-backup to enroll."""
    for name in ("enroll", "renew"):
        run = day2(fleet, name, "--limit", "d2a,d2b", "-e", "cloud_backup_enroll_deadline=30")
        assert run.rc == 0, run.out[-4000:]
        assert "Nothing to approve" in run.out
        for host in ("d2a", "d2b"):
            assert re.search(r'"%s\s+n/a\s+no oidc-agent account' % host, run.out), run.out[-3000:]
        assert run.changed("d2a") == 0 and run.changed("d2b") == 0
    dummy, rows = status(fleet)
    assert rows["d2a"]["token"] == "n/a" and rows["d2a"]["token_days_left"] is None
    assert not [r for r in rows["d2a"]["reasons"] if "token" in r]


def test_variables_of_earlier_versions_are_refused(fleet):
    before = len(snapshots("d2a"))
    run = day2(fleet, "backup_now", "--limit", "d2a", "-e", "backup_now_timeout=60")
    assert run.rc != 0
    assert "backup_now_timeout is no longer used: set cloud_backup_backup_now_timeout" in run.out, run.out[-3000:]
    assert len(snapshots("d2a")) == before


def test_restore_on_another_vm_is_identical_and_never_overwrites(fleet):
    target = "/srv/restored-www"
    vm_exec(VMS["d2b"], "rm -rf %s" % target)
    args = ("-e", "cloud_backup_restore_from=d2a", "-e", "restore_to=d2b", "-e", "cloud_backup_restore_source=www",
            "-e", "cloud_backup_restore_target=%s" % target)
    run = day2(fleet, "restore", *args)
    assert run.rc == 0, run.out[-4000:]
    assert "verified" in run.out
    assert checksums(VMS["d2b"], target) == checksums(VMS["d2a"], "/srv/www")
    assert "photo.jpg" in checksums(VMS["d2b"], target)
    # a second restore into the now non-empty directory is refused and changes nothing
    vm_exec(VMS["d2b"], "echo local edit > %s/index.html" % target)
    refused = day2(fleet, "restore", *args)
    assert refused.rc != 0 and "is not empty" in refused.out and "nothing was restored" in refused.out
    assert vm_exec(VMS["d2b"], "cat %s/index.html" % target).stdout == "local edit\n"
    # unless asked to
    forced = day2(fleet, "restore", *args, "-e", "cloud_backup_restore_overwrite=true")
    assert forced.rc == 0, forced.out[-3000:]
    assert checksums(VMS["d2b"], target) == checksums(VMS["d2a"], "/srv/www")
    # one directory of a snapshot chosen by id, on the host itself
    snap = snapshots("d2a")[-1]
    vm_exec(VMS["d2a"], "rm -rf /srv/restored-img")
    by_id = day2(fleet, "restore", "-e", "cloud_backup_restore_from=d2a", "-e", "cloud_backup_restore_snapshot=%s" % snap["short_id"],
                 "-e", "cloud_backup_restore_path=/backup/www/img", "-e", "cloud_backup_restore_target=/srv/restored-img")
    assert by_id.rc == 0, by_id.out[-3000:]
    assert checksums(VMS["d2a"], "/srv/restored-img") == checksums(VMS["d2a"], "/srv/www/img")
    assert "index.html" not in checksums(VMS["d2a"], "/srv/restored-img")
    # the lab passwords never show
    assert "lab restic password" not in run.out + forced.out and "lab-secret-key" not in run.out + forced.out


def drill_record(host):
    return json.loads(vm_exec(VMS[host], "cat /opt/cloud-backup/drill.json").stdout)


def test_drill_passes_then_detects_a_tampered_repository(fleet):
    run = day2(fleet, "restore_drill", "--limit", "d2a")
    assert run.rc == 0, run.out[-4000:]
    passed = drill_record("d2a")
    assert passed["last_result"] == "passed" and passed["files"] >= 2 and passed["last_passed"]
    assert checks("d2a")["d2a-restore-drill"]["status"] == "up"
    assert "cloud-backup" not in checks("d2a")["d2a-restore-drill"]["tags"].split()  # the rollout never pauses it
    dummy, rows = status(fleet)
    assert rows["d2a"]["drill_last_passed"] == passed["last_passed"]
    # flip bytes in every pack of d2a's repository in S3
    client = s3()
    packs = [k for k in s3_objects(fleet["prefixes"]["d2a"]) if "/data/" in k]
    assert packs
    for key in packs:
        body = bytearray(client.get_object(Bucket=BUCKET, Key=key)["Body"].read())
        for i in range(0, len(body), 512):
            body[i] ^= 0xFF
        client.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
    tampered = day2(fleet, "restore_drill", "--limit", "d2a")
    assert tampered.rc != 0
    assert "restore drill failed" in tampered.out
    failed = drill_record("d2a")
    assert failed["last_result"] == "failed" and failed["errors"]
    assert failed["last_passed"] == passed["last_passed"]
    assert checks("d2a")["d2a-restore-drill"]["status"] == "down"
    late, rows = status(fleet)
    assert late.rc != 0 and rows["d2a"]["verdict"] == "failing"


def test_decommission_keeps_the_data_and_a_later_restore_works(fleet):
    prefix = fleet["prefixes"]["d2b"]
    kept = s3_objects(prefix)
    assert [k for k in kept if "/snapshots/" in k]
    # check mode predicts and changes nothing
    dry = day2(fleet, "decommission", "-e", "decommission_hosts=d2b", "--check")
    assert dry.rc == 0 and dry.changed("d2b") > 0, dry.out[-3000:]
    assert "cloud-backup" in vm_exec(VMS["d2b"], "docker ps --format '{{.Names}}'").stdout
    assert {c["status"] for c in checks("d2b").values()} != {"paused"}
    run = day2(fleet, "decommission", "-e", "decommission_hosts=d2b")
    assert run.rc == 0, run.out[-4000:]
    vm = VMS["d2b"]
    assert vm_exec(vm, "docker ps -aq").stdout.strip() == ""
    assert vm_exec(vm, "docker volume ls -q").stdout.strip() == ""
    assert vm_exec(vm, "test -e /opt/cloud-backup || test -e /etc/cron.d/cloud-backup", check=False).returncode != 0
    assert {c["status"] for c in checks("d2b").values()} == {"paused"}
    assert s3_objects(prefix) == kept
    assert "kept with" in run.out
    dummy, rows = status(fleet)
    assert rows["d2b"]["verdict"] == "failing" and "the backup container is not running" in rows["d2b"]["reasons"]
    # the host is gone, its data is not: restore it onto d2a
    target = "/srv/restored-alice"
    vm_exec(VMS["d2a"], "rm -rf %s" % target)
    restore = day2(fleet, "restore", "-e", "cloud_backup_restore_from=d2b", "-e", "restore_to=d2a",
                   "-e", "cloud_backup_restore_source=alice", "-e", "cloud_backup_restore_target=%s" % target)
    assert restore.rc == 0, restore.out[-4000:]
    assert checksums(VMS["d2a"], target) == checksums(vm, "/home/alice")
    # a second run has nothing left to do
    again = day2(fleet, "decommission", "-e", "decommission_hosts=d2b")
    assert again.rc == 0 and again.changed("d2b") == 0, again.out[-3000:]


def test_purge_removes_only_that_hosts_snapshots(fleet):
    other = s3_objects(fleet["prefixes"]["d2a"])
    mine = s3_objects(fleet["prefixes"]["d2b"])
    assert [k for k in mine if "/snapshots/" in k] and [k for k in mine if "/data/" in k]
    run = day2(fleet, "decommission", "-e", "decommission_hosts=d2b", "-e", "cloud_backup_decommission_purge=true",
               "-e", "cloud_backup_decommission_checks=absent")
    assert run.rc == 0, run.out[-4000:]
    assert "purged" in run.out
    assert checks("d2b") == {} and "d2a-backup-www" in checks("d2a")
    left = s3_objects(fleet["prefixes"]["d2b"])
    assert not [k for k in left if "/snapshots/" in k]
    assert not [k for k in left if "/data/" in k]  # pruned
    assert [k for k in left if k.endswith("/config")]  # the repository itself stays
    assert s3_objects(fleet["prefixes"]["d2a"]) == other  # another host's repository is untouched
