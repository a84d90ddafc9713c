# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters for ofelia schedules and config values (used by the cloud_backup role)."""

from __future__ import annotations

DOCUMENTATION = r"""
name: ofelia
short_description: ofelia schedule and config helpers
description:
  - C(ofelia_schedule_error) returns why a schedule is not a valid six-field ofelia schedule or descriptor, or an empty string.
  - C(ofelia_to_cron) converts an ofelia schedule to a five-field cron expression (for host cron and Healthchecks).
  - C(ofelia_quote) quotes a value for an ofelia (gcfg) config file.
author: infn_cloud.backup contributors
"""

from ansible.errors import AnsibleFilterError

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _ofelia


def ofelia_schedule_error(spec):
    return _ofelia.schedule_error(spec)


def ofelia_to_cron(spec):
    try:
        return _ofelia.to_cron(spec)
    except _ofelia.ScheduleError as exc:
        raise AnsibleFilterError(str(exc))


def ofelia_quote(value):
    try:
        return _ofelia.quote(value)
    except _ofelia.ConfigError as exc:
        raise AnsibleFilterError(str(exc))


class FilterModule:
    def filters(self):
        return {
            "ofelia_schedule_error": ofelia_schedule_error,
            "ofelia_to_cron": ofelia_to_cron,
            "ofelia_quote": ofelia_quote,
        }
