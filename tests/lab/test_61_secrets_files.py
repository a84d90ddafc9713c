"""Secrets reach the backup container as files, never through its environment or a command line.

- `docker inspect` of every container of a deployed host and `docker compose config` of its stack show no secret
  (restic password, S3 keys, the SFTP key, REST passwords, the oidc-agent password, ping URLs);
- while a backup job with its Healthchecks pings runs (pings slowed down by the lab's Healthchecks so that each
  curl lives long enough to be seen), no process's command line, sampled every 50 ms on the VM and inside the
  backup container, holds a ping URL, a password or a key;
- the secret files are 0600, owned by the container's user, in a 0700 directory; a rerun changes nothing.

A VM of its own, with the lab's S3 primary and secondaries of every kind that carries a secret."""

import json
import subprocess
import threading
import time
import urllib.request
import uuid

import boto3
import pytest
import yaml

from labkit import LAB_INVENTORY, REPO, hc_api, lab_vms, playbook, run_job, vm_exec

RUN = uuid.uuid4().hex[:6]
HOST = "h13sec%s" % RUN
VM = "infn-lab-h13sec-%s" % RUN
HC = "http://127.0.0.1:58000"
API_KEY = "hcw_labfleetreadwritekey00000001"
S3 = dict(endpoint_url="http://127.0.0.1:59000", aws_access_key_id="lab-access-key",
          aws_secret_access_key="lab-secret-key", region_name="us-east-1")
SECRETS = {
    "restic password": "h13 restic password %s" % RUN,
    "REST password": "h13-rest-password-%s" % RUN,
    "oidc password": "h13-oidc-password-%s" % RUN,
    "secondary S3 access key": "h13-copy-access-%s" % RUN,
    "secondary S3 secret key": "h13-copy-secret-%s" % RUN,
    "secondary REST password": "h13-remote-rest-pw-%s" % RUN,
    "rclone secret option": "h13-rclone-secret-%s" % RUN,
}


def checks():
    return {c["name"][len(HOST) + 1:]: c for c in hc_api("/api/v3/checks/?tag=host-%s" % HOST)["checks"]}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    lab_vms()  # the lab's network, S3 and Healthchecks must be up
    tmp = tmp_path_factory.mktemp("h13sec")
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-C", "h13", "-f", str(tmp / "id")], check=True)
    key = (tmp / "id").read_text()
    started = subprocess.run(["bash", "lab/lab.sh", "extra-vm", VM, "with-image"], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    vm_exec(VM, "mkdir -p /srv/www && head -c 200000 /dev/urandom > /srv/www/blob && echo hello > /srv/www/index.html")
    group = yaml.safe_load(open(LAB_INVENTORY + "/group_vars/all.yml"))
    host_vars = {
        "ansible_host": VM,
        "cloud_backup_sources": [{"name": "www", "path": "/srv/www"}],
        "cloud_backup_restic_password": SECRETS["restic password"],
        "cloud_backup_rest_password": SECRETS["REST password"],
        "cloud_backup_oidc_password": SECRETS["oidc password"],
        "cloud_backup_secondary_destinations": [
            {"name": "s3copy", "type": "s3", "endpoint": group["cloud_backup_destination"]["endpoint"],
             "bucket": "lab-backups", "path": "%s-copy" % HOST, "access_key_id": SECRETS["secondary S3 access key"],
             "secret_access_key": SECRETS["secondary S3 secret key"], "region": "us-east-1"},
            {"name": "remote", "type": "rest", "url": "http://192.0.2.1:8000/%s/" % HOST, "username": "lab",
             "password": SECRETS["secondary REST password"]},
            {"name": "far", "type": "sftp", "host": "192.0.2.2", "user": "lab", "path": "/srv/%s" % HOST,
             "private_key": key},
            {"name": "rcl", "type": "rclone", "path": "x/%s" % HOST,
             "options": {"type": "webdav", "url": "http://192.0.2.3/", "user": "lab",
                         "pass": SECRETS["rclone secret option"]}},
        ],
    }
    hosts = tmp / "hosts.yml"
    hosts.write_text(yaml.safe_dump({"all": {"children": {"cloud_backup": {"hosts": {HOST: host_vars}}}}}))
    run = playbook("-i", str(hosts), "--limit", HOST)
    assert run.rc == 0, run.out[-5000:]
    secrets = dict(SECRETS)
    secrets["primary S3 access key"] = group["cloud_backup_destination"]["access_key_id"]
    secrets["primary S3 secret key"] = group["cloud_backup_destination"]["secret_access_key"]
    # a line from the middle of the SSH key (the whole key has line breaks)
    secrets["SFTP key"] = key.strip().splitlines()[2]
    for job, check in checks().items():
        secrets["ping URL of %s" % job] = check["uuid"]
    assert "ping URL of backup-www" in secrets
    yield {"hosts": hosts, "secrets": secrets}
    subprocess.run(["docker", "rm", "-f", "-v", VM], capture_output=True)
    for check in checks().values():
        hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")
    s3 = boto3.client("s3", **S3)
    for prefix in (HOST + "/", HOST + "-copy/"):
        for item in s3.list_objects_v2(Bucket="lab-backups", Prefix=prefix).get("Contents", []):
            s3.delete_object(Bucket="lab-backups", Key=item["Key"])


def found_in(text, secrets):
    return sorted(name for name, value in secrets.items() if value in text)


def test_docker_inspect_and_compose_config_show_no_secret(host):
    inspect = vm_exec(VM, "docker inspect $(docker ps -aq)").stdout
    config = vm_exec(VM, "cd /opt/cloud-backup && docker compose config").stdout
    assert "cloud-backup" in inspect and "cloud-backup" in config
    assert found_in(inspect, host["secrets"]) == [], "secrets in docker inspect"
    assert found_in(config, host["secrets"]) == [], "secrets in docker compose config"
    # what is not secret is still there: the seed's .env interface
    env = json.loads(vm_exec(VM, "docker inspect cloud-backup").stdout)[0]["Config"]["Env"]
    assert "RESTIC_REST_USERNAME=restic" in env and "CLOUD_BACKUP_REMOTE=dest" in env


def test_secret_files_are_private_and_a_rerun_changes_nothing(host):
    listing = vm_exec(VM, "stat -c '%n %a %u' /opt/cloud-backup/secrets /opt/cloud-backup/secrets/*").stdout.splitlines()
    assert listing[0] == "/opt/cloud-backup/secrets 700 1000", listing
    assert len(listing) > 8 and all(line.endswith(" 600 1000") for line in listing[1:]), listing
    again = playbook("-i", str(host["hosts"]), "--limit", HOST, "--diff")
    assert again.rc == 0 and again.changed(HOST) == 0, again.out[-3000:]
    assert found_in(again.out, host["secrets"]) == []


def test_no_secret_on_any_command_line_during_a_backup_with_pings(host):
    # each ping of the job is held 1.5 s by the lab's Healthchecks: a curl with the URL on its argv would be seen
    code = checks()["backup-www"]["uuid"]
    fault = {"path": "/ping/%s*" % code, "delay": 1.5, "count": 2}
    request = urllib.request.Request(HC + "/_admin/faults", data=json.dumps(fault).encode(), method="POST",
                                     headers={"Content-Type": "application/json"})
    urllib.request.urlopen(request, timeout=10).read()
    sampler = ("rm -f /tmp/h13-stop; n=0; while [ ! -e /tmp/h13-stop ]; do ps -eo args; "
               "docker exec cloud-backup ps -eo args 2>/dev/null; n=$((n+1)); sleep 0.05; done; echo SAMPLES $n")
    result = {}

    def sample():
        result["ps"] = vm_exec(VM, sampler, check=False).stdout

    thread = threading.Thread(target=sample)
    thread.start()
    time.sleep(1)
    before = len(hc_api("/api/v3/checks/%s/pings/" % code)["pings"])
    started = time.time()
    job = run_job(VM, "backup-www")
    took = time.time() - started
    vm_exec(VM, "touch /tmp/h13-stop")
    thread.join(60)
    assert job.returncode == 0, job.stdout + job.stderr
    assert took >= 3, "the pings were not held: %.1f s" % took
    pings = hc_api("/api/v3/checks/%s/pings/" % code)["pings"]
    assert len(pings) == before + 2 and pings[0]["type"] == "success" and pings[1]["type"] == "start"
    ps = result["ps"]
    assert "SAMPLES" in ps and int(ps.rsplit("SAMPLES", 1)[1]) > 10 and "restic" in ps and "curl" in ps, ps[-2000:]
    assert found_in(ps, host["secrets"]) == [], "secrets on a command line"
