"""The example inventory is one a real administrator could copy: it decrypts with its (example-only)
vault password and every host's variables pass the role's own checks."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)

# The role's own validation and host model (tasks/model.yml), run for every host of the example inventory without
# contacting it (__cloud_backup_offline): nothing here re-implements the role's checks.
PLAY = """
- hosts: cloud_backup
  gather_facts: false
  tasks:
    - name: Validate the host's variables and compute its model, as the role does
      ansible.builtin.include_role:
        name: infn_cloud.backup.cloud_backup
        tasks_from: model
      vars:
        __cloud_backup_offline: true
    - name: Report
      ansible.builtin.debug:
        msg: "MODEL {{ inventory_hostname }} {{ __cloud_backup_model.jobs | map(attribute='name') | join(',') }}"
"""


def test_example_inventory_is_valid(tmp_path):
    play = tmp_path / "check.yml"
    play.write_text(PLAY)
    result = subprocess.run(
        [os.path.join(BIN, "ansible-playbook"), "-i", "inventories/example", str(play),
         "--vault-password-file", "tests/example-vault-password",
         "-e", "ansible_connection=local", "-e", "ansible_python_interpreter=" + sys.executable],
        cwd=REPO, capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    reports = [line for line in result.stdout.splitlines() if '"msg": "MODEL ' in line]
    assert len(reports) == 6, result.stdout
    for line in reports:
        host, jobs = line.split('"msg": "MODEL ', 1)[1].rstrip('"').split(" ", 1)
        assert jobs.split(",")[0].startswith("backup-"), (host, jobs)


def test_vault_is_encrypted():
    with open(os.path.join(REPO, "inventories", "example", "group_vars", "all", "vault.yml")) as handle:
        assert handle.readline().startswith("$ANSIBLE_VAULT;1.1;AES256")
