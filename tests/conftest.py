"""Make this checkout importable as ansible_collections.infn_cloud.backup for every test."""
import os
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
LINK = os.path.join(COLLECTIONS, "ansible_collections", "infn_cloud", "backup")

if not os.path.islink(LINK):
    os.makedirs(os.path.dirname(LINK), exist_ok=True)
    os.symlink(REPO, LINK)
if COLLECTIONS not in sys.path:
    sys.path.insert(0, COLLECTIONS)
# ansible-playbook / ansible run by the tests find the collection here too.
os.environ.setdefault("ANSIBLE_COLLECTIONS_PATH", COLLECTIONS)


# scripts/test.sh runs the suite with pytest-xdist (--dist loadscope): test modules run side by side, each module's
# tests on one worker, in order (their module-scoped fixtures are set up once). Modules that must not run beside each
# other are one work unit (TOGETHER: the lab tests on the lab's VMs vm1..vm3; the quality checks, which read and build
# the checkout). Units are handed out longest first, so that the run does not end with one long module alone: FIRST
# lists the long ones (measured with --durations), the others (a few seconds each) follow in collection
# order, unit tests last.
TOGETHER = {
    "lab-fleet": ("tests/lab/test_10_bad_input.py", "tests/lab/test_20_rollout.py", "tests/lab/test_30_monitoring.py",
                  "tests/lab/test_60_secrets.py"),
}
FIRST = (
    "lab-fleet", "tests/lab/test_70_faults.py", "tests/lab/test_51_decommission.py", "tests/lab/test_50_day2.py",
    "tests/integration/test_oidc_agent_module.py", "tests/lab/test_80_ssh.py", "tests/lab/test_40_destinations.py",
    "tests/molecule/test_molecule.py", "tests/lab/test_85_status_page.py", "tests/lab/test_42_service_account.py",
    "tests/lab/test_36_timezone.py", "tests/lab/test_37_monitoring_resume.py", "tests/lab/test_25_controller_image.py",
    "tests/integration/test_healthchecks_modules.py", "tests/integration/test_restic_modules.py", "quality",
    "tests/lab/test_41_oidc_infn.py", "tests/lab/test_05_fresh_host.py", "tests/lab/test_90_awx_runner.py",
)


def work_unit(path):
    """The work unit of the test module at PATH (relative to the checkout)."""
    for name, paths in TOGETHER.items():
        if path in paths:
            return name
    return "quality" if path.startswith("tests/quality/") else path


@pytest.hookimpl(tryfirst=True)
def pytest_xdist_make_scheduler(config, log):
    """--dist loadscope with the work units above (pytest-xdist's loadgroup marks no longer reach its scheduler with
    this pytest: it rewrites a node id that pytest 9 computes)."""
    if config.getvalue("dist") != "loadscope":
        return None
    from xdist.scheduler.loadscope import LoadScopeScheduling

    class ModuleUnits(LoadScopeScheduling):
        def _split_scope(self, nodeid):
            return work_unit(nodeid.split("::", 1)[0])

    return ModuleUnits(config, log)


def pytest_collection_modifyitems(config, items):
    """On an xdist worker: the units in the order they are to be handed out (the scheduler keeps the collection's)."""
    if not hasattr(config, "workerinput"):
        return

    def rank(indexed):
        index, item = indexed
        path = os.path.relpath(str(item.path), REPO)
        unit = work_unit(path)
        return (FIRST.index(unit) if unit in FIRST else len(FIRST), path.startswith("tests/unit/"), index)

    items[:] = [item for _, item in sorted(enumerate(items), key=rank)]
