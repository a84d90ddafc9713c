"""The status entry point (playbooks/status.yml) end to end on the controller, without the lab: two hosts reached
with the local connection, whose `docker` is a fake answering as a running stack with a fresh snapshot, and the
fake Healthchecks server in this process holding their checks. It proves the issue-17 behaviour of the real role:

- a job of the inventory whose check is paused makes its host `unmonitored` (the job named), a check of a removed
  source is listed apart as retired and does not count, a job kept paused on purpose is shown as such;
- the table is printed as plain aligned lines (show_text), not as a JSON list of quoted strings;
- the failing hosts are summed up once: one failure for the play (exit status 2), not one per host."""
from __future__ import annotations

import datetime as dt
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

FAKE_DOCKER = r'''#!%(python)s
"""Fake docker: the stack runs, its repository holds one snapshot an hour old of the source www."""
import datetime as dt, json, sys
args = sys.argv[1:]
if args[:1] == ["compose"]:
    print(json.dumps({"Name": "cloud-backup", "Service": "cloud-backup", "State": "running"}))
elif "snapshots" in args:
    host = args[args.index("--host") + 1] if "--host" in args else "?"
    when = (dt.datetime.now(dt.timezone.utc) - dt.timedelta(hours=1)).strftime("%%Y-%%m-%%dT%%H:%%M:%%S.000000000Z")
    print(json.dumps([{"id": "ab" * 32, "short_id": "abababab", "time": when, "hostname": host,
                       "paths": ["/backup/www"], "tags": ["www"], "summary": {"total_bytes_processed": 4096}}]))
elif "stats" in args:
    print(json.dumps({"total_size": 2048}))
else:
    sys.exit("fake docker: unexpected call %%s" %% args)
'''


@pytest.fixture
def fleet(tmp_path):
    with FakeHealthchecks() as hc:
        bindir = tmp_path / "bin"
        bindir.mkdir()
        docker = bindir / "docker"
        docker.write_text(FAKE_DOCKER % dict(python=sys.executable))
        docker.chmod(0o755)
        common = {
            "ansible_connection": "local", "ansible_python_interpreter": sys.executable,
            "cloud_backup_restic_password": "a long real secret", "cloud_backup_rest_password": "another-real-secret",
            "cloud_backup_destination": {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "b",
                                         "access_key_id": "AKIAREAL", "secret_access_key": "s3-secret-real"},
            "cloud_backup_healthchecks_api_url": hc.url, "cloud_backup_healthchecks_api_key": hc.api_key,
        }
        hosts = {}
        for host in ("h1", "h2"):
            (tmp_path / host).mkdir()
            hosts[host] = dict(common, cloud_backup_project_dir=str(tmp_path / host),
                               cloud_backup_sources=[{"name": "www", "path": "/srv/www"}])
        # h1 keeps its forget check paused on purpose and once had a source "old" (its check paused when removed)
        hosts["h1"]["cloud_backup_healthchecks_paused"] = ["forget"]
        (tmp_path / "hosts.yml").write_text(json.dumps({"all": {"children": {"cloud_backup": {"hosts": hosts}}}}))
        for host in ("h1", "h2"):
            for job in ("backup-www", "forget", "check", "backup-old"):
                if host == "h2" and job == "backup-old":
                    continue
                code = hc.add_check(name="%s-%s" % (host, job), tags="cloud-backup host-%s" % host)
                paused = (host, job) in (("h1", "forget"), ("h1", "backup-old"), ("h2", "backup-www"))
                hc.projects[0]["checks"][code].update(status="paused" if paused else "up",
                                                      last_ping=dt.datetime.now(dt.timezone.utc))
        yield tmp_path, bindir


def status(tmp_path, bindir):
    env = dict(os.environ, ANSIBLE_NOCOLOR="1", ANSIBLE_FORCE_COLOR="0", PATH=str(bindir) + os.pathsep + os.environ["PATH"])
    proc = subprocess.run([os.path.join(BIN, "ansible-playbook"), "-i", str(tmp_path / "hosts.yml"), "playbooks/status.yml",
                           "-e", "cloud_backup_status_json=%s" % (tmp_path / "status.json"),
                           "-e", "cloud_backup_status_html=%s" % (tmp_path / "status.html")],
                          cwd=REPO, env=env, capture_output=True, text=True, timeout=300, check=False)
    rows = json.loads((tmp_path / "status.json").read_text())["hosts"] if (tmp_path / "status.json").exists() else []
    return proc.returncode, proc.stdout + proc.stderr, {row["host"]: row for row in rows}


def test_a_paused_check_makes_its_host_unmonitored_and_the_table_is_plain(fleet):
    rc, out, rows = status(*fleet)
    assert rc == 2, out[-4000:]
    assert rows["h1"]["verdict"] == "ok", rows["h1"]
    assert rows["h1"]["checks_text"] == "backup-www:up forget:paused(kept) check:up; retired: backup-old (paused)"
    assert rows["h2"]["verdict"] == "unmonitored"
    assert rows["h2"]["reasons"] == ["check backup-www is paused: roll out to resume it"]
    # the table: plain aligned lines, one per host, then the summary; no JSON quoting
    header = re.search(r"^HOST\s+DESTINATION\s.*VERDICT$", out, re.M)
    assert header, out[-4000:]
    table = out[header.start():].splitlines()
    assert re.match(r"^h1\s+s3:https://s3\.example\.org/b/h1\s.*\sok$", table[1]), table[:4]
    assert re.match(r"^h2\s+s3:https://s3\.example\.org/b/h2\s.*\sunmonitored$", table[2]), table[:4]
    assert table[1].index("ok") == table[2].index("unmonitored") == table[0].index("VERDICT")
    assert table[3:5] == ["2 host(s), 1 ok, 1 not ok", "h2: unmonitored: check backup-www is paused: roll out to resume it"]
    assert '"HOST' not in out and '"h2: unmonitored' not in out
    # one failure for the fleet, on the host that is not ok, naming every host that is not ok
    assert out.count("fatal: ") == 1 and out.count("[ERROR]") == 1, out[-4000:]
    assert re.search(r"fatal: \[h2\]: FAILED! .*1 of 2 host\(s\) not ok: h2 unmonitored", out), out[-4000:]
    assert re.search(r"^h1\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=0", out, re.M), out[-6000:]
    assert re.search(r"^h2\s+: ok=\d+\s+changed=\d+\s+unreachable=0\s+failed=1", out, re.M)


def test_every_host_ok_passes(fleet):
    tmp_path, bindir = fleet
    inventory = json.loads((tmp_path / "hosts.yml").read_text())
    inventory["all"]["children"]["cloud_backup"]["hosts"]["h2"]["cloud_backup_sources"][0]["monitoring"] = "paused"
    (tmp_path / "hosts.yml").write_text(json.dumps(inventory))
    rc, out, rows = status(tmp_path, bindir)
    assert rc == 0, out[-4000:]
    assert {h: r["verdict"] for h, r in rows.items()} == {"h1": "ok", "h2": "ok"}
    assert rows["h2"]["checks_text"] == "backup-www:paused(kept) forget:up check:up"
    assert "fatal: " not in out and "2 host(s), 2 ok, 0 not ok" in out.splitlines()
