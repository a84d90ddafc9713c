"""The molecule scenario (molecule/default): create, converge, idempotence, check, verify, destroy."""

import os
import re
import subprocess
import sys

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


def test_molecule_default_scenario():
    molecule = os.path.join(os.path.dirname(sys.executable), "molecule")
    # the VMs' volumes, as the lab's own VMs have them (molecule.yml): the engine directory they start from, the cache
    volumes = subprocess.run(["bash", "lab/lab.sh", "vm-volumes"], cwd=REPO, capture_output=True, text=True, check=True)
    env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", PY_COLORS="0", NO_COLOR="1")
    env.update(line.split("=", 1) for line in volumes.stdout.splitlines())
    result = subprocess.run([molecule, "test", "-s", "default"], cwd=REPO, capture_output=True, text=True, env=env,
                            timeout=2400)
    out = result.stdout + result.stderr
    with open(os.path.join(REPO, ".cache", "molecule.log"), "w") as log:
        log.write(out)
    assert result.returncode == 0, out[-8000:]
    # every step of the sequence ran and succeeded (molecule logs "<scenario> ➜ <step>: Executed: Successful")
    for step in ("converge", "idempotence", "check", "verify"):
        assert re.search(r"\b%s\b.*Executed: Successful" % step, out), "molecule step %s did not succeed:\n%s" % (
            step, out[-3000:])
