#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: healthchecks_checks
short_description: Ensure many Healthchecks checks at once, and pause or delete the orphans
version_added: 0.1.0
description:
  - Ensures a list of checks of one Healthchecks project with a single C(GET checks/) call for the whole list
    (plus one C(GET channels/) when some channel is given by name or as V(*), or by UUID when something is to be
    written), then writes only what differs. Rerunning with nothing changed makes no write call and at most two
    requests.
  - Each entry of O(checks) takes the options of M(infn_cloud.backup.healthchecks_check), with its own O(checks[].state);
    checks are compared and written exactly as that module does (it is a thin wrapper over the same code).
  - Checks on the server that carry every tag of O(orphan_tags) but are not named in O(checks) are orphans;
    O(orphan_state) leaves them alone, pauses them or deletes them (so removing a backup source from the
    inventory pauses or removes its check). Listed again with O(checks[].state=active), a paused orphan is resumed
    (the source put back is monitored again).
  - Every entry is validated before any API call (fields, time zones the server accepts, duplicates), and its
    channels against the project before the first write; a bad entry fails naming the entry and the field, with
    nothing written. A failure part-way (an error of the server) reports what was already written.
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
  checks:
    description:
      - The checks to ensure. Each needs the field named by O(key), unique within the list.
    type: list
    elements: dict
    required: true
    suboptions:
      state:
        description:
          - V(present) creates the check or updates the fields given (a paused check stays paused until its next ping).
          - V(active) does the same, then resumes the check if it is paused, so that it alerts again when its job stops
            pinging (for example the check of a source put back in the inventory after its removal paused it).
          - V(paused) does the same, then pauses the check unless it is already paused.
          - V(absent) deletes the check if it exists.
        type: str
        choices: [present, absent, paused, active]
        default: present
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
          - Mutually exclusive with O(checks[].schedule).
        type: int
      grace:
        description:
          - Grace time in seconds after a missed ping before the check goes down, from 60 to 31536000.
        type: int
      schedule:
        description:
          - Cron expression with 5 fields (minute hour day month weekday) or a systemd OnCalendar expression,
            at most 100 characters; makes the check a cron one. Six-field expressions with seconds are refused.
          - Mutually exclusive with O(checks[].timeout).
        type: str
      tz:
        description:
          - IANA time zone of O(checks[].schedule), for example V(Europe/Rome). Needs O(checks[].schedule).
          - Compared as a zone of the IANA database, not as a string. A legacy name and the zone it links to are
            equal (V(CET) and V(Europe/Brussels), V(Europe/Kiev) and V(Europe/Kyiv)); Healthchecks v4 stores such a
            name under the current zone, and the module then reports no change and warns once that the name is a
            legacy alias.
          - A name unknown to the time zone database of the Python that runs the module, or one of its names that is
            no zone and that the server refuses (V(Factory), V(localtime), V(posix/...)), fails before any API call.
        type: str
      channels:
        description:
          - Integrations to notify, by exact name or UUID; V(["*"]) means all integrations of the project, V([]) none.
          - Names and V(*) are resolved with one C(GET channels/) call for the whole list; UUIDs are checked with
            that call too when something is to be written. An unknown name or UUID fails before anything is written.
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
  key:
    description:
      - Which field identifies a check within the project. It must be unique there; duplicates make the module fail.
    type: str
    choices: [name, slug]
    default: name
  orphan_tags:
    description:
      - Tags that mark the checks this list owns, for example V([web01, infn-backup]). A check carrying all of
        them that is not in O(checks) is an orphan. Required (non-empty) unless O(orphan_state=keep).
      - Each tag is one word without spaces.
    type: list
    elements: str
    default: []
  orphan_state:
    description:
      - What to do with orphans, V(keep) them, pause them (V(paused)) or delete them (V(absent)).
    type: str
    choices: [keep, paused, absent]
    default: keep
"""

EXAMPLES = r"""
- name: Ensure the checks of one host, pausing those of sources removed from the inventory
  infn_cloud.backup.healthchecks_checks:
    api_url: https://hc.cloud.infn.it
    api_key: "{{ vault_healthchecks_api_key }}"
    checks:
      - name: "{{ inventory_hostname }}-backup-home"
        state: active  # resumed if it was paused
        tags: ["{{ inventory_hostname }}", infn-backup, webservers]
        schedule: "30 2 * * *"
        tz: Europe/Rome
        grace: 3600
        channels: [ops-email]
      - name: "{{ inventory_hostname }}-refresh-token"
        tags: ["{{ inventory_hostname }}", infn-backup, webservers]
        timeout: 86400
        grace: 43200
        channels: ["*"]
    orphan_tags: ["{{ inventory_hostname }}", infn-backup]
    orphan_state: paused
  delegate_to: localhost
  register: hc
  no_log: true  # the result holds the ping URLs

- name: Hand the ping URL of the home backup to the host
  ansible.builtin.copy:
    content: "{{ hc.checks[inventory_hostname ~ '-backup-home'].ping_url }}\n"
    dest: /etc/infn-backup/ping-home.url
    mode: "0600"
  no_log: true
"""

RETURN = r"""
checks:
  description:
    - Each check of O(checks) that is not absent, by its key (name or slug), as the server returned it, including
      C(ping_url) (a secret). In check mode, the predicted check (no C(uuid) nor C(ping_url) for one to be created).
  returned: always
  type: dict
  sample:
    web01-backup-home:
      name: web01-backup-home
      tags: web01 infn-backup webservers
      schedule: 30 2 * * *
      tz: Europe/Rome
      grace: 3600
      status: up
      uuid: 5d6c4a2e-8b4f-4e8e-9b0a-6f1d2c3b4a59
      ping_url: https://hc-ping.example.org/5d6c4a2e-8b4f-4e8e-9b0a-6f1d2c3b4a59
results:
  description: One entry per check of O(checks), in order, then one per orphan acted on.
  returned: always
  type: list
  elements: dict
  contains:
    name:
      description: The check's key (name or slug; the UUID for an orphan without one).
      type: str
    actions:
      description: API writes made (or that would be made in check mode), among V(create), V(update), V(pause), V(resume),
        V(delete).
      type: list
      elements: str
    changed:
      description: Whether anything was (or would be) written for this check.
      type: bool
    changed_fields:
      description: Managed fields that differed and were sent.
      type: list
      elements: str
    orphan:
      description: Whether the check was acted on as an orphan.
      type: bool
  sample:
    - name: web01-backup-home
      actions: [update]
      changed: true
      changed_fields: [grace]
      orphan: false
    - name: web01-backup-old
      actions: [pause]
      changed: true
      changed_fields: []
      orphan: true
api_requests:
  description: HTTP requests made to the API (retries included).
  returned: always
  type: int
  sample: 1
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.infn_cloud.backup.plugins.module_utils._healthchecks import (
    CheckManager, HealthchecksError, check_argument_spec, client_from_params, connection_argument_spec)


def main():
    spec = dict(
        connection_argument_spec(),
        checks=dict(type="list", elements="dict", required=True, options=check_argument_spec()),
        key=dict(type="str", default="name", choices=["name", "slug"]),
        orphan_tags=dict(type="list", elements="str", default=[]),
        orphan_state=dict(type="str", default="keep", choices=["keep", "paused", "absent"]),
    )
    module = AnsibleModule(argument_spec=spec, supports_check_mode=True)
    params, manager = module.params, None
    try:
        manager = CheckManager(client_from_params(params), params["key"], module.check_mode)
        manager.ensure(params["checks"], params["orphan_tags"], params["orphan_state"])
    except HealthchecksError as e:
        module.fail_json(msg=str(e), status=e.status, server_message=e.server_message,
                         changed=bool(manager and manager.changed),
                         results=[dict((k, r[k]) for k in ("name", "actions", "orphan")) for r in manager.results]
                         if manager else [])
    for warning in manager.warnings:
        module.warn(warning)
    results = manager.results
    out = dict(
        changed=manager.changed,
        checks=dict((r["name"], r["check"]) for r in results if not r["orphan"] and r["check"] is not None),
        results=[dict((k, r[k]) for k in ("name", "actions", "changed", "changed_fields", "orphan")) for r in results],
        api_requests=manager.client.requests,
    )
    if module._diff:
        changed = [r for r in results if r["changed"]]
        out["diff"] = dict(before=dict((r["name"], r["before"]) for r in changed),
                           after=dict((r["name"], r["after"]) for r in changed))
    module.exit_json(**out)


if __name__ == "__main__":
    main()
