"""Lint and sanity: yamllint, ansible-lint (production profile), ansible-test sanity, a galaxy build
that installs, and ansible-doc for every module. Each runs the real tool; a finding fails the test."""

import os
import shutil
import subprocess
import sys
import tarfile

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))


def run(argv, cwd=REPO, env=None, timeout=1800):
    result = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout)
    return result.returncode, result.stdout + result.stderr


def test_yamllint():
    rc, out = run([os.path.join(BIN, "yamllint"), "-s", "."])
    assert rc == 0, out


def test_ansible_lint_production_profile():
    rc, out = run([os.path.join(BIN, "ansible-lint"), "--offline", "--profile", "production", "-q"])
    assert rc == 0, out


@pytest.fixture(scope="module")
def installed_collection(tmp_path_factory):
    """The collection as users get it: built by ansible-galaxy, then installed from the tarball."""
    tmp = tmp_path_factory.mktemp("galaxy")
    rc, out = run([os.path.join(BIN, "ansible-galaxy"), "collection", "build", "--force", "--output-path", str(tmp), "."])
    assert rc == 0, out
    version = yaml.safe_load(open(os.path.join(REPO, "galaxy.yml")))["version"]
    tarball = tmp / ("infn_cloud-backup-%s.tar.gz" % version)
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
    assert "roles/cloud_backup/tasks/main.yml" in names
    assert "roles/cloud_backup/files/image/Dockerfile" in names
    assert not [n for n in names if n.startswith(("tests/", "lab/", "molecule/", ".cache"))]
    rc, out = run([os.path.join(BIN, "ansible-galaxy"), "collection", "install", "--force", "--no-deps",
                   "-p", str(tmp / "install"), str(tarball)])
    assert rc == 0, out
    return tmp / "install"


def test_ansible_doc_every_module(installed_collection):
    env = dict(os.environ, ANSIBLE_COLLECTIONS_PATH=str(installed_collection))
    assert MODULES, "no modules found"
    for module in MODULES:
        rc, out = run([os.path.join(BIN, "ansible-doc"), "-t", "module", "infn_cloud.backup." + module], env=env)
        assert rc == 0 and "EXAMPLES:" in out and "RETURN VALUES:" in out, out
    rc, out = run([os.path.join(BIN, "ansible-doc"), "-t", "role", "infn_cloud.backup.cloud_backup"], env=env)
    assert rc == 0 and "cloud_backup_restic_password" in out, out


def test_ansible_test_sanity(installed_collection):
    """validate-modules (docs match the argument spec), pep8, pylint, ansible-doc, yamllint, ...

    ansible-test bootstraps pip in its venvs from a host that is unreachable here; an offline
    equivalent (ensurepip, then pip from the index) is put in its cache first.
    """
    cache = os.path.expanduser("~/.ansible/test/cache")
    os.makedirs(cache, exist_ok=True)
    shutil.copy(os.path.join(REPO, "tests", "sanity", "get_pip_offline.py"), os.path.join(cache, "get_pip_24_2.py"))
    root = installed_collection / "ansible_collections" / "infn_cloud" / "backup"
    rc, out = run([os.path.join(BIN, "ansible-test"), "sanity", "--venv", "--python", "%d.%d" % sys.version_info[:2],
                   "--color", "no"], cwd=str(root), env=dict(os.environ, PATH=BIN + os.pathsep + os.environ["PATH"]))
    assert rc == 0, out[-6000:]
