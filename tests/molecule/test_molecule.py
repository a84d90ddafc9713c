"""The molecule scenario (molecule/default): create, converge, idempotence, check, verify, destroy."""

import os
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_molecule_default_scenario():
    molecule = os.path.join(os.path.dirname(sys.executable), "molecule")
    result = subprocess.run([molecule, "test", "-s", "default"], cwd=REPO, capture_output=True, text=True,
                            env=dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1"), timeout=2400)
    out = result.stdout + result.stderr
    with open(os.path.join(REPO, ".cache", "molecule.log"), "w") as log:
        log.write(out)
    assert result.returncode == 0, out[-8000:]
    assert "Idempotence completed successfully" in out or "idempotence" in out.lower(), out[-3000:]
