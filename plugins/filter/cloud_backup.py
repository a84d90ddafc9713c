# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the cloud_backup role: thin wrappers around the host model and the input validator
(plugins/plugin_utils/_model.py and _validate.py), which hold the logic."""

from __future__ import annotations

import hashlib
import os

from ansible.errors import AnsibleFilterError

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model, _validate


def _context_digest(path):
    """sha256 of every file of the image's build context (names and contents), in a stable order."""
    digest = hashlib.sha256()
    for root, dirs, files in os.walk(path):
        dirs.sort()
        for name in sorted(files):
            full = os.path.join(root, name)
            digest.update(os.path.relpath(full, path).encode() + b"\0")
            with open(full, "rb") as handle:
                digest.update(handle.read())
    return digest.hexdigest()


def cloud_backup_host_timezone(readlink):
    """The host's zone from `readlink /etc/localtime` (.../zoneinfo/Europe/Rome -> Europe/Rome); UTC aliases as UTC."""
    text = str(readlink or "").strip()
    zone = text.split("zoneinfo/", 1)[1] if "zoneinfo/" in text else ""
    return "UTC" if zone in _validate.UTC_NAMES or not zone else zone


def cloud_backup_problems(v, host_timezone=None):
    """Every problem of a host's input, as messages naming the variable (empty list: all good)."""
    try:
        return _validate.problems(v) + _validate.host_problems(v, host_timezone)
    except (KeyError, TypeError, ValueError) as exc:
        raise AnsibleFilterError("cloud_backup input could not be checked (%s): %s" % (type(exc).__name__, exc))


def cloud_backup_model(inputs):
    """The host model from {vars, host, groups, host_timezone, now, image_context} (see _model.host_model)."""
    context = inputs.get("image_context")
    digest = _context_digest(context) if context else ""
    return _model.host_model(inputs["vars"], inputs["host"], inputs.get("groups") or [], inputs.get("host_timezone"),
                             inputs.get("now") or 0, digest)


def cloud_backup_dotenv(model, checks=None):
    """The stack's .env text from the model and the checks returned by healthchecks_checks."""
    try:
        return _model.dotenv(model, checks)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


def cloud_backup_secret_files(model, checks=None):
    """The files of the stack's secrets directory, [{name, value, restart}] (see _model.secret_files)."""
    return _model.secret_files(model, checks)


def cloud_backup_stack_files(model, checks=None, rendered=None):
    """Every directory and file of the stack, for one stack_files call (see _model.stack_files)."""
    try:
        return _model.stack_files(model, checks, rendered)
    except ValueError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule:
    def filters(self):
        return {
            "cloud_backup_host_timezone": cloud_backup_host_timezone,
            "cloud_backup_problems": cloud_backup_problems,
            "cloud_backup_model": cloud_backup_model,
            "cloud_backup_dotenv": cloud_backup_dotenv,
            "cloud_backup_secret_files": cloud_backup_secret_files,
            "cloud_backup_stack_files": cloud_backup_stack_files,
        }
