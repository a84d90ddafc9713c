"""The collection run as AWX runs it (issue 16), on a lab VM of its own (never vm1..vm3): ansible-runner on a private
data directory laid out as AWX lays one out for each job (project/ with thin playbooks importing the collection's,
inventory/, env/extravars, env/settings, env/cmdline, env/envvars, env/passwords), the inventory's secrets encrypted
with ansible-vault and the vault password answered at ansible-playbook's prompt as AWX answers it for a Vault
credential (`--ask-vault-pass` in env/cmdline, the prompt regex `Vault password:\\s*?$` in env/passwords).

The rollout, its rerun (changed=0 in the runner's stats), backup_now and status succeed, and no job's events nor its
output hold a secret: the restic password, the S3 keys, the Healthchecks API key, the vault password, a ping URL or a
check's UUID (the ping key)."""

import glob
import json
import os
import re
import secrets
import shutil
import subprocess
import uuid

import ansible_runner
import boto3
import pytest
import yaml
from ansible.constants import DEFAULT_VAULT_ID_MATCH
from ansible.parsing.vault import VaultLib, VaultSecret

from labkit import HC_API_KEY, LAB_INVENTORY, REPO, hc_api, lab_vms, vm_exec

RUN = uuid.uuid4().hex[:6]
HOST = "awx90%s" % RUN
VM = "infn-lab-awx90-%s" % RUN
COLLECTIONS = os.path.join(REPO, ".cache", "collections")  # the checkout as infn_cloud.backup (tests/conftest.py)
VAULT_PROMPT = r"Vault password:\s*?$"  # AWX's answer to --ask-vault-pass (build_passwords in awx/main/tasks/jobs.py)
S3 = dict(endpoint_url="http://127.0.0.1:59000", aws_access_key_id="lab-access-key",
          aws_secret_access_key="lab-secret-key", region_name="us-east-1")
JOBS = {}  # job name -> its private data directory, in the order they ran
ANSI = re.compile(r"\x1b\[[0-9;]*m")  # the job's output is colored (ansible-playbook runs on runner's terminal)


class Vaulted(str):
    """A value written to the inventory as an inline `!vault` scalar."""


class VaultDumper(yaml.SafeDumper):
    vault = None

    def represent_vaulted(self, value):
        return self.represent_scalar("!vault", self.vault.encrypt(str(value)).decode(), style="|")


VaultDumper.add_representer(Vaulted, VaultDumper.represent_vaulted)


def leaks(texts, named_secrets):
    """{secret's name: [where it is]} for each secret found in {where: text}, as it is or JSON-escaped (job events
    are JSON documents), in the text or in the text without its colors."""
    found = {}
    for name, value in named_secrets.items():
        forms = {value, json.dumps(value)[1:-1], json.dumps(value, ensure_ascii=False)[1:-1]}
        where = [place for place, text in texts.items()
                 if any(form in text or form in ANSI.sub("", text) for form in forms)]
        if where:
            found[name] = where
    return found


def artifacts(private_data_dir):
    """{path: text} of every file ansible-runner wrote for the job (job_events/*.json, stdout, command, ...)."""
    root = os.path.join(str(private_data_dir), "artifacts")
    files = [p for p in glob.glob(os.path.join(root, "**"), recursive=True) if os.path.isfile(p)]
    return {os.path.relpath(p, root): open(p, errors="replace").read() for p in files}


def test_the_scan_finds_a_planted_secret(tmp_path):
    """The scan below can fail: a secret in an event (JSON-escaped) or in stdout is found, a clean job is not."""
    named = {"restic": 'planted "restic" pass\\word', "ping": "/ping/%s" % uuid.uuid4()}
    events = tmp_path / "artifacts" / "job" / "job_events"
    events.mkdir(parents=True)
    (events / "1-clean.json").write_text(json.dumps({"event": "runner_on_ok", "stdout": "ok: [h]",
                                                     "event_data": {"res": {"changed": False}}}))
    assert leaks(artifacts(tmp_path), named) == {}
    (events / "2-leak.json").write_text(json.dumps({"event": "runner_on_ok", "stdout": "ok: [h]",
                                                    "event_data": {"res": {"password": named["restic"]}}}))
    (tmp_path / "artifacts" / "job" / "stdout").write_text(  # split by a color change
        "\x1b[0;32mok: [h] => %s\x1b[0;33m%s\x1b[0m\n" % (named["ping"][:10], named["ping"][10:]))
    assert named["restic"] not in (events / "2-leak.json").read_text()  # only its JSON-escaped form is there
    assert leaks(artifacts(tmp_path), named) == {"restic": ["job/job_events/2-leak.json"], "ping": ["job/stdout"]}


@pytest.fixture(scope="module")
def awx(tmp_path_factory):
    """What AWX holds for the job templates: the inventory (the lab's variables, its secrets in the vault) and the
    vault password (a Vault credential). Yields the secrets no job may show."""
    lab_vms()  # the lab's network, S3 and Healthchecks must be up
    try:
        started = subprocess.run(["bash", "lab/lab.sh", "extra-vm", VM, "with-image"], cwd=REPO, capture_output=True, text=True,
                                 timeout=600)
        assert started.returncode == 0, started.stdout + started.stderr
        work = tmp_path_factory.mktemp("awx90")
        vault_password = "awx90 vault " + secrets.token_hex(12)
        VaultDumper.vault = VaultLib([(DEFAULT_VAULT_ID_MATCH, VaultSecret(vault_password.encode()))])

        # the lab's group_vars/all.yml and vm1's host_vars, their secrets encrypted with the vault
        group = yaml.safe_load(open(os.path.join(LAB_INVENTORY, "group_vars", "all.yml")))
        group["cloud_backup_restic_password"] = Vaulted("awx90 restic password " + secrets.token_hex(12))
        group["cloud_backup_healthchecks_api_key"] = Vaulted(group["cloud_backup_healthchecks_api_key"])
        destination = group["cloud_backup_destination"]
        destination["access_key_id"] = Vaulted(destination["access_key_id"])
        destination["secret_access_key"] = Vaulted(destination["secret_access_key"])
        inventory = work / "inventory"
        (inventory / "group_vars").mkdir(parents=True)
        (inventory / "host_vars").mkdir()
        (inventory / "hosts").write_text(yaml.safe_dump(
            {"all": {"children": {"cloud_backup": {"hosts": {HOST: {"ansible_host": VM}}}}}}))
        (inventory / "group_vars" / "all.yml").write_text(yaml.dump(group, Dumper=VaultDumper, sort_keys=False))
        shutil.copy(os.path.join(LAB_INVENTORY, "host_vars", "vm1.yml"), inventory / "host_vars" / ("%s.yml" % HOST))
        assert "$ANSIBLE_VAULT;1.1;AES256" in (inventory / "group_vars" / "all.yml").read_text()

        named = {"restic password": str(group["cloud_backup_restic_password"]),
                 "rest password": group["cloud_backup_rest_password"].replace("{{ inventory_hostname }}", HOST),
                 "S3 access key id": str(destination["access_key_id"]),
                 "S3 secret access key": str(destination["secret_access_key"]),
                 "Healthchecks API key": str(group["cloud_backup_healthchecks_api_key"]),
                 "vault password": vault_password}
        assert named["Healthchecks API key"] == HC_API_KEY
        assert all(len(value) >= 8 for value in named.values()), named  # nothing empty or trivially found

        yield dict(work=work, inventory=inventory, vault_password=vault_password, secrets=named)
    finally:  # the VM, its checks and its objects go even when a step above failed
        subprocess.run(["docker", "rm", "-f", "-v", VM], capture_output=True)
        for check in hc_api("/api/v3/checks/?tag=host-%s" % HOST)["checks"]:
            hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")
        s3 = boto3.client("s3", **S3)
        for item in s3.list_objects_v2(Bucket="lab-backups", Prefix=HOST + "/").get("Contents", []):
            s3.delete_object(Bucket="lab-backups", Key=item["Key"])


def job(awx, name, playbook, extravars=None):
    """One AWX job: a private data directory of its own, then ansible-runner on it (the playbook from project/)."""
    pdd = awx["work"] / name
    project, env = pdd / "project", pdd / "env"
    project.mkdir(parents=True)
    env.mkdir()
    # the project: thin playbooks importing the collection's, and the project's ansible.cfg
    (project / ("%s.yml" % playbook)).write_text("---\n- ansible.builtin.import_playbook: infn_cloud.backup.%s\n" % playbook)
    (project / "ansible.cfg").write_text("[defaults]\ngathering = explicit\nretry_files_enabled = false\n"
                                         "interpreter_python = auto_silent\n\n[connection]\npipelining = true\n")
    shutil.copytree(awx["inventory"], pdd / "inventory")
    job_id = len(JOBS) + 1
    (env / "extravars").write_text(yaml.safe_dump(dict(
        awx_job_id=job_id, awx_job_template_name=name, tower_job_id=job_id, **(extravars or {}))))
    (env / "settings").write_text(yaml.safe_dump(
        {"job_timeout": 900, "idle_timeout": 600, "pexpect_timeout": 5, "suppress_ansible_output": True}))
    (env / "cmdline").write_text("--ask-vault-pass --limit %s" % HOST)
    (env / "passwords").write_text(json.dumps({VAULT_PROMPT: awx["vault_password"]}))
    (env / "envvars").write_text(yaml.safe_dump({
        "ANSIBLE_CONFIG": str(project / "ansible.cfg"),  # the project's, not the checkout's
        "ANSIBLE_COLLECTIONS_PATH": COLLECTIONS}))
    JOBS[name] = pdd
    runner = ansible_runner.run(private_data_dir=str(pdd), playbook="%s.yml" % playbook, ident=name, quiet=True)
    stdout = (pdd / "artifacts" / name / "stdout").read_text()
    return runner, stdout


def test_rollout_then_rerun_changes_nothing(awx):
    first, out = job(awx, "site", "site")
    assert (first.status, first.rc) == ("successful", 0), out[-5000:]
    assert first.stats["changed"].get(HOST, 0) > 0 and not first.stats["failures"], first.stats
    assert out.startswith("Vault password:"), out[:500]  # asked on the job's terminal, answered from env/passwords
    # the vaulted values reached the host decrypted, in the stack's secret files
    deployed = vm_exec(VM, "cat /opt/cloud-backup/secrets/*").stdout
    assert awx["secrets"]["restic password"] in deployed and awx["secrets"]["S3 secret access key"] in deployed
    assert "ANSIBLE_VAULT" not in deployed

    again, out = job(awx, "site-rerun", "site")
    assert (again.status, again.rc) == ("successful", 0), out[-5000:]
    assert again.stats["ok"].get(HOST, 0) > 0 and again.stats["changed"].get(HOST, 0) == 0, (again.stats, out[-5000:])


def test_backup_now_then_status_reports_the_host_ok(awx):
    backup, out = job(awx, "backup_now", "backup_now")  # a fresh host has no snapshot: status would say late
    assert (backup.status, backup.rc) == ("successful", 0), out[-5000:]
    report = awx["work"] / "status.json"
    status, out = job(awx, "status", "status", {"cloud_backup_status_json": str(report), "cloud_backup_status_html": ""})
    assert (status.status, status.rc) == ("successful", 0), out[-5000:]
    rows = json.loads(report.read_text())["hosts"]
    assert [(row["host"], row["verdict"]) for row in rows] == [(HOST, "ok")], rows
    assert "1 host(s), 1 ok, 0 not ok" in out, out[-3000:]


def test_no_job_shows_a_secret(awx):
    assert list(JOBS) == ["site", "site-rerun", "backup_now", "status"]
    named = dict(awx["secrets"])
    checks = hc_api("/api/v3/checks/?tag=host-%s" % HOST)["checks"]
    assert len(checks) >= 4, checks  # backup-www, backup-projects, forget, check
    for check in checks:
        assert check["uuid"] and check["ping_url"].endswith("/ping/" + check["uuid"]), check
        named["ping URL of %s" % check["name"]] = "/ping/" + check["uuid"]
        named["UUID of %s" % check["name"]] = check["uuid"]
    for name, pdd in JOBS.items():
        texts = artifacts(pdd)
        if name == "status":  # and the report it wrote
            texts["status.json"] = (awx["work"] / "status.json").read_text()
        events = [path for path in texts if "/job_events/" in path and path.endswith(".json")]
        assert len(events) > 20 and "%s/stdout" % name in texts, sorted(texts)[:20]
        assert "PLAY RECAP" in texts["%s/stdout" % name]
        assert leaks(texts, named) == {}, "job %s shows secrets" % name
