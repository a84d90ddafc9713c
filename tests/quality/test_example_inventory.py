"""The example inventory is one a real administrator could copy: it decrypts with its (example-only)
vault password and every host's variables pass the role's own checks."""

import json
import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

PLAY = """
- hosts: cloud_backup
  gather_facts: false
  tasks:
    - name: Check the host's variables like the role's preflight does
      ansible.builtin.set_fact:
        problems: >-
          {{ (lookup('ansible.builtin.template', defaults) | from_yaml)
             | combine(dict(query('ansible.builtin.varnames', '^cloud_backup_')
                            | zip(query('ansible.builtin.vars', *query('ansible.builtin.varnames', '^cloud_backup_')))))
             | infn_cloud.backup.cloud_backup_problems }}
      delegate_to: localhost
    - name: Report
      ansible.builtin.debug:
        msg: "PROBLEMS {{ inventory_hostname }} {{ problems | to_json }}"
"""


def test_example_inventory_is_valid(tmp_path):
    play = tmp_path / "check.yml"
    play.write_text(PLAY)
    defaults = os.path.join(REPO, "roles", "cloud_backup", "defaults", "main.yml")
    result = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/example", str(play),
         "--vault-password-file", "tests/example-vault-password", "-e", "defaults=" + defaults,
         "-e", "ansible_connection=local", "-e", "ansible_python_interpreter=" + sys.executable],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = [line for line in result.stdout.splitlines() if '"msg": "PROBLEMS ' in line]
    assert len(reports) == 4, result.stdout
    for line in reports:
        host, problems = line.split('"msg": "PROBLEMS ', 1)[1].rstrip('"').split(" ", 1)
        assert json.loads(problems.replace('\\"', '"')) == [], (host, problems)


def test_vault_is_encrypted():
    with open(os.path.join(REPO, "inventories", "example", "group_vars", "all", "vault.yml")) as handle:
        assert handle.readline().startswith("$ANSIBLE_VAULT;1.1;AES256")
