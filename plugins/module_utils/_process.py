# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""One bounded subprocess call, shared by the runners of restic (_restic.py) and oidc-agent (_oidc_agent.py):
they build the argv (``docker exec ...`` or the local tool) and the environment holding the secrets; this runs it
with a time limit and never puts anything on the argv itself."""

from __future__ import annotations

import signal
import subprocess

KILL_AFTER = 5


def run_bounded(argv, env, limit, stdin=None, kill_after=KILL_AFTER):
    """Run argv with env; feed stdin (str) if given, else /dev/null. Return (rc, stdout, stderr).

    After ``limit`` seconds the process gets SIGTERM (rc 124), ``kill_after`` seconds later SIGKILL (rc 137).
    OSError (the program cannot be started) is left to the caller, who knows what to call it."""
    proc = subprocess.Popen(argv, env=env, stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, encoding='utf-8', errors='replace')
    try:
        stdout, stderr = proc.communicate(stdin, timeout=limit)
        return proc.returncode, stdout, stderr
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGTERM)
    try:
        stdout, stderr = proc.communicate(timeout=kill_after)
        return 124, stdout, stderr
    except subprocess.TimeoutExpired:
        proc.kill()
        stdout, stderr = proc.communicate()
        return 137, stdout, stderr
