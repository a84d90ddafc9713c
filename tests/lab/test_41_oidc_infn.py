"""oidc-agent wiring of the role on a fresh lab VM, against the lab's real OpenID Connect provider (lab/oidc,
on the lab network so that the VM's backup container reaches it) and the lab's INFN Cloud stand-in (moto
answering S3 and STS, lab/sts/moto_sts.py):

- a host with an infn primary rolls out before its account exists (the repository waits for the enrollment);
- playbooks/enroll.yml enrolls the account in the role's own container (same name and password variables),
  approved by the scripted user (lab/oidc/approve.mjs) from the playbook's own table;
- the container's refresher feeds oidc-agent access tokens of that account to rclone's web-identity exchange;
- check-refresh-token pings failure for an expiring refresh token, saying how to renew, and
  playbooks/renew.yml fixes it."""

import hashlib
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import time
import urllib.request
import uuid

import pytest
import yaml

from labkit import LAB_INVENTORY, REPO, docker, hc_pings, ip_of, lab_vms, playbook, run_job, vm_exec

RUN = uuid.uuid4().hex[:6]
HOST = "o41%s" % RUN
VM = "infn-lab-o41-%s" % RUN
STS = "infn-lab-o41-sts-%s" % RUN
PASSWORD = "oidc-pw-%s" % uuid.uuid4().hex
CA = "/etc/cloud-backup/destinations/oidc-ca.pem"
CODE_ROW = re.compile(r'^\s*"(\S+)\s+([A-Z0-9]{4}-[A-Z0-9]{4})\s+(https://\S+?)",?\s*$')
BIN = os.path.dirname(sys.executable)
OUTPUTS = []  # every ansible run of this module, all at -vvv: searched for secrets by the last test


def http_json(url):
    with urllib.request.urlopen(url, timeout=10) as res:
        return json.loads(res.read())


def pings(check):
    return hc_pings("%s-%s" % (HOST, check))


def job(name, command):
    """The job NAME run as its scheduler runs it (user and environment of the deployed config), with COMMAND."""
    return run_job(VM, name, command=command)


class Provider:
    """The lab provider on this machine's address on the lab network (HTTPS, its own CA)."""

    def __init__(self, state, host):
        with socket.socket() as sock:
            sock.bind((host, 0))
            port = sock.getsockname()[1]
        self.state = state
        env = dict(os.environ, LAB_OIDC_STATE=str(state), LAB_OIDC_HOST=host, LAB_OIDC_PORT=str(port),
                   LAB_OIDC_DEVICE_INTERVAL="1", LAB_OIDC_DEVICE_CODE_TTL="300")
        res = subprocess.run([os.path.join(REPO, "lab", "oidc", "start.sh")], env=env, capture_output=True, text=True,
                             timeout=600)
        assert res.returncode == 0, res.stdout + res.stderr
        out = dict(line.split("=", 1) for line in res.stdout.splitlines() if "=" in line)
        self.issuer, self.ca = out["OIDC_ISSUER"], out["OIDC_CA_FILE"]
        self.admin_token = open(out["OIDC_ADMIN_TOKEN_FILE"]).read().strip()
        self.ssl = ssl.create_default_context(cafile=self.ca)

    def settings(self, **changes):
        req = urllib.request.Request(self.issuer + "lab/settings", data=json.dumps(changes).encode(), method="PUT",
                                     headers={"Authorization": "Bearer " + self.admin_token})
        with urllib.request.urlopen(req, context=self.ssl, timeout=10) as res:
            return json.load(res)

    def approve(self, code):
        res = subprocess.run(["node", os.path.join(REPO, "lab", "oidc", "approve.mjs"), "--issuer", self.issuer,
                              "--ca", self.ca, "approve", code], capture_output=True, text=True, timeout=60)
        assert res.returncode == 0, res.stdout + res.stderr

    def stop(self):
        subprocess.run([os.path.join(REPO, "lab", "oidc", "start.sh"), "stop"], capture_output=True, timeout=60,
                       env=dict(os.environ, LAB_OIDC_STATE=str(self.state)))


def lab_address(container):
    """This machine's address on the lab network (the source address towards a lab container)."""
    ip = ip_of(container)
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        sock.connect((ip, 9))
        return sock.getsockname()[0], ip


def run_with_approval(provider, inventory, path, *extra):
    """A playbook that prints the fleet's table of codes; the scripted user approves each code it shows."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-vvv", "-i", LAB_INVENTORY, "-i", str(inventory), path, "--limit", HOST,
            "-e", "cloud_backup_enroll_deadline=240 cloud_backup_enroll_poll_seconds=1"] + list(extra)
    proc = subprocess.Popen(argv, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"))
    out, approved = [], []
    for line in proc.stdout:
        out.append(line)
        match = CODE_ROW.match(line)
        if match and match.group(1) == HOST:
            provider.approve(match.group(2))
            approved.append(match.group(2))
    proc.wait(timeout=600)
    text = "".join(out)
    assert PASSWORD not in text
    OUTPUTS.append(text)
    return proc.returncode, approved, text


def rollout(lab):
    run = playbook("-vvv", "-i", str(lab["inventory"]), "--limit", HOST)
    OUTPUTS.append(run.out)
    return run


@pytest.fixture(scope="module")
def lab(tmp_path_factory):
    lab_vms()
    tmp = tmp_path_factory.mktemp("o41")
    provider = None
    try:
        docker("run", "-d", "--name", STS, "--network", "infn-lab", "--label", "infn-lab=1", "-e", "LAB_STS_DURATION=900",
               "-v", "%s/lab/sts:/opt/sts:ro" % REPO, "infn-lab/s3:latest", "python3", "/opt/sts/moto_sts.py", "5000")
        here, sts_ip = lab_address(STS)
        provider = Provider(tmp / "oidc", here)
        # an "expiring" refresh token: 3 days, when the hosts warn below 7
        provider.settings(refresh_token_ttl=3 * 86400)
        for _ in range(60):
            try:
                http_json("http://%s:5000/_lab/events" % sts_ip)
                break
            except OSError:
                time.sleep(0.5)
        urllib.request.urlopen(urllib.request.Request("http://%s:5000/infn-backups" % sts_ip, method="PUT"), timeout=10)
        res = subprocess.run(["bash", "lab/lab.sh", "extra-vm", VM, "with-image"], cwd=REPO, capture_output=True, text=True, timeout=600)
        assert res.returncode == 0, res.stderr[-2000:]
        ca = open(provider.ca).read()
        vm_exec(VM, "mkdir -p /srv/data /opt/cloud-backup/destinations && seq 1 50000 > /srv/data/numbers.txt"
                    " && cat > %s <<'EOF'\n%sEOF\nchmod 0644 %s" % ("/opt/cloud-backup/destinations/oidc-ca.pem", ca,
                                                               "/opt/cloud-backup/destinations/oidc-ca.pem"))
        host_vars = {
            "ansible_host": VM,
            "cloud_backup_sources": [{"name": "data", "path": "/srv/data"}],
            "cloud_backup_destination": {"type": "infn", "endpoint": "http://%s:5000" % sts_ip, "bucket": "infn-backups",
                                         "role_name": "lab-backup", "audience": "lab-s3"},
            "cloud_backup_oidc_account": "cloud-backup",
            "cloud_backup_oidc_password": PASSWORD,
            "cloud_backup_oidc_issuer": provider.issuer,
            "cloud_backup_oidc_ca_file": CA,
            "cloud_backup_refresh_token_min_days": 7,
        }
        inventory = tmp / "hosts.yml"
        inventory.write_text(yaml.safe_dump({"all": {"children": {"cloud_backup": {"hosts": {HOST: host_vars}}}}}))
        yield {"provider": provider, "inventory": inventory, "sts_ip": sts_ip}
    finally:
        docker("rm", "-f", VM, STS, check=False)
        if provider:
            provider.stop()


def test_rollout_before_enrollment_waits_for_the_account(lab):
    run = rollout(lab)
    assert run.rc == 0, run.out[-5000:]
    assert "is not enrolled yet" in run.out
    assert PASSWORD not in run.out
    env = vm_exec(VM, "cat /opt/cloud-backup/.env").stdout
    assert PASSWORD not in env and vm_exec(VM, "cat /opt/cloud-backup/secrets/OIDC_PASSWORD").stdout == PASSWORD
    for line in ("OIDC_ACCOUNT='cloud-backup'", "OIDC_ISSUER='%s'" % lab["provider"].issuer,
                 "OIDC_PASSWORD_FILE='/run/secrets/OIDC_PASSWORD'",
                 "OIDC_SOCK='/home/user/.local/state/oidc-agent/agent.sock'",
                 "OIDC_CONFIG_DIR='/home/user/.config/oidc-agent'"):
        assert line in env
    assert '[job-exec "check-refresh-token"]' in vm_exec(VM, "cat /opt/cloud-backup/ofelia/config.ini").stdout
    # the agent runs in the container from its start, with no account yet
    assert vm_exec(VM, "docker exec cloud-backup pgrep -x oidc-agent", check=False).returncode == 0


def test_enroll_playbook_enrolls_the_role_container(lab):
    rc, approved, out = run_with_approval(lab["provider"], lab["inventory"], "playbooks/enroll.yml")
    assert rc == 0 and len(approved) == 1, out[-5000:]
    assert re.search(r"%s\s+approved" % HOST, out), out[-3000:]
    # the rollout now creates the repository: the container's refresher feeds the account's tokens to STS
    run = rollout(lab)
    assert run.rc == 0, run.out[-5000:]
    assert "is not enrolled yet" not in run.out
    # the agent restarted with the container loads the account by itself, with the password from .env, and the
    # new server's first request exchanges the token the refresher wrote
    restarted = time.time()
    vm_exec(VM, "docker restart cloud-backup >/dev/null")
    time.sleep(3)
    loaded = vm_exec(VM, "docker exec -u user cloud-backup oidc-add -a", check=False)
    assert "cloud-backup" in loaded.stdout, loaded.stdout + loaded.stderr
    res = job("backup-data", "backup --tag data --exclude-file /etc/cloud-backup/excludes/data /backup/data")
    assert res.returncode == 0, res.stdout + res.stderr
    exchanges = [e for e in http_json("http://%s:5000/_lab/events" % lab["sts_ip"]) if e["kind"] == "sts"]
    assert exchanges and all(e["role_arn"] == "arn:aws:iam:::role/lab-backup" for e in exchanges)
    # the token exchanged is the one the container's refresher wrote from oidc-agent, and a valid access
    # token of the provider (its userinfo endpoint accepts it)
    # (the file holds the token alone: a line break would be sent to STS as part of the token)
    token = vm_exec(VM, "docker exec -u user cloud-backup sh -c 'cat \"$AWS_WEB_IDENTITY_TOKEN_FILE\"'").stdout
    assert token and token == token.strip()
    since = [e["token_sha256"] for e in exchanges if e["time"] > restarted]
    assert since and set(since) == {hashlib.sha256(token.encode()).hexdigest()}, vm_exec(VM, "docker logs cloud-backup").stderr[-2000:]
    provider = lab["provider"]
    with urllib.request.urlopen(provider.issuer + ".well-known/openid-configuration", context=provider.ssl) as res:
        userinfo = json.load(res)["userinfo_endpoint"]
    req = urllib.request.Request(userinfo, headers={"Authorization": "Bearer " + token})
    with urllib.request.urlopen(req, context=provider.ssl, timeout=10) as res:
        assert res.status == 200 and json.load(res).get("sub")


def test_check_refresh_token_pings_failure_then_renew_fixes_it(lab):
    res = job("check-refresh-token", "check-refresh-token")
    assert res.returncode == 1, res.stdout + res.stderr
    assert "days left" in res.stdout and "ansible-playbook infn_cloud.backup.renew" in res.stderr
    last = pings("check-refresh-token")[-1]
    assert last["type"] == "fail" and last["exitstatus"] == 1
    assert "ansible-playbook infn_cloud.backup.renew" in last["body"] and PASSWORD not in last["body"]
    lab["provider"].settings(refresh_token_ttl=30 * 86400)
    rc, approved, out = run_with_approval(lab["provider"], lab["inventory"], "playbooks/renew.yml",
                                          "-e", "cloud_backup_renew_within_days=7")
    assert rc == 0 and len(approved) == 1, out[-5000:]
    res = job("check-refresh-token", "check-refresh-token")
    assert res.returncode == 0, res.stdout + res.stderr
    left = float(re.search(r"([\d.]+) days left", res.stdout).group(1))
    assert 29 < left <= 30
    assert pings("check-refresh-token")[-1]["type"] == "success"


def test_no_secret_in_any_output_and_secret_files_private(lab):
    """The rollout, the enrollment, the backups and the renewal above ran at -vvv: none of their output holds the
    oidc-agent password, the restic password, the refresh token or an access token; the files holding them are
    0600 (in 0700 directories) and belong to the container's user (uid 1000) or root."""
    assert len(OUTPUTS) >= 4
    # the test reads them from the VM (the password on this test's own docker argv, never the role's)
    show = vm_exec(VM, "docker exec -u user -e OIDC_ENCRYPTION_PW=%s cloud-backup oidc-gen -p cloud-backup --pw-env"
                       " </dev/null" % PASSWORD)
    account = json.loads(show.stdout[show.stdout.index("{"):])
    access = vm_exec(VM, "docker exec -u user cloud-backup sh -c 'cat \"$AWS_WEB_IDENTITY_TOKEN_FILE\"'").stdout
    files = vm_exec(VM, "cd /opt/cloud-backup/secrets && for f in *; do printf '%s=%s\\n' \"$f\" \"$(cat \"$f\")\"; done")
    env = dict(line.split("=", 1) for line in files.stdout.splitlines() if "=" in line)
    secrets = {"oidc password": PASSWORD, "restic password": env["RESTIC_PASSWORD"],
               "access token": access, "refresh token": account["refresh_token"]}
    secrets.update({name: value for name, value in env.items() if name.startswith("HC_PING_")})
    assert len(secrets) > 5 and all(len(value) > 8 for value in secrets.values()), sorted(secrets)
    for text in OUTPUTS:
        leaked = [name for name, value in secrets.items() if value in text]
        assert not leaked, leaked
    files = vm_exec(VM, "stat -c '%a %u %n' /opt/cloud-backup/.env; docker exec cloud-backup sh -c "
                        "'stat -c \"%a %u %n\" /home/user/.config/oidc-agent/cloud-backup "
                        "/home/user/.config/oidc-agent \"$AWS_WEB_IDENTITY_TOKEN_FILE\"'").stdout.split("\n")
    modes = {line.split()[2]: (line.split()[0], line.split()[1]) for line in files if line.strip()}
    assert modes["/opt/cloud-backup/.env"] == ("600", "0"), modes
    assert modes["/home/user/.config/oidc-agent/cloud-backup"] == ("600", "1000"), modes
    assert modes["/home/user/.config/oidc-agent"] == ("700", "1000"), modes
    token_file = [name for name in modes if name not in ("/opt/cloud-backup/.env", "/home/user/.config/oidc-agent",
                                                         "/home/user/.config/oidc-agent/cloud-backup")][0]
    assert modes[token_file] == ("600", "1000"), modes
