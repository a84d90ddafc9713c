"""Every destination type end to end on a fresh lab VM rolled out by the role, against real servers:

- primary: type infn, the lab's stand-in for INFN Cloud object storage (moto answering S3 and STS on one
  endpoint, lab/sts/moto_sts.py, with a short credential lifetime and a record of every STS exchange and of
  the key that signed each request); rclone's stock env_auth/web-identity gets the temporary keys;
- secondaries, each a `copy` job of the role: sftp (Debian's openssh-server, key auth, host key verified),
  rest (rclone serve restic with basic auth), local (a VM directory), s3 (static keys), rclone (options).

Jobs run as ofelia runs them (docker exec, user, CLOUD_BACKUP_JOB) and ping the lab's Healthchecks."""

import json
import os
import subprocess
import time
import urllib.request
import uuid

import pytest
import yaml

from labkit import REPO, docker, hc_pings, ip_of, lab_vms, playbook, run_job, vm_exec

RUN = uuid.uuid4().hex[:6]
HOST = "d40%s" % RUN
VM = "infn-lab-d40-%s" % RUN
STS = "infn-lab-d40-sts-%s" % RUN
SFTP = "infn-lab-d40-sftp-%s" % RUN
REST = "infn-lab-d40-rest-%s" % RUN
LIFETIME = 45  # seconds of the temporary S3 keys in the lab (INFN: 900)
REST_PASSWORD = "lab-rest-server-pw-%s" % RUN
SECONDARIES = ["sftp", "rest", "usb", "s3", "rcl"]


def wait_for(what, probe, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if probe():
            return
        time.sleep(0.5)
    raise AssertionError("%s did not come up within %d s" % (what, seconds))


def http(url, method="GET"):
    try:
        with urllib.request.urlopen(urllib.request.Request(url, method=method), timeout=10) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


def sts_events(lab):
    return json.loads(http("http://%s:5000/_lab/events" % lab["sts_ip"])[1])


def pings(check):
    return hc_pings("%s-%s" % (HOST, check))


def job(name, env=None, command=None):
    """A scheduled job run as the deployed scheduler runs it (labkit.run_job); COMMAND replaces its own."""
    return run_job(VM, name, env=env, command=command)


def hand(command, env=""):
    """A command of the image run by hand (not a scheduled job: no Healthchecks ping)."""
    return vm_exec(VM, "docker exec -u user %s cloud-backup %s" % (env, command), check=False)


def checksums(path):
    script = "cd %s && find . -type f -print0 | sort -z | xargs -0 sha256sum" % path
    return vm_exec(VM, "docker exec -u user cloud-backup sh -c '%s'" % script).stdout


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab_vms()  # the lab network, S3 and Healthchecks must be up
    tmp = tmp_path_factory.mktemp("d40")
    made = [VM, STS, SFTP, REST]
    try:
        res = subprocess.run(["bash", "-c", "source lab/lib.sh && build_image infn-lab/sftp lab/images/sftp"], cwd=REPO,
                             capture_output=True, text=True, timeout=900)
        assert res.returncode == 0, res.stderr[-2000:]
        os.chmod(tmp, 0o777)
        docker("run", "--rm", "-v", "%s:/k" % tmp, "--entrypoint", "ssh-keygen", "infn-cloud/cloud-backup:latest",
               "-q", "-t", "ed25519", "-N", "", "-C", "lab", "-f", "/k/id")
        docker("run", "-d", "--name", STS, "--network", "infn-lab", "--label", "infn-lab=1", "-e",
               "LAB_STS_DURATION=%d" % LIFETIME, "-v", "%s/lab/sts:/opt/sts:ro" % REPO, "infn-lab/s3:latest",
               "python3", "/opt/sts/moto_sts.py", "5000")
        docker("run", "-d", "--name", SFTP, "--network", "infn-lab", "--label", "infn-lab=1",
               "-v", "%s/id.pub:/etc/ssh/authorized_keys/lab:ro" % tmp, "infn-lab/sftp:latest")
        docker("run", "-d", "--name", REST, "--network", "infn-lab", "--label", "infn-lab=1", "-e", "RCLONE_USER=lab",
               "-e", "RCLONE_PASS=" + REST_PASSWORD, "--entrypoint", "rclone", "infn-cloud/cloud-backup:latest",
               "serve", "restic", "/home/user/rest", "--addr", ":8000")
        sts_ip, sftp_ip, rest_ip = ip_of(STS), ip_of(SFTP), ip_of(REST)
        wait_for("moto (STS)", lambda: http("http://%s:5000/_lab/events" % sts_ip)[0] == 200)
        for bucket in ("infn-backups", "copies"):
            assert http("http://%s:5000/%s" % (sts_ip, bucket), "PUT")[0] == 200
        # every host key of the server (the SSH client may negotiate any of their types), as ssh-keyscan gives them
        host_keys = docker("exec", SFTP, "sh", "-c", "cat /etc/ssh/ssh_host_*_key.pub").stdout.splitlines()
        res = subprocess.run(["bash", "lab/lab.sh", "extra-vm", VM, "with-image"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        vm_exec(VM, "mkdir -p /srv/data/sub /opt/cloud-backup/destinations && head -c 3000000 /dev/urandom > /srv/data/big.bin"
                    " && for i in $(seq 1 30); do seq 1 $((i * 300)) > /srv/data/sub/f$i.txt; done"
                    " && echo 'héllo wörld' > /srv/data/unicode.txt"
                    # the web-identity token (a JWT-shaped lab token) kept by the lab, not by oidc-agent
                    " && printf 'eyJhbGciOiJub25lIn0.eyJzdWIiOiJsYWIifQ.' > /opt/cloud-backup/destinations/lab-token"
                    " && chmod 0644 /opt/cloud-backup/destinations/lab-token")
        key = (tmp / "id").read_text()
        s3_static = {"endpoint": "http://%s:5000" % sts_ip, "bucket": "copies", "access_key_id": "lab-copy-key",
                     "secret_access_key": "lab-copy-secret", "region": "us-east-1"}
        host_vars = {
            "ansible_host": VM,
            "cloud_backup_sources": [{"name": "data", "path": "/srv/data"}],
            "cloud_backup_destination": {
                "type": "infn", "endpoint": "http://%s:5000" % sts_ip, "bucket": "infn-backups", "role_name": "lab-backup",
                "audience": "lab-s3", "token_file": "/etc/cloud-backup/destinations/lab-token"},
            "cloud_backup_secondary_destinations": [
                {"name": "sftp", "type": "sftp", "host": sftp_ip, "user": "lab", "path": "/srv/sftp/%s" % HOST,
                 "private_key": key, "known_hosts": "\n".join("%s %s" % (sftp_ip, " ".join(line.split()[:2])) for line in host_keys)},
                {"name": "rest", "type": "rest", "url": "http://%s:8000/%s/" % (rest_ip, HOST), "username": "lab",
                 "password": REST_PASSWORD},
                {"name": "usb", "type": "local", "path": "/srv/copy-usb"},
                dict(s3_static, name="s3", type="s3", path="%s-s3" % HOST),
                {"name": "rcl", "type": "rclone", "path": "copies/%s-rclone" % HOST,
                 "options": {"type": "s3", "provider": "Other", "endpoint": "http://%s:5000" % sts_ip,
                             "access_key_id": "lab-rclone-key", "secret_access_key": "lab-rclone-secret"}},
            ],
            "cloud_backup_restic_pack_size": 8,
            "cloud_backup_restic_read_concurrency": 4,
        }
        inventory = tmp / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"cloud_backup": {"hosts": {HOST: host_vars}}}}}))
        run = playbook("-i", str(inventory), "--limit", HOST)
        assert run.rc == 0, run.out[-6000:]
        for secret in (REST_PASSWORD, "lab-copy-secret", "lab-rclone-secret", key.splitlines()[1]):
            assert secret not in run.out
        yield {"sts_ip": sts_ip, "inventory": inventory, "started": time.time(),
               "server_pid": vm_exec(VM, "docker exec cloud-backup pgrep -f 'rclone serve restic'").stdout.strip()}
    finally:
        docker("rm", "-f", *made, check=False)


def test_env_and_jobs_of_every_destination(lab):
    env = vm_exec(VM, "stat -c %a /opt/cloud-backup/.env && cat /opt/cloud-backup/.env").stdout
    assert env.startswith("600\n")
    assert "RCLONE_CONFIG_DEST_ENV_AUTH='true'" in env and "AWS_ROLE_ARN='arn:aws:iam:::role/lab-backup'" in env
    assert "RESTIC_PACK_SIZE='8'" in env and "RESTIC_READ_CONCURRENCY='4'" in env
    config = vm_exec(VM, "cat /opt/cloud-backup/ofelia/config.ini").stdout
    for name in SECONDARIES:
        assert '[job-exec "copy-%s"]' % name in config and "command = copy %s --keep-within 1m --prune\n" % name in config
    assert REST_PASSWORD not in config


def test_backup_then_restore_from_every_destination_with_identical_checksums(lab):
    res = job("backup-data")
    assert res.returncode == 0, res.stdout + res.stderr
    for name in SECONDARIES:
        res = job("copy-" + name)
        assert res.returncode == 0, (name, res.stdout[-3000:] + res.stderr[-3000:])
        assert [p["type"] for p in pings("copy-" + name)][-2:] == ["start", "success"], name
    original = checksums("/backup/data")
    assert original.count("\n") == 32
    for name in ["primary"] + SECONDARIES:
        env = "" if name == "primary" else "-e CLOUD_BACKUP_DESTINATION=" + name
        target = "/home/user/restore-%s" % name
        res = hand("restore latest --tag data --target %s" % target, env=env)
        assert res.returncode == 0, (name, res.stdout[-2000:] + res.stderr[-2000:])
        assert checksums(target + "/backup/data") == original, name
    # restoring again over the same files is refused file by file: nothing is overwritten unless asked
    vm_exec(VM, "docker exec -u user cloud-backup sh -c 'echo local edit > /home/user/restore-primary/backup/data/unicode.txt'")
    res = hand("restore latest --target /home/user/restore-primary")
    assert res.returncode == 0, res.stderr
    assert "local edit" in vm_exec(VM, "docker exec cloud-backup cat /home/user/restore-primary/backup/data/unicode.txt").stdout
    backup_pings = pings("backup-data")
    assert [p["type"] for p in backup_pings][-2:] == ["start", "success"]
    assert backup_pings[-1]["rid"] == backup_pings[-2]["rid"] and backup_pings[-1]["rid"]


def test_incremental_run_of_unchanged_data_adds_nothing(lab):
    res = job("backup-data")
    assert res.returncode == 0, res.stderr
    assert "Added to the repository: 0 B" in res.stdout, res.stdout[-2000:]


def test_sts_credentials_are_refreshed_by_the_long_running_server(lab):
    from datetime import datetime

    def expiry(event):
        return datetime.fromisoformat(event["expiration"].replace("Z", "+00:00")).timestamp()

    # Every key issued so far (to the server, and to the jobs' own probes) has expired: only the REST server
    # talks to S3 from here on (plain restic through it, no job probe), so a new exchange is its refresh.
    last = [e for e in sts_events(lab) if e["kind"] == "sts"][-1]
    time.sleep(max(0, expiry(last) + 3 - time.time()))
    mark = time.time()
    for _ in range(2):
        res = vm_exec(VM, "docker exec -u user cloud-backup restic snapshots --tag data", check=False)
        assert res.returncode == 0, res.stderr
    events = sts_events(lab)
    exchanges = [e for e in events if e["kind"] == "sts"]
    keys = {e["akid"]: expiry(e) for e in exchanges}
    new = [e for e in exchanges if e["time"] > mark]
    assert len(new) == 1, new  # STS called again by the server, once, for new temporary keys
    assert new[0]["role_arn"] == "arn:aws:iam:::role/lab-backup"
    after = [e for e in events if e["kind"] == "request" and e["time"] > mark]
    assert after and {e["akid"] for e in after} == {new[0]["akid"]}  # the new keys are in use
    late = [e for e in events if e["kind"] == "request" and e["akid"] in keys and e["time"] > keys[e["akid"]] + 1]
    assert not late, "requests signed with expired keys: %s" % late[:3]
    # one and the same server process all along, longer than one credential lifetime
    assert vm_exec(VM, "docker exec cloud-backup pgrep -f 'rclone serve restic'").stdout.strip() == lab["server_pid"]
    assert time.time() - exchanges[0]["time"] > LIFETIME


def test_a_destination_that_is_down_pings_failure_then_recovers(lab):
    docker("pause", SFTP)  # the server stops answering (its address stays the same)
    try:
        started = time.time()
        res = job("copy-sftp")
        assert res.returncode == 1, res.stdout + res.stderr
        assert time.time() - started < 120  # bounded: restic alone would retry for 15 minutes
        assert "destination sftp is unreachable" in res.stderr
        last = pings("copy-sftp")[-1]
        assert last["type"] == "fail" and last["exitstatus"] == 1
        assert "destination sftp is unreachable" in last["body"] and "copy to sftp failed (exit 1)" in last["body"]
    finally:
        docker("unpause", SFTP)
    res = job("copy-sftp")
    assert res.returncode == 0, res.stderr
    assert pings("copy-sftp")[-1]["type"] == "success"


def test_a_wrong_repository_password_fails_clearly_and_changes_nothing(lab):
    before = vm_exec(VM, "docker exec -u user cloud-backup snapshots --json").stdout
    res = job("backup-data", env={"RESTIC_PASSWORD": "wrong-password"})
    assert res.returncode == 12, res.stdout + res.stderr
    assert "wrong password" in res.stderr and "wrong-password" not in res.stdout + res.stderr
    assert pings("backup-data")[-1]["exitstatus"] == 12
    assert vm_exec(VM, "docker exec -u user cloud-backup snapshots --json").stdout == before
    assert "lock" not in vm_exec(VM, "docker exec -u user cloud-backup restic list locks").stdout


def test_check_detects_a_corrupted_pack_file(lab):
    res = job("check", env={"CLOUD_BACKUP_DESTINATION": "usb"}, command="check --read-data")
    assert res.returncode == 0, res.stdout + res.stderr
    pack = vm_exec(VM, "find /srv/copy-usb/data -type f -size +1M | head -1").stdout.strip()
    assert pack
    vm_exec(VM, "printf 'corrupted by the lab test' | dd of=%s bs=1 seek=100000 conv=notrunc status=none" % pack)
    res = job("check", env={"CLOUD_BACKUP_DESTINATION": "usb"}, command="check --read-data")
    assert res.returncode == 1, res.stdout + res.stderr
    assert os.path.basename(pack)[:8] in res.stdout + res.stderr
    assert pings("check")[-1]["exitstatus"] == 1
