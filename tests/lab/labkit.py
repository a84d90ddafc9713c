"""Helpers for the lab tests: the lab's VMs (started by lab/lab.sh up), playbook runs, host state."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_INVENTORY = os.path.join(REPO, "inventories", "lab")
BIN = os.path.dirname(sys.executable)


def lab_vms():
    """{inventory name: container name} of the running lab; fails (never skips) when the lab is down."""
    hosts_file = os.path.join(LAB_INVENTORY, "hosts.yml")
    assert os.path.exists(hosts_file), "the lab is not up: run lab/lab.sh up (scripts/test.sh does)"
    hosts = yaml.safe_load(open(hosts_file))["all"]["children"]["cloud_backup"]["hosts"]
    vms = {name: spec["ansible_host"] for name, spec in hosts.items()}
    for container in vms.values():
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", container],
                               capture_output=True, text=True)
        assert state.stdout.strip() == "true", "lab VM %s is not running" % container
    return vms


def vm_exec(container, command, check=True, user=None):
    argv = ["docker", "exec"] + (["-u", user] if user else []) + [container, "sh", "-c", command]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, "%s: %s failed: %s%s" % (container, command, result.stdout, result.stderr)
    return result


def copy_inventory(tmp_path):
    """A private copy of the lab inventory that a test may edit."""
    dest = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, dest)
    return dest


def edit_yaml(path, change):
    data = yaml.safe_load(open(path)) if os.path.exists(path) else {}
    change(data)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)


class Run:
    def __init__(self, rc, out):
        self.rc, self.out = rc, out
        self.recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
                      for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", out, re.M)}

    def changed(self, host):
        return self.recap[host]["changed"]


def playbook(*args, inventory=LAB_INVENTORY, playbook_path="playbooks/site.yml", env=None, timeout=1500):
    """ansible-playbook with the lab inventory (its group_vars) plus any further -i given in args."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), playbook_path] + list(args)
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **(env or {}))
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=full_env, timeout=timeout)
    return Run(result.returncode, result.stdout + result.stderr)


def host_state(containers):
    """What a rollout could change on each VM: the stack's files, cron, containers, images."""
    script = (
        "find /opt/cloud-backup /etc/cron.d /srv/backup-repository -xdev -printf '%p %s %T@ %m %u\\n' 2>/dev/null | sort;"
        "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}' | sort;"
        "docker images -q --no-trunc | sort;"
        "docker volume ls -q | sort"
    )
    return {c: vm_exec(c, script, check=False).stdout for c in containers}


HC_ADMIN = "http://127.0.0.1:58000/_admin"


def hc_pings(check):
    """Every ping the lab's Healthchecks received for the check named CHECK (<host>-<job>), oldest first."""
    with urllib.request.urlopen(HC_ADMIN + "/pings", timeout=10) as res:
        return [p for p in json.load(res)["pings"] if p["check"] == check]
