#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: healthchecks_check_info
short_description: Read the checks of a Healthchecks project
version_added: 0.1.0
description:
  - Lists the checks of a Healthchecks project with one C(GET checks/) call, optionally filtered by name, slug and tags.
  - Works with the project's read-only key; the server then leaves out C(uuid), C(ping_url), the other C(*_url)
    fields and C(channels), and adds C(unique_key).
  - A filter that no check can match (see O(name), O(slug) and O(tags)) fails before any API call.
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - infn_cloud.backup.healthchecks
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The module only reads.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  name:
    description:
      - Only the checks with exactly this name (at most 100 characters, like the names of checks).
    type: str
  slug:
    description:
      - Only the checks with exactly this slug (also sent to the server as a filter); at most 100 characters of
        V(a-z), V(0-9), V(-) and V(_), like the slugs of checks.
    type: str
  tags:
    description:
      - Only the checks that carry all of these tags (also sent to the server as filters). Each tag is one word
        without spaces.
    type: list
    elements: str
"""

EXAMPLES = r"""
- name: Read the backup checks of web01 with the read-only key
  infn_cloud.backup.healthchecks_check_info:
    api_url: https://hc.cloud.infn.it
    api_key: "{{ vault_healthchecks_api_key_readonly }}"
    tags: [web01, infn-backup]
  delegate_to: localhost
  register: web01_checks

- name: Fail when a backup check is down
  ansible.builtin.assert:
    that: web01_checks.checks | selectattr('status', 'equalto', 'down') | list | length == 0
"""

RETURN = r"""
checks:
  description:
    - The matching checks as the server returned them, in the server's order.
    - With a read-write key each has C(uuid), C(ping_url) (a secret) and C(channels); with a read-only key
      each has C(unique_key) instead.
  returned: always
  type: list
  elements: dict
  sample:
    - name: web01-backup-home
      slug: ""
      tags: web01 infn-backup
      desc: ""
      grace: 3600
      n_pings: 12
      status: up
      started: false
      last_ping: "2025-11-20T02:31:05+00:00"
      next_ping: "2025-11-21T02:30:00+00:00"
      manual_resume: false
      methods: ""
      schedule: 30 2 * * *
      tz: Europe/Rome
      unique_key: 124f983e0e3dcaeba921cfcef46efd084576e783
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.infn_cloud.backup.plugins.module_utils._healthchecks import (
    HealthchecksError, client_from_params, connection_argument_spec, field_problems)


def main():
    module = AnsibleModule(
        argument_spec=dict(connection_argument_spec(), name=dict(type="str"), slug=dict(type="str"),
                           tags=dict(type="list", elements="str")),
        supports_check_mode=True,
    )
    name, slug, tags = module.params["name"], module.params["slug"], set(module.params["tags"] or [])
    # A filter no check can match (a name too long, a slug or a tag no check can have) is a mistake, not "none".
    problems = field_problems(dict(name=name, slug=slug, tags=sorted(tags)))
    if problems:
        module.fail_json(msg="; ".join(problems))
    try:
        checks = client_from_params(module.params).list_checks(tags=sorted(tags), slug=slug)
    except HealthchecksError as e:
        module.fail_json(msg=str(e), status=e.status, server_message=e.server_message)
    # The server filters by tag and slug too; filtering again keeps older servers (no ?slug=) exact.
    checks = [c for c in checks if (name is None or c.get("name") == name) and (slug is None or c.get("slug") == slug)
              and tags <= set((c.get("tags") or "").split())]
    module.exit_json(changed=False, checks=checks)


if __name__ == "__main__":
    main()
