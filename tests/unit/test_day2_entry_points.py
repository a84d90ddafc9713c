"""The day-2 operations are entry points of the role (tasks_from), each with its own argument_specs entry; the
playbooks only run them, and copy none of the role's defaults or job model."""

import os
import re

import yaml

from roleinputs import DEFAULTS, ROLE, SPECS

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
PLAYBOOKS = os.path.join(REPO, "playbooks")
# playbook -> the entry point it runs
DAY2 = {"enroll": "enroll", "renew": "renew", "status": "status", "backup_now": "backup_now", "restore": "restore",
        "restore_drill": "drill", "decommission": "decommission"}
ENTRIES = sorted(set(DAY2.values()))


def load(name):
    with open(os.path.join(PLAYBOOKS, name + ".yml")) as handle:
        text = handle.read()
    return text, yaml.safe_load(text)


def role_includes(plays):
    return [t["ansible.builtin.include_role"] for play in plays for t in play.get("tasks", [])
            if "ansible.builtin.include_role" in t]


def test_each_playbook_runs_its_entry_point_and_nothing_else():
    for playbook, entry in DAY2.items():
        text, plays = load(playbook)
        includes = role_includes(plays)
        assert includes and includes[-1] == {"name": "infn_cloud.backup.cloud_backup", "tasks_from": entry}, playbook
        for play in plays:
            assert play["gather_facts"] is False, playbook
            keys = {"name", "hosts", "gather_facts", "tasks"}
            if play["hosts"] == "localhost":  # a check on the controller: local, never become there (no variable else)
                keys |= {"connection", "become", "vars"}
                assert play.get("connection", "local") == "local" and play.get("become") is not True, playbook
                assert not set(play.get("vars") or {}) - {"ansible_become"}, (playbook, play.get("vars"))
            assert not set(play) - keys, (playbook, set(play))
            for task in play["tasks"]:
                module = [k for k in task if k.startswith("ansible.builtin.")]
                # the role, or a check of the request on the controller before any host is named
                assert module in (["ansible.builtin.include_role"], ["ansible.builtin.assert"]), (playbook, task)
                if module == ["ansible.builtin.assert"]:
                    assert play["hosts"] == "localhost", playbook
        # no copy of a role default, no call of the role's job model
        assert not re.search(r"cloud_backup_[a-z_]* *\| *default\(", text), playbook
        assert "infn_cloud.backup.cloud_backup_" not in text, playbook
    assert not os.path.exists(os.path.join(PLAYBOOKS, "tasks")) and not os.path.exists(os.path.join(PLAYBOOKS, "files"))


def test_restore_reads_the_source_host_without_contacting_it():
    dummy, plays = load("restore")
    first = role_includes(plays)[0]
    assert first == {"name": "infn_cloud.backup.cloud_backup", "tasks_from": "day2"}
    assert plays[1]["tasks"][0]["vars"] == {"__cloud_backup_offline": True}
    assert "cloud_backup_restore_from" in plays[1]["hosts"]


def test_each_entry_point_has_its_spec_and_starts_with_the_checks_and_the_model():
    for entry in ENTRIES:
        spec = SPECS[entry]
        assert spec["short_description"] and spec["description"] and spec["options"], entry
        for name in spec["options"]:
            assert name.startswith("cloud_backup_"), (entry, name)
            assert name not in SPECS["main"]["options"], (entry, name)
        with open(os.path.join(ROLE, "tasks", entry + ".yml")) as handle:
            tasks = yaml.safe_load(handle)
        first = tasks[0]
        if entry in ("enroll", "renew"):
            assert first["ansible.builtin.import_tasks"] == "oidc_flow.yml"
            with open(os.path.join(ROLE, "tasks", "oidc_flow.yml")) as handle:
                first = yaml.safe_load(handle)[0]
        assert first["ansible.builtin.import_tasks"] == "day2.yml", entry
    with open(os.path.join(ROLE, "tasks", "day2.yml")) as handle:
        day2 = yaml.safe_load(handle)
    assert "ansible.builtin.validate_argument_spec" in day2[1]
    assert day2[-1]["ansible.builtin.import_tasks"] == "model.yml"


def test_every_day2_variable_has_one_default_in_defaults_and_in_its_entry_points():
    day2 = {name for entry in ENTRIES for name in SPECS[entry]["options"]}
    for name in day2:
        specs = [SPECS[entry]["options"][name] for entry in ENTRIES if name in SPECS[entry]["options"]]
        if any(s.get("required") for s in specs):
            assert name not in DEFAULTS, name
            continue
        assert name in DEFAULTS, name
        assert all(s.get("default") == DEFAULTS[name] for s in specs), name


def test_backup_now_runs_the_schedulers_own_command():
    with open(os.path.join(ROLE, "tasks", "backup_now.yml")) as handle:
        text = handle.read()
    assert 'argv: "{{ item.exec_argv }}"' in text
    assert "selectattr('kind', 'equalto', 'backup')" in text and "__cloud_backup_model.jobs" in text


def test_the_variables_named_in_the_playbook_headers_and_the_renames_exist():
    known = {name for spec in SPECS.values() for name in spec["options"]}
    for playbook in DAY2:
        text, dummy = load(playbook)
        header = "".join(line for line in text.splitlines(True) if line.startswith("#"))
        for name in set(re.findall(r"\bcloud_backup_[a-z_]+[a-z]\b", header)):
            assert name in known, (playbook, name)
    with open(os.path.join(ROLE, "vars", "main.yml")) as handle:
        renamed = yaml.safe_load(handle)["__cloud_backup_day2_renamed"]
    for old, new in renamed.items():
        assert not old.startswith("cloud_backup_")
        for name in re.findall(r"\bcloud_backup_[a-z_]+[a-z]\b", new):
            assert name in known, (old, name)
