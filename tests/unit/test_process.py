"""run_bounded: the one bounded subprocess call of the restic and oidc-agent runners."""

import os
import sys
import time

import pytest

from ansible_collections.infn_cloud.backup.plugins.module_utils._process import run_bounded


def test_output_stdin_and_exit_status():
    rc, out, err = run_bounded(["sh", "-c", "cat; echo oops >&2; exit 3"], dict(os.environ), 10, stdin="in put")
    assert (rc, out, err) == (3, "in put", "oops\n")


def test_no_stdin_means_dev_null():
    rc, out, dummy = run_bounded(["sh", "-c", "cat; echo done"], dict(os.environ), 10)
    assert (rc, out) == (0, "done\n")


def test_terminated_at_the_limit_is_124():
    started = time.monotonic()
    rc, dummy, dummy = run_bounded(["sleep", "30"], dict(os.environ), 0.5, kill_after=5)
    assert rc == 124 and time.monotonic() - started < 5


def test_killed_when_it_ignores_sigterm_is_137():
    started = time.monotonic()
    ignores_term = "import signal, sys, time; signal.signal(signal.SIGTERM, signal.SIG_IGN); print('up', flush=True); time.sleep(30)"
    rc, out, dummy = run_bounded([sys.executable, "-c", ignores_term], dict(os.environ), 1, kill_after=0.5)
    assert out == "up\n"
    assert rc == 137 and time.monotonic() - started < 10


def test_missing_program_is_left_to_the_caller():
    with pytest.raises(OSError):
        run_bounded(["/nonexistent/tool"], dict(os.environ), 5)
