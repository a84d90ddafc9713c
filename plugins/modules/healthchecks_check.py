#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: healthchecks_check
short_description: Create, update, pause or delete one Healthchecks check
version_added: 0.1.0
description:
  - Ensures one check of a Healthchecks project through the Management API v3 (U(https://healthchecks.io/docs/api/)).
  - The check is found by its O(name) (or O(slug) with O(key=slug)) in the project's list of checks, read with
    one API call. Only the fields given are managed; they are compared normalised (tags as a set, channels as
    UUIDs, the time zone canonical, the schedule without extra whitespace) and only the differences are sent,
    with C(POST checks/<uuid>) to the check found. A missing check is created with C(POST checks/) carrying
    C(unique=[<key>]), so a retried or concurrent create updates the first copy instead of adding a duplicate.
  - Every field is validated before any API call.
  - Use M(infn_cloud.backup.healthchecks_checks) to ensure many checks with the same single list call.
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - infn_cloud.backup.healthchecks
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
  platform:
    platforms: all
options:
  state:
    description:
      - V(present) creates the check or updates the fields given. It does not resume a paused check (a paused
        check returns to up on its next ping unless O(manual_resume) is set).
      - V(active) does the same, then resumes the check if it is paused (C(POST checks/<uuid>/resume)), so that it
        alerts again when its job stops pinging. A check resumed by a ping meanwhile is left as it is.
      - V(paused) does the same, then pauses the check unless it is already paused.
      - V(absent) deletes the check if it exists.
      - With V(active) and V(paused) the pause is compared like the other fields (C(paused) in the diff).
    type: str
    choices: [present, absent, paused, active]
    default: present
  key:
    description:
      - Which field identifies the check within the project. It must be unique there; duplicates make the module fail.
    type: str
    choices: [name, slug]
    default: name
  name:
    description:
      - Name of the check (at most 100 characters). Required with O(key=name).
    type: str
  slug:
    description:
      - Slug of the check (at most 100 characters of V(a-z), V(0-9), V(-) and V(_)). Required with O(key=slug).
    type: str
  tags:
    description:
      - Tags of the check, compared as a set. Each tag is one word without spaces. V([]) removes all tags.
    type: list
    elements: str
  desc:
    description:
      - Description of the check.
    type: str
  timeout:
    description:
      - Expected period between pings in seconds, from 60 to 31536000; makes the check a simple one.
      - Mutually exclusive with O(schedule).
    type: int
  grace:
    description:
      - Grace time in seconds after a missed ping before the check goes down, from 60 to 31536000.
    type: int
  schedule:
    description:
      - Cron expression with 5 fields (minute hour day month weekday) or a systemd OnCalendar expression, at most
        100 characters; makes the check a cron one. Six-field expressions with seconds (as ofelia writes them) are refused.
      - Mutually exclusive with O(timeout).
    type: str
  tz:
    description:
      - IANA time zone of O(schedule), for example V(Europe/Rome). Needs O(schedule).
      - Compared as a zone of the IANA database, not as a string. A legacy name and the zone it links to are equal
        (V(CET) and V(Europe/Brussels), V(US/Eastern) and V(America/New_York), V(Europe/Kiev) and V(Europe/Kyiv));
        Healthchecks v4 stores such a name under the current zone (v3 only some of them), and the module then reports
        no change and warns that the name is a legacy alias.
      - A name unknown to the time zone database of the Python that runs the module, or one of its names that is no
        zone and that the server refuses (V(Factory), V(localtime), V(posix/...)), fails before any API call.
    type: str
  channels:
    description:
      - Integrations to notify, by exact name or UUID; V(["*"]) means all integrations of the project, V([]) none.
      - Names and V(*) are resolved with one C(GET channels/) call (read-write key); UUIDs are checked with that
        call too when something is to be written. A name or UUID that does not exist fails before anything is written.
    type: list
    elements: str
  methods:
    description:
      - Allowed ping methods, V("") for HEAD, GET and POST, V(POST) for POST only.
    type: str
    choices: ["", POST]
  manual_resume:
    description:
      - Whether a paused check stays paused when pinged, until resumed by hand.
    type: bool
  start_kw:
    description:
      - Comma-separated keywords that classify an email or ping body as a start signal.
    type: str
  success_kw:
    description:
      - Comma-separated keywords that classify an email or ping body as a success signal.
    type: str
  failure_kw:
    description:
      - Comma-separated keywords that classify an email or ping body as a failure signal.
    type: str
  filter_subject:
    description:
      - Look for the keywords in the subject of inbound emails.
    type: bool
  filter_body:
    description:
      - Look for the keywords in the body of inbound emails.
    type: bool
"""

EXAMPLES = r"""
- name: Monitor the nightly backup of web01
  infn_cloud.backup.healthchecks_check:
    api_url: https://hc.cloud.infn.it
    api_key: "{{ vault_healthchecks_api_key }}"
    name: web01-backup-home
    tags: [web01, backup, webservers]
    schedule: "30 2 * * *"
    tz: Europe/Rome
    grace: 3600
    channels: [ops-email]
  delegate_to: localhost
  register: backup_check
  no_log: true  # the result holds the ping URL

- name: Pause the check of a retired source, keyed by slug
  infn_cloud.backup.healthchecks_check:
    api_url: https://healthchecks.io
    key: slug
    slug: web01-backup-old
    state: paused
  delegate_to: localhost

- name: Remove a check
  infn_cloud.backup.healthchecks_check:
    api_url: https://hc.example.org/hc
    name: web01-backup-tmp
    state: absent
  delegate_to: localhost
"""

RETURN = r"""
check:
  description:
    - The check as the server returned it (the last write's answer, or the listed check when nothing changed),
      including C(ping_url), which is a secret.
    - In check mode, the predicted check (no C(uuid) nor C(ping_url) for a check that would be created).
    - Absent after O(state=absent).
  returned: when O(state) is V(present), V(active) or V(paused)
  type: dict
  sample:
    name: web01-backup-home
    slug: ""
    tags: web01 backup webservers
    grace: 3600
    schedule: 30 2 * * *
    tz: Europe/Rome
    status: new
    uuid: 5d6c4a2e-8b4f-4e8e-9b0a-6f1d2c3b4a59
    ping_url: https://hc-ping.example.org/5d6c4a2e-8b4f-4e8e-9b0a-6f1d2c3b4a59
    channels: 1bdea468-03bf-47b8-ab27-29a9dd0e4b94
actions:
  description: API writes made (or that would be made in check mode), in order, among V(create), V(update), V(pause),
    V(resume), V(delete).
  returned: always
  type: list
  elements: str
  sample: [create, pause]
changed_fields:
  description: Managed fields that differed and were sent.
  returned: always
  type: list
  elements: str
  sample: [grace, tags]
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.infn_cloud.backup.plugins.module_utils._healthchecks import (
    CheckManager, HealthchecksError, check_argument_spec, client_from_params, connection_argument_spec)


def main():
    spec = dict(connection_argument_spec(), key=dict(type="str", default="name", choices=["name", "slug"]),
                **check_argument_spec())
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params, manager = module.params, None
    try:
        manager = CheckManager(client_from_params(params), params["key"], module.check_mode)
        result = manager.ensure([{k: params[k] for k in check_argument_spec()}])[0]
    except HealthchecksError as e:
        module.fail_json(msg=str(e), status=e.status, server_message=e.server_message,
                         changed=bool(manager and manager.changed))
    for warning in manager.warnings:
        module.warn(warning)
    out = dict(changed=result["changed"], actions=result["actions"], changed_fields=result["changed_fields"])
    if result["check"] is not None:
        out["check"] = result["check"]
    if module._diff:
        out["diff"] = dict(before=result["before"], after=result["after"])
    module.exit_json(**out)


if __name__ == "__main__":
    main()
