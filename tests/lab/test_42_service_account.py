"""Service accounts (issue 14): a group of two fresh lab VMs whose infn destination is an experiment's bucket reached
through one client-credentials client of the lab's OpenID Connect provider (lab/oidc, LAB_OIDC_SERVICE_CLIENTS: its
access tokens are IAM-like JWTs) exchanged for S3 keys at the lab's INFN Cloud stand-in (moto S3 + STS,
lab/sts/moto_sts.py, recording every exchange), with no enrollment step:

- one rollout creates each host's repository under its own path of the bucket, and the first backup runs;
  restore gives identical checksums;
- the token job (<host>-token) proves the client; a backup that outlasts both the STS keys (20 s) and the access
  token (30 s) is served by one long-running REST server that renews both;
- the client secret never appears on a command line (sampled during token fetches), in the container's
  environment, or in the -vvv output; it is a 0600 file of the container's user;
- a secret rotated at the provider fails the token job and the backup fast, pinging the reason, the repository
  untouched; the new secret rolled out replaces the old one and the next run succeeds; a disabled client likewise;
- an issuer whose discovery document names no token endpoint is refused before any change, naming the field."""

import json
import os
import socket
import ssl
import subprocess
import time
import urllib.request
import uuid
from datetime import datetime

import pytest
import yaml

from labkit import REPO, docker, hc_pings, host_state, ip_of, lab_vms, playbook, run_job, vm_exec

RUN = uuid.uuid4().hex[:6]
GROUP = "cc42_experiment"
HOSTS = ["cc42a%s" % RUN, "cc42b%s" % RUN]
VMS = {HOSTS[0]: "infn-lab-cc-1-%s" % RUN, HOSTS[1]: "infn-lab-cc-2-%s" % RUN}
STS = "infn-lab-cc-sts-%s" % RUN
CLIENT = "experiment-cc-%s" % RUN
SECRET = "cc42-client-secret-%s" % uuid.uuid4().hex
ROTATED = "cc42-rotated-secret-%s" % uuid.uuid4().hex
BUCKET = "experiment-cc"
STS_LIFETIME = 20     # seconds of the temporary S3 keys (INFN: 900)
TOKEN_LIFETIME = 30   # seconds of the client's access tokens (IAM: 3600)
CA_ON_VM = "/etc/ssl/cc42-oidc-ca.pem"
OUTPUTS = []


def http(url, method="GET", data=None, headers=None, context=None):
    req = urllib.request.Request(url, method=method, data=data, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10, context=context) as res:
            return res.status, res.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()
    except OSError:
        return None, b""


def wait_for(what, probe, seconds=60):
    deadline = time.time() + seconds
    while time.time() < deadline:
        if probe():
            return
        time.sleep(0.3)
    raise AssertionError("%s did not happen within %d s" % (what, seconds))


def sts_events(lab):
    return json.loads(http("http://%s:5000/_lab/events" % lab["sts_ip"])[1])


def bucket_keys(lab, prefix):
    """Every object key (and size) under PREFIX of the experiment's bucket, read straight from moto."""
    import xml.etree.ElementTree as ET
    status, body = http("http://%s:5000/%s?list-type=2&prefix=%s/&max-keys=10000" % (lab["sts_ip"], BUCKET, prefix))
    assert status == 200, body[:300]
    ns = {"s3": "http://s3.amazonaws.com/doc/2006-03-01/"}
    root = ET.fromstring(body)
    return sorted((c.find("s3:Key", ns).text, c.find("s3:Size", ns).text) for c in root.findall("s3:Contents", ns))


def pings(host, check):
    return hc_pings("%s-%s" % (host, check))


def job(host, name, command=None):
    return run_job(VMS[host], name, command=command)


def hand(host, command):
    return vm_exec(VMS[host], "docker exec -u user cloud-backup %s" % command, check=False)


def checksums(host, path):
    script = "cd %s && find . -type f -print0 | sort -z | xargs -0 sha256sum" % path
    return vm_exec(VMS[host], "docker exec -u user cloud-backup sh -c '%s'" % script).stdout


def expiry(event):
    return datetime.fromisoformat(event["expiration"].replace("Z", "+00:00")).timestamp()


class Provider:
    """The lab provider on this machine's address on the lab network, with the experiment's service account."""

    def __init__(self, state, host):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        self.state = state
        env = dict(os.environ, LAB_OIDC_STATE=str(state), LAB_OIDC_HOST=host, LAB_OIDC_PORT=str(port),
                   LAB_OIDC_SERVICE_CLIENTS=json.dumps([{"client_id": CLIENT, "client_secret": SECRET}]),
                   LAB_OIDC_CLIENT_CREDENTIALS_TTL=str(TOKEN_LIFETIME))
        res = subprocess.run([os.path.join(REPO, "lab", "oidc", "start.sh")], env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        out = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
        self.issuer, self.ca = out["OIDC_ISSUER"], out["OIDC_CA_FILE"]
        self.admin_token = open(out["OIDC_ADMIN_TOKEN_FILE"]).read().strip()
        self.ssl = ssl.create_default_context(cafile=self.ca)

    def client(self, **change):
        status, body = http(self.issuer + "lab/clients/" + CLIENT, "PUT", json.dumps(change).encode(),
                            {"Authorization": "Bearer " + self.admin_token}, self.ssl)
        assert status == 200, body

    def stop(self):
        subprocess.run([os.path.join(REPO, "lab", "oidc", "start.sh"), "stop"], capture_output=True, timeout=60,
                       env=dict(os.environ, LAB_OIDC_STATE=str(self.state)))


def write_inventory(lab, path, secret, **destination):
    dest = {"type": "infn", "endpoint": "http://%s:5000" % lab["sts_ip"], "bucket": BUCKET, "role_name": "experiment-cc",
            "audience": "lab-s3", "auth": "client_credentials", "client_id": CLIENT, "client_secret": secret,
            "issuer": lab["provider"].issuer, "ca_file": CA_ON_VM}
    dest.update(destination)
    # the group's own group_vars file (inline group vars would lose to the lab's group_vars/all.yml)
    path.mkdir(exist_ok=True)
    (path / "group_vars").mkdir(exist_ok=True)
    (path / "group_vars" / ("%s.yml" % GROUP)).write_text(yaml.safe_dump(
        {"cloud_backup_destination": dest, "cloud_backup_sources": [{"name": "data", "path": "/srv/data"}]}))
    group = {"hosts": {host: {"ansible_host": vm} for host, vm in VMS.items()}}
    (path / "hosts.yml").write_text(yaml.safe_dump({"all": {"children": {"cloud_backup": {"children": {GROUP: group}}}}}))
    return path


def rollout(inventory, limit=GROUP):
    run = playbook("-vvv", "-i", str(inventory), "--limit", limit)
    OUTPUTS.append(run.out)
    return run


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab_vms()  # the lab network, S3 and Healthchecks must be up
    tmp = tmp_path_factory.mktemp("cc42")
    provider = None
    try:
        docker("run", "-d", "--name", STS, "--network", "infn-lab", "--label", "infn-lab=1",
               "-e", "LAB_STS_DURATION=%d" % STS_LIFETIME, "-v", "%s/lab/sts:/opt/sts:ro" % REPO, "infn-lab/s3:latest",
               "python3", "/opt/sts/moto_sts.py", "5000")
        sts_ip = ip_of(STS)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.connect((sts_ip, 9))
            here = sock.getsockname()[0]
        provider = Provider(tmp / "oidc", here)
        wait_for("moto (STS)", lambda: http("http://%s:5000/_lab/events" % sts_ip)[0] == 200)
        assert http("http://%s:5000/%s" % (sts_ip, BUCKET), "PUT")[0] == 200
        procs = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", vm, "with-image"], cwd=REPO, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE, text=True) for vm in VMS.values()]
        for proc in procs:
            out, err = proc.communicate(timeout=600)
            assert proc.returncode == 0, err[-2000:]
        ca = open(provider.ca).read()
        for n, vm in enumerate(VMS.values()):
            vm_exec(vm, "mkdir -p /srv/data/sub && seq 1 %d > /srv/data/numbers.txt && head -c 300000 /dev/urandom"
                        " > /srv/data/sub/random.bin && cat > %s <<'EOF'\n%sEOF\nchmod 0644 %s"
                        % (20000 + n, CA_ON_VM, ca, CA_ON_VM))
        lab = {"provider": provider, "sts_ip": sts_ip, "tmp": tmp}
        lab["inventory"] = write_inventory(lab, tmp / "inventory", SECRET)
        yield lab
    finally:
        docker("rm", "-f", STS, *VMS.values(), check=False)
        if provider:
            provider.stop()


def test_one_rollout_no_enrollment_each_host_backs_up_under_its_own_path(lab):
    run = rollout(lab["inventory"])
    assert run.rc == 0, run.out[-6000:]
    assert "not enrolled" not in run.out and "enroll" not in run.out.lower().replace("enrollment", "")
    for host, vm in VMS.items():
        env = vm_exec(vm, "cat /opt/cloud-backup/.env").stdout
        assert "INFN_TOKEN_SOURCE='client'" in env and "OIDC_CC_CLIENT_ID='%s'" % CLIENT in env
        assert "OIDC_ACCOUNT" not in env and SECRET not in env
        config = vm_exec(vm, "cat /opt/cloud-backup/ofelia/config.ini").stdout
        assert '[job-exec "token"]' in config and "command = check-client-token" in config
        assert "check-refresh-token" not in config
        res = job(host, "backup-data")
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert [p["type"] for p in pings(host, "backup-data")][-2:] == ["start", "success"]
    # one bucket, one repository per host under its own path
    for host in HOSTS:
        keys = [k for k, _ in bucket_keys(lab, host)]
        assert "%s/config" % host in keys and any(k.startswith("%s/snapshots/" % host) for k in keys), keys[:10]
    # STS got the client's IAM-like JWTs (the audience asked for), for the role of the destination
    exchanges = [e for e in sts_events(lab) if e["kind"] == "sts"]
    assert exchanges and all(e["role_arn"] == "arn:aws:iam:::role/experiment-cc" for e in exchanges)
    assert all((e.get("claims") or {}).get("client_id") == CLIENT and e["claims"]["aud"] == "lab-s3" for e in exchanges)
    # restore on the first host: identical checksums
    host = HOSTS[0]
    original = checksums(host, "/backup/data")
    res = hand(host, "restore latest --tag data --target /home/user/restore")
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert checksums(host, "/home/user/restore/backup/data") == original and original.count("\n") == 2
    # forget stays within the host (RESTIC_HOST), as for every destination
    res = job(host, "forget")
    assert res.returncode == 0, res.stderr[-2000:]


def test_token_job_proves_the_client(lab):
    for host in HOSTS:
        res = job(host, "token")
        assert res.returncode == 0, res.stdout + res.stderr
        assert "client %s: token obtained from %stoken" % (CLIENT, lab["provider"].issuer) in res.stdout
        assert pings(host, "token")[-1]["type"] == "success"


def test_sts_keys_and_access_token_renewed_by_the_server_over_a_long_backup(lab):
    host, vm = HOSTS[0], VMS[HOSTS[0]]
    server = vm_exec(vm, "docker exec cloud-backup pgrep -f 'rclone serve restic'").stdout.strip()
    vm_exec(vm, "head -c 12600000 /dev/urandom > /srv/data/sub/large.bin")
    started = time.time()
    # three 4 MiB packs uploaded one after the other at 200 KiB/s: a request to S3 about every 20 s, each needing
    # keys newer than the last ones (20 s), for about a minute (two tokens' lifetime)
    res = job(host, "backup-data", command="backup --pack-size 4 -o rest.connections=1 --limit-upload 200 --tag data "
                                           "--exclude-file /etc/cloud-backup/excludes/data /backup/data")
    ended = time.time()
    assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
    assert ended - started > TOKEN_LIFETIME + 10, "the backup must outlast the token (%.0f s)" % (ended - started)
    events = sts_events(lab)
    during = [e for e in events if e["kind"] == "sts" and started < e["time"] < ended]
    assert all(e["claims"]["exp"] > e["time"] for e in during), during  # every token exchanged was still valid
    # past the job's own first look at the bucket (its probe), only the server talks to STS: new keys several times,
    # for more than one access token (the server's refresher renewed it)
    served = [e for e in during if e["time"] > started + 12]
    assert len(served) >= 2, during
    assert len({e["token_sha256"] for e in served}) >= 2, served
    keys = {e["akid"]: expiry(e) for e in events if e["kind"] == "sts"}
    late = [e for e in events if e["kind"] == "request" and e["akid"] in keys and e["time"] > keys[e["akid"]] + 1]
    assert not late, "requests signed with expired keys: %s" % late[:3]
    # one and the same server all along
    assert vm_exec(vm, "docker exec cloud-backup pgrep -f 'rclone serve restic'").stdout.strip() == server


def test_the_secret_is_a_private_file_never_on_a_command_line_nor_in_the_environment(lab):
    host, vm = HOSTS[1], VMS[HOSTS[1]]
    stat = vm_exec(vm, "docker exec cloud-backup sh -c 'stat -c \"%a %u\" \"$OIDC_CC_SECRET_FILE\" "
                       "\"$(dirname \"$OIDC_CC_SECRET_FILE\")\"'").stdout.split("\n")
    assert stat[0] == "600 1000" and stat[1].startswith("700 "), stat
    # command lines of every process of the VM (the container's included), sampled while tokens are fetched
    sampler = ("for i in $(seq 1 600); do for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f 2>/dev/null; echo; done;"
               " done > /tmp/cc42-cmdlines")
    proc = subprocess.Popen(["docker", "exec", vm, "sh", "-c", sampler])
    try:
        for _ in range(15):
            res = hand(host, "cloud-backup client-token")
            assert res.returncode == 0, res.stderr
    finally:
        proc.wait(timeout=300)
    seen = vm_exec(vm, "cat /tmp/cc42-cmdlines").stdout
    assert "grant_type=client_credentials" in seen  # the sampler saw the fetches
    assert SECRET not in seen
    inspect = vm_exec(vm, "docker inspect cloud-backup cloud-backup-ofelia").stdout
    assert SECRET not in inspect and "OIDC_CC_SECRET_FILE" in inspect
    for text in OUTPUTS:
        assert SECRET not in text and ROTATED not in text


def test_a_revoked_secret_fails_fast_with_the_reason_then_the_rotated_secret_rolls_out(lab):
    host = HOSTS[0]
    before = {h: bucket_keys(lab, h) for h in HOSTS}
    lab["provider"].client(client_secret=ROTATED)  # rotated at the provider: the hosts' secret is revoked
    res = job(host, "token")
    assert res.returncode == 1, res.stdout + res.stderr
    last = pings(host, "token")[-1]
    assert last["type"] == "fail" and last["exitstatus"] == 1
    assert "invalid_client" in last["body"] and "rotated or revoked" in last["body"]
    started = time.time()
    res = job(host, "backup-data")
    assert res.returncode == 1 and time.time() - started < 30, res.stderr
    assert "invalid_client" in res.stderr
    last = pings(host, "backup-data")[-1]
    assert last["type"] == "fail" and "invalid_client" in last["body"] and SECRET not in last["body"]
    assert {h: bucket_keys(lab, h) for h in HOSTS} == before  # the repositories untouched
    # the new secret in the inventory, one rollout: every host gets it, no repository is touched
    inventory = write_inventory(lab, lab["tmp"] / "rotated", ROTATED)
    run = rollout(inventory)
    assert run.rc == 0, run.out[-6000:]
    assert {h: bucket_keys(lab, h) for h in HOSTS} == before
    for h in HOSTS:
        res = job(h, "backup-data")
        assert res.returncode == 0, res.stdout[-2000:] + res.stderr[-2000:]
        assert pings(h, "backup-data")[-1]["type"] == "success"
    res = job(host, "token")
    assert res.returncode == 0 and pings(host, "token")[-1]["type"] == "success"
    # a disabled client: the same, with the reason; enabled again, the next run succeeds
    lab["provider"].client(enabled=False)
    res = job(host, "token")
    assert res.returncode == 1 and "invalid_client" in pings(host, "token")[-1]["body"]
    lab["provider"].client(enabled=True)
    res = job(host, "token")
    assert res.returncode == 0 and pings(host, "token")[-1]["type"] == "success"


def test_an_issuer_without_token_endpoint_is_refused_before_any_change(lab):
    host, vm = HOSTS[1], VMS[HOSTS[1]]
    inventory = write_inventory(lab, lab["tmp"] / "broken", ROTATED,
                                issuer=lab["provider"].issuer + "lab/no-token-endpoint/")
    before = host_state([vm])
    run = rollout(inventory, limit=host)
    assert run.rc != 0
    assert "cloud_backup_destination.issuer" in run.out and "names no https token_endpoint" in run.out
    assert "cloud_backup_destination.token_endpoint" in run.out
    assert host_state([vm]) == before
