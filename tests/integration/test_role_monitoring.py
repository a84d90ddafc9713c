"""The rollout's monitoring step (tasks/model.yml, then tasks/monitoring.yml: the host model's checks ensured by
healthchecks_checks) on the controller, against the fake Healthchecks server in this process: a source removed from
the inventory has its check paused; put back, its check is resumed, check mode predicts it and diff mode shows it
(nothing written), a rerun writes nothing; a check kept paused on purpose stays paused (issue 17)."""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))
from healthchecks_fake import FakeHealthchecks  # noqa: E402

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
WWW, PROJECTS = {"name": "www", "path": "/srv/www"}, {"name": "projects", "path": "/srv/projects"}
PLAY = """
- hosts: cloud_backup
  gather_facts: false
  tasks:
    - ansible.builtin.include_role: {name: infn_cloud.backup.cloud_backup, tasks_from: model}
    - ansible.builtin.include_role: {name: infn_cloud.backup.cloud_backup, tasks_from: monitoring}
"""


@pytest.fixture
def hc():
    with FakeHealthchecks() as fake:
        yield fake


def rollout(tmp_path, hc, sources, *args, ok=True, **extra):
    host = {"ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "cloud_backup_restic_password": "a long real secret", "cloud_backup_rest_password": "another-real-secret",
            "cloud_backup_destination": {"type": "local", "path": "/srv/backup"}, "cloud_backup_timezone": "UTC",
            "cloud_backup_healthchecks_api_url": hc.url, "cloud_backup_healthchecks_api_key": hc.api_key,
            "cloud_backup_sources": sources}
    host.update(extra)
    (tmp_path / "hosts.json").write_text(json.dumps({"all": {"children": {"cloud_backup": {"hosts": {"h1": host}}}}}))
    (tmp_path / "play.yml").write_text(PLAY)
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.json"),
                           str(tmp_path / "play.yml")] + list(args), cwd=REPO, capture_output=True, text=True,
                          env=dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0"), timeout=300, check=False)
    out = proc.stdout + proc.stderr
    assert (proc.returncode == 0) == ok, out[-4000:]
    if not ok:
        return None, None, out
    changed = int(re.search(r"^h1\s+: ok=\d+\s+changed=(\d+)", out, re.M).group(1))
    shown = re.search(r"Show what was written to Healthchecks\] \**\nok: \[h1\] => (\{.*?\n\})", out, re.S)
    return changed, json.loads(shown.group(1))["msg"] if shown else None, out


def statuses(hc):
    return {c["name"]: c["status"] for c in hc.checks()}


def writes(hc):
    return [(r["method"], r["path"]) for r in hc.requests() if r["method"] != "GET"]


def test_a_source_put_back_has_its_check_resumed(tmp_path, hc):
    rollout(tmp_path, hc, [WWW, PROJECTS])
    rollout(tmp_path, hc, [WWW])
    assert statuses(hc) == {"h1-backup-www": "new", "h1-backup-projects": "paused", "h1-forget": "new", "h1-check": "new"}
    hc.clear_requests()
    changed, shown, out = rollout(tmp_path, hc, [WWW, PROJECTS], "--check", "--diff")
    assert changed == 1 and shown == {"h1-backup-projects": {"writes": "resume", "before": {"paused": True},
                                                             "after": {"paused": False}}}, out[-3000:]
    assert writes(hc) == [] and statuses(hc)["h1-backup-projects"] == "paused"
    changed, shown, out = rollout(tmp_path, hc, [WWW, PROJECTS])
    assert changed == 1 and shown == {"h1-backup-projects": "resume"}, out[-3000:]
    code = [c["uuid"] for c in hc.checks() if c["name"] == "h1-backup-projects"][0]
    assert writes(hc) == [("POST", "/api/v3/checks/%s/resume" % code)]
    assert set(statuses(hc).values()) == {"new"}
    hc.clear_requests()
    changed, shown, out = rollout(tmp_path, hc, [WWW, PROJECTS])
    assert changed == 0 and shown is None and writes(hc) == [], out[-3000:]


def test_checks_kept_paused_on_purpose_stay_paused(tmp_path, hc):
    kept = [WWW, dict(PROJECTS, monitoring="paused")]
    changed, shown, out = rollout(tmp_path, hc, kept, cloud_backup_healthchecks_paused=["forget"])
    assert shown == {"h1-backup-www": "create", "h1-backup-projects": "create, pause", "h1-forget": "create, pause",
                     "h1-check": "create"}, out[-3000:]
    assert statuses(hc) == {"h1-backup-www": "new", "h1-backup-projects": "paused", "h1-forget": "paused", "h1-check": "new"}
    hc.clear_requests()
    changed, shown, out = rollout(tmp_path, hc, kept, cloud_backup_healthchecks_paused=["forget"])
    assert changed == 0 and writes(hc) == [], out[-3000:]
    changed, shown, out = rollout(tmp_path, hc, [WWW, PROJECTS], cloud_backup_healthchecks_paused=["all"])
    assert set(statuses(hc).values()) == {"paused"}
    # the switches taken away: every check is resumed
    changed, shown, out = rollout(tmp_path, hc, [WWW, PROJECTS])
    assert set(statuses(hc).values()) == {"new"} and set(shown.values()) == {"resume"}, out[-3000:]
    # a job name that is not one of the host's is refused before any call
    hc.clear_requests()
    dummy, dummy, out = rollout(tmp_path, hc, [WWW, PROJECTS], ok=False, cloud_backup_healthchecks_paused=["forgett"])
    assert "cloud_backup_healthchecks_paused: 'forgett' is not a job of this host" in out and hc.requests() == []
