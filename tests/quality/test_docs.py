"""The generated references in docs/ match the specs they come from (docs/generate.py), and cover them."""

import os
import shutil
import subprocess
import sys

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
GENERATE = os.path.join(REPO, "docs", "generate.py")
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))


def generate(*args):
    result = subprocess.run([sys.executable, GENERATE] + list(args), cwd=REPO, capture_output=True, text=True, timeout=120)
    return result.returncode, result.stdout + result.stderr


def test_generated_docs_are_up_to_date():
    rc, out = generate("--check")
    assert rc == 0, "docs/ is out of date with the specs (run: python docs/generate.py):\n" + out


def test_the_check_fails_on_stale_docs(tmp_path):
    for name in ("modules.md", "cloud_backup.md"):
        shutil.copy(os.path.join(REPO, "docs", name), tmp_path / name)
    assert generate("--check", "--docs-dir", str(tmp_path))[0] == 0
    page = tmp_path / "cloud_backup.md"
    page.write_text(page.read_text().replace("cloud_backup_restic_password", "cloud_backup_old_name", 1))
    rc, out = generate("--check", "--docs-dir", str(tmp_path))
    assert rc == 1 and "docs/cloud_backup.md" in out and "cloud_backup_restic_password" in out
    (tmp_path / "modules.md").unlink()
    rc, out = generate("--check", "--docs-dir", str(tmp_path))
    assert rc == 1 and "docs/modules.md" in out


def test_every_module_and_option_is_documented():
    text = open(os.path.join(REPO, "docs", "modules.md")).read()
    for module in MODULES:
        assert "## infn_cloud.backup.%s\n" % module in text, module
    # an option that comes from a doc fragment, and one of a module's own suboptions
    assert "| `api_key` |" in text and "| `checks[].state` |" in text and "| `container` |" in text


def test_every_role_variable_is_documented():
    text = open(os.path.join(REPO, "docs", "cloud_backup.md")).read()
    specs = yaml.safe_load(open(os.path.join(REPO, "roles", "cloud_backup", "meta", "argument_specs.yml")))
    for name in specs["argument_specs"]["main"]["options"]:
        assert "| `%s` |" % name in text, name


def test_the_guide_and_the_playbooks_it_names_exist():
    guide = open(os.path.join(REPO, "docs", "from-zero.md")).read()
    for playbook in ("site", "enroll", "status", "backup_now", "restore", "restore_drill", "decommission"):
        assert "infn_cloud.backup.%s" % playbook in guide, playbook
        assert os.path.exists(os.path.join(REPO, "playbooks", playbook + ".yml")), playbook
