"""The role's handler conditions, evaluated by ansible-core itself (a local play asserting the handler's own `when`)."""

import json
import os
import subprocess
import sys

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
HANDLERS = yaml.safe_load(open(os.path.join(REPO, "roles", "cloud_backup", "handlers", "main.yml")))


def restart_ofelia_runs(tmp_path, container, recreated):
    """Whether `Restart ofelia` runs when compose's actions recreated the containers RECREATED."""
    (handler,) = [h for h in HANDLERS if h["name"] == "Restart ofelia"]
    model = {"scheduler": "ofelia", "container": container, "ofelia_container": container + "-ofelia",
             "project_dir": "/opt/cloud-backup"}
    stack = {"actions": [{"what": "container", "id": name, "status": "Recreate"} for name in recreated]}
    play = [{"hosts": "localhost", "gather_facts": False, "connection": "local",
             "vars": {"__cloud_backup_model": model, "__cloud_backup_stack": stack},
             "tasks": [{"name": "Evaluate", "ansible.builtin.set_fact": {"runs": True}, "when": handler["when"]}]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(play))
    env = dict(os.environ, ANSIBLE_STDOUT_CALLBACK="json", ANSIBLE_LOCALHOST_WARNING="0")
    out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "ansible-playbook"), str(path),
                          "-e", "ansible_python_interpreter=" + sys.executable],
                         capture_output=True, text=True, env=env, cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    result = json.loads(out.stdout)["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return not result.get("skipped", False)


@pytest.mark.parametrize("container, recreated, runs", [
    ("cloud-backup", [], True),
    ("cloud-backup", ["cloud-backup-ofelia"], False),       # compose just recreated ofelia: it read the new config
    ("cloud-backup", ["cloud-backup"], True),               # only the backup container was recreated
    ("ofelia-backup", ["ofelia-backup"], True),             # a backup container whose name holds "ofelia"
    ("ofelia-backup", ["ofelia-backup-ofelia"], False),
])
def test_ofelia_is_restarted_unless_compose_recreated_that_very_container(tmp_path, container, recreated, runs):
    assert restart_ofelia_runs(tmp_path, container, recreated) is runs
