#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: show_text
short_description: Show lines of text in the play's output as they are, such as a table
version_added: 0.1.0
description:
  - Prints each line of O(lines) on the controller, as it is, before the task's result line. A table stays aligned
    and readable in a terminal and in an AWX job log, whatever the callback's result format, instead of a JSON list
    of quoted strings as M(ansible.builtin.debug) prints it.
  - The text is printed by the controller (an action plugin); the module only checks its options.
  - Never give it secrets; unlike a task result, the text is not hidden by C(no_log).
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: The text is printed in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: all
options:
  lines:
    description:
      - The lines to print, in order. An item holding line breaks is printed as several lines.
    type: list
    elements: str
    required: true
"""

EXAMPLES = r"""
- name: Show the fleet's status as a table
  infn_cloud.backup.show_text:
    lines:
      - "HOST  VERDICT"
      - "web01 ok"
      - "web02 late"
  run_once: true
"""

RETURN = r"""
count:
  description: How many lines were printed.
  returned: always
  type: int
  sample: 3
"""

from ansible.module_utils.basic import AnsibleModule

ARGUMENT_SPEC = dict(lines=dict(type="list", elements="str", required=True))


def split_lines(lines):
    """Every line to print: each item split at its line breaks."""
    return [part for line in lines for part in (str(line).splitlines() or [""])]


def main():
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    module.exit_json(changed=False, count=len(split_lines(module.params["lines"])))


if __name__ == "__main__":
    main()
