"""Decommission reads the repository while the host's credentials still exist (REVIEW.md, defect 1), on three VMs
of their own:

- an infn primary (the lab's stand-in for INFN Cloud object storage, moto answering S3 and STS) whose S3 keys come
  from an oidc-agent account enrolled at the lab's OpenID Connect provider (tests/lab/test_41_oidc_infn.py): with
  purge, its snapshots are listed and purged through the running stack, THEN its account is revoked and the stack
  removed;
- an sftp primary (host key verified: the known_hosts file lives only with the stack): a stopped stack fails the
  decommission with the reason, before anything is removed; through the running stack its snapshots are read and
  kept; a second run changes nothing; a purge once the stack is gone is refused;
- an s3 primary: a wrong password fails before anything is removed (and is never shown); decommissioned, then the
  VM itself removed, its data is restored onto another VM with identical files;
- an infn primary whose account was never enrolled (no repository could be created): decommissioned all the same."""

import base64
import hashlib
import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import boto3
import pytest
import yaml

from labkit import REPO, docker, hc_api, ip_of, lab_vms, playbook, vm_exec
from test_41_oidc_infn import Provider, lab_address

RUN = uuid.uuid4().hex[:6]
HOSTS = {"infn": "d51i%s" % RUN, "sftp": "d51s%s" % RUN, "s3": "d51o%s" % RUN, "fresh": "d51n%s" % RUN}
VMS = {kind: "infn-lab-d51-%s-%s" % (kind, RUN) for kind in HOSTS}
STS = "infn-lab-d51-sts-%s" % RUN
SFTP = "infn-lab-d51-sftpd-%s" % RUN
PASSWORD = "oidc-pw-%s" % uuid.uuid4().hex
CA = "/etc/cloud-backup/destinations/oidc-ca.pem"
CODE_ROW = re.compile(r'^\s*"(\S+)\s+([A-Z0-9]{4}-[A-Z0-9]{4})\s+(https://\S+?)",?\s*$')
BIN = os.path.dirname(sys.executable)
HC = "http://127.0.0.1:58000"
API_KEY = "hcw_labfleetreadwritekey00000001"
LAB_S3 = dict(endpoint_url="http://127.0.0.1:59000", aws_access_key_id="lab-access-key",
              aws_secret_access_key="lab-secret-key", region_name="us-east-1")


def checks(host):
    return {c["name"]: c for c in hc_api("/api/v3/checks/?tag=host-%s" % host)["checks"]}


def s3_keys(client, bucket, prefix):
    keys, token = [], None
    while True:
        kwargs = dict(Bucket=bucket, Prefix=prefix + "/")
        if token:
            kwargs["ContinuationToken"] = token
        page = client.list_objects_v2(**kwargs)
        keys += [o["Key"] for o in page.get("Contents", [])]
        if not page.get("IsTruncated"):
            return keys
        token = page["NextContinuationToken"]


def snapshots(kind):
    out = vm_exec(VMS[kind], "docker exec -u user cloud-backup restic snapshots --json --host %s" % HOSTS[kind]).stdout
    return json.loads(out)


def checksums(container, directory):
    return vm_exec(container, "cd %s && find . -type f | sort | xargs sha256sum" % directory).stdout


def stack_left(kind):
    """What a decommission removes, as found on the VM: containers, volumes, the project directory, the cron file."""
    return vm_exec(VMS[kind], "docker ps -aq; docker volume ls -q; ls -d /opt/cloud-backup /etc/cron.d/cloud-backup"
                              " 2>/dev/null; true").stdout.split()


def day2(lab, name, *args):
    return playbook("-i", str(lab["inventory"]), *args, playbook_path="infn_cloud.backup.%s" % name)


def enroll(lab):
    """enroll.yml for the infn host; the scripted user approves the code of the playbook's own table."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(REPO, "inventories", "lab"), "-i",
            str(lab["inventory"]), "playbooks/enroll.yml", "--limit", HOSTS["infn"],
            "-e", "cloud_backup_enroll_deadline=240 cloud_backup_enroll_poll_seconds=1"]
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    out = []
    for line in proc.stdout:
        out.append(line)
        match = CODE_ROW.match(line)
        if match and match.group(1) == HOSTS["infn"]:
            lab["provider"].approve(match.group(2))
    assert proc.wait(timeout=600) == 0, "".join(out)[-5000:]


def account():
    """The infn host's oidc-agent account (client and refresh token), read test-side with its password."""
    show = vm_exec(VMS["infn"], "docker exec -u user -e OIDC_ENCRYPTION_PW=%s cloud-backup oidc-gen -p cloud-backup"
                                " --pw-env </dev/null" % PASSWORD)
    return json.loads(show.stdout[show.stdout.index("{"):show.stdout.rindex("}") + 1])


def refresh(provider, doc):
    """A refresh grant as the account's client sends it: (HTTP status, JSON body)."""
    body = urllib.parse.urlencode({"grant_type": "refresh_token", "refresh_token": doc["refresh_token"]}).encode()
    auth = base64.b64encode(("%s:%s" % (urllib.parse.quote(doc["client_id"], safe=""),
                                        urllib.parse.quote(doc["client_secret"], safe=""))).encode()).decode()
    req = urllib.request.Request(provider.issuer + "token", data=body, headers={"Authorization": "Basic " + auth})
    try:
        with urllib.request.urlopen(req, context=provider.ssl, timeout=10) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab_vms()  # the lab network, S3 and Healthchecks must be up
    tmp = tmp_path_factory.mktemp("d51")
    provider = None
    try:
        res = subprocess.run(["bash", "-c", "source lab/lib.sh && build_image infn-lab/sftp lab/images/sftp"], cwd=REPO,
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-2000:]
        starts = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", vm, "with-image"], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE) for vm in VMS.values()]
        os.chmod(tmp, 0o777)
        docker("run", "--rm", "-v", "%s:/k" % tmp, "--entrypoint", "ssh-keygen", "infn-cloud/cloud-backup:latest",
               "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", "/k/id")
        docker("run", "-d", "--name", STS, "--network", "infn-lab", "--label", "infn-lab=1", "-e", "LAB_STS_DURATION=900",
               "-v", "%s/lab/sts:/opt/sts:ro" % REPO, "infn-lab/s3:latest", "python3", "/opt/sts/moto_sts.py", "5000")
        docker("run", "-d", "--name", SFTP, "--network", "infn-lab", "--label", "infn-lab=1",
               "-v", "%s/id.pub:/etc/ssh/authorized_keys/lab:ro" % tmp, "infn-lab/sftp:latest")
        here, sts_ip = lab_address(STS)
        sftp_ip = ip_of(SFTP)
        provider = Provider(tmp / "oidc", here)
        for _ in range(60):
            try:
                urllib.request.urlopen(urllib.request.Request("http://%s:5000/infn-backups" % sts_ip, method="PUT"),
                                       timeout=10)
                break
            except OSError:
                time.sleep(0.5)
        for proc in starts:
            assert proc.wait(timeout=600) == 0, proc.stderr.read()
        host_keys = docker("exec", SFTP, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout.splitlines()
        for kind, vm in VMS.items():
            vm_exec(vm, "mkdir -p /srv/data/sub && seq 1 40000 > /srv/data/numbers.txt && head -c 200000 /dev/urandom"
                        " > /srv/data/sub/random.bin && echo %s > /srv/data/sub/kind.txt" % kind)
        for vm in (VMS["infn"], VMS["fresh"]):
            vm_exec(vm, "mkdir -p /opt/cloud-backup/destinations && cat > /opt/cloud-backup/destinations/oidc-ca.pem"
                        " <<'EOF'\n%sEOF\nchmod 0644 /opt/cloud-backup/destinations/oidc-ca.pem" % open(provider.ca).read())
        source = [{"name": "data", "path": "/srv/data"}]
        infn = {"ansible_host": VMS["fresh"], "cloud_backup_sources": source,
                "cloud_backup_destination": {"type": "infn", "endpoint": "http://%s:5000" % sts_ip,
                                             "bucket": "infn-backups", "role_name": "lab-backup", "audience": "lab-s3"},
                "cloud_backup_oidc_account": "cloud-backup", "cloud_backup_oidc_password": PASSWORD,
                "cloud_backup_oidc_issuer": provider.issuer, "cloud_backup_oidc_ca_file": CA}
        hosts = {
            HOSTS["fresh"]: infn,
            HOSTS["infn"]: dict(infn, ansible_host=VMS["infn"]),
            HOSTS["sftp"]: {
                "ansible_host": VMS["sftp"], "cloud_backup_sources": source,
                "cloud_backup_destination": {
                    "type": "sftp", "host": sftp_ip, "user": "lab", "path": "/srv/sftp/%s" % HOSTS["sftp"],
                    "private_key": (tmp / "id").read_text(),
                    "known_hosts": "\n".join("%s %s" % (sftp_ip, " ".join(line.split()[:2])) for line in host_keys)}},
            HOSTS["s3"]: {
                "ansible_host": VMS["s3"], "cloud_backup_sources": source,
                "cloud_backup_destination": {"type": "s3", "endpoint": "http://172.31.240.10:5000", "bucket": "lab-backups",
                                             "path": "d51-%s" % RUN, "access_key_id": "lab-access-key",
                                             "secret_access_key": "lab-secret-key", "region": "us-east-1"}},
        }
        inventory = tmp / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"cloud_backup": {"hosts": hosts}}}}))
        lab = {"provider": provider, "inventory": inventory, "sts_ip": sts_ip}
        limit = ",".join(HOSTS.values())
        rollout = playbook("-i", str(inventory), "--limit", limit)
        assert rollout.rc == 0, rollout.out[-5000:]
        assert "is not enrolled yet" in rollout.out  # the infn host waits for its account
        enroll(lab)
        rollout = playbook("-i", str(inventory), "--limit", HOSTS["infn"])
        assert rollout.rc == 0 and "is not enrolled yet" not in rollout.out, rollout.out[-5000:]
        backup = day2(lab, "backup_now", "--limit", ",".join(HOSTS[k] for k in ("infn", "sftp", "s3")))
        assert backup.rc == 0, backup.out[-5000:]
        yield lab
    finally:
        docker("rm", "-f", STS, SFTP, *VMS.values(), check=False)
        if provider:
            provider.stop()
        client = boto3.client("s3", **LAB_S3)
        for key in s3_keys(client, "lab-backups", "d51-%s" % RUN):
            client.delete_object(Bucket="lab-backups", Key=key)
        for host in HOSTS.values():
            for check in checks(host).values():
                hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")


def test_infn_purge_reads_and_purges_through_the_stack_then_revokes_and_removes(lab):
    taken = snapshots("infn")
    assert taken
    sts = boto3.client("s3", endpoint_url="http://%s:5000" % lab["sts_ip"], aws_access_key_id="test",
                       aws_secret_access_key="test", region_name="us-east-1")
    prefix = HOSTS["infn"]
    assert [k for k in s3_keys(sts, "infn-backups", prefix) if "/snapshots/" in k]
    doc = account()
    assert refresh(lab["provider"], doc)[0] == 200
    run = day2(lab, "decommission", "-e", "decommission_hosts=%s" % HOSTS["infn"],
               "-e", "cloud_backup_decommission_purge=true")
    assert run.rc == 0, run.out[-5000:]
    assert "purged: %d snapshot(s) of %s forgotten and pruned" % (len(taken), HOSTS["infn"]) in run.out, run.out[-3000:]
    # the repository was read and purged through the stack, while the account existed; only then the account
    # was revoked and the stack removed
    order = [run.out.index("TASK [infn_cloud.backup.cloud_backup : %s" % name) for name in (
        "List the host's snapshots (in the backup container)",
        "Forget every snapshot of the host by id and prune (in the backup container)",
        "Count the host's snapshots left (in the backup container)",
        "Remove the oidc-agent account (revokes its refresh token at the provider)",
        "Stop and remove the stack")]
    assert order == sorted(order), order
    assert "oidc-agent account cloud-backup removed and its refresh token revoked" in run.out
    left = s3_keys(sts, "infn-backups", prefix)
    assert not [k for k in left if "/snapshots/" in k] and not [k for k in left if "/data/" in k], left
    assert [k for k in left if k.endswith("/config")]  # the repository itself stays
    status, body = refresh(lab["provider"], doc)
    assert status == 400 and body["error"] == "invalid_grant", body
    assert stack_left("infn") == []
    assert {c["status"] for c in checks(HOSTS["infn"]).values()} == {"paused"}
    assert PASSWORD not in run.out and "lab restic password" not in run.out


def test_sftp_needs_its_running_stack_and_is_read_through_it(lab):
    host, vm = HOSTS["sftp"], VMS["sftp"]
    taken = snapshots("sftp")
    assert taken
    vm_exec(vm, "cd /opt/cloud-backup && docker compose stop")
    before = stack_left("sftp")
    refused = day2(lab, "decommission", "-e", "decommission_hosts=%s" % host)
    assert refused.rc != 0
    assert "nothing was removed" in refused.out and "which is not running" in refused.out, refused.out[-3000:]
    assert "type sftp" in refused.out
    assert stack_left("sftp") == before and "/opt/cloud-backup" in before
    assert "paused" not in {c["status"] for c in checks(host).values()}
    vm_exec(vm, "cd /opt/cloud-backup && docker compose start")
    run = day2(lab, "decommission", "-e", "decommission_hosts=%s" % host)
    assert run.rc == 0, run.out[-5000:]
    assert "kept with %d snapshot(s) of %s (type sftp: only a backup stack" % (len(taken), host) in run.out, run.out[-3000:]
    assert stack_left("sftp") == []
    kept = docker("exec", SFTP, "ls", "/srv/sftp/%s/snapshots" % host).stdout.split()
    assert len(kept) == len(taken)
    again = day2(lab, "decommission", "-e", "decommission_hosts=%s" % host)
    assert again.rc == 0 and again.changed(host) == 0, again.out[-3000:]
    assert "not read: the stack is gone" in again.out
    purge = day2(lab, "decommission", "-e", "decommission_hosts=%s" % host, "-e", "cloud_backup_decommission_purge=true")
    assert purge.rc != 0 and "cannot be purged" in purge.out, purge.out[-3000:]
    assert docker("exec", SFTP, "ls", "/srv/sftp/%s/snapshots" % host).stdout.split() == kept


def test_wrong_password_fails_before_anything_is_removed(lab):
    wrong = "wrong-restic-pw-%s" % RUN
    before = stack_left("s3")
    run = day2(lab, "decommission", "-e", "decommission_hosts=%s" % HOSTS["s3"],
               "-e", "cloud_backup_restic_password=%s" % wrong)
    assert run.rc != 0
    assert "nothing was removed" in run.out and "wrong password" in run.out, run.out[-3000:]
    assert wrong not in run.out.replace("cloud_backup_restic_password=%s" % wrong, "")
    assert stack_left("s3") == before


def test_s3_restore_from_a_decommissioned_host_that_is_gone(lab):
    host = HOSTS["s3"]
    original = checksums(VMS["s3"], "/srv/data")
    taken = snapshots("s3")
    run = day2(lab, "decommission", "-e", "decommission_hosts=%s" % host)
    assert run.rc == 0, run.out[-5000:]
    assert ("kept with %d snapshot(s) of %s (restore with infn_cloud.backup.restore -e cloud_backup_restore_from=%s)"
            % (len(taken), host, host)) in run.out, run.out[-3000:]
    docker("rm", "-f", VMS["s3"])  # the instance is gone
    target = "/srv/restored-%s" % host
    restore = day2(lab, "restore", "-e", "cloud_backup_restore_from=%s" % host, "-e", "restore_to=%s" % HOSTS["sftp"],
                   "-e", "cloud_backup_restore_source=data", "-e", "cloud_backup_restore_target=%s" % target)
    assert restore.rc == 0, restore.out[-5000:]
    assert "verified" in restore.out
    assert re.search(r"^%s\s+: ok=\d+\s+changed=0\s+unreachable=0\s+failed=0" % host, restore.out, re.M), restore.out[-2000:]
    assert checksums(VMS["sftp"], target) == original
    assert hashlib.sha256(b"s3\n").hexdigest() in original  # the s3 host's own files
    assert "lab-secret-key" not in restore.out and "lab restic password" not in restore.out


def test_infn_host_never_enrolled_is_decommissioned_all_the_same(lab):
    host = HOSTS["fresh"]
    run = day2(lab, "decommission", "-e", "decommission_hosts=%s" % host, "-e", "cloud_backup_decommission_purge=true")
    assert run.rc == 0, run.out[-5000:]
    assert "untouched: the oidc-agent account was never enrolled, so no repository was created" in run.out, run.out[-3000:]
    assert "oidc-agent account cloud-backup not enrolled" in run.out
    assert stack_left("fresh") == []
