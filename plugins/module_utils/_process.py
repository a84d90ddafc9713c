# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What the runners of restic (_restic.py) and oidc-agent (_oidc_agent.py) share: the checks of the container
they exec into, and one bounded subprocess call. They build the argv (``docker exec ...`` or the local tool) and
the environment holding the secrets; run_bounded runs it with a time limit and never puts anything on the argv."""

from __future__ import annotations

import re
import signal
import subprocess

KILL_AFTER = 5
CONTAINER = re.compile(r'^[A-Za-z0-9][A-Za-z0-9_.-]*$')
CONTAINER_USER = re.compile(r'^[A-Za-z0-9_][A-Za-z0-9_.$-]*(:[A-Za-z0-9_][A-Za-z0-9_.$-]*)?$')
CONTROL = re.compile(r'[\x00-\x1f\x7f]')


def container_problems(container, container_user):
    """What is wrong with the container and user a runner would `docker exec` into (checked before any call)."""
    problems = []
    if container and not CONTAINER.match(container):
        problems.append('container %r is not a container name or id' % container)
    if container_user and not CONTAINER_USER.match(container_user):
        problems.append('container_user %r must be a user or uid, optionally :group or :gid' % container_user)
    return problems


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
