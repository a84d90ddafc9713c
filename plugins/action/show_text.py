# -*- coding: utf-8 -*-
# Copyright: (c) 2026, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Action of infn_cloud.backup.show_text: the lines are printed by the controller's display, as they are (the
default callback, the yaml result format and AWX's job log all show them as plain lines), never by a module."""

from __future__ import annotations

from ansible.plugins.action import ActionBase
from ansible.utils.display import Display
from ansible_collections.infn_cloud.backup.plugins.modules.show_text import ARGUMENT_SPEC, split_lines

display = Display()


class ActionModule(ActionBase):
    TRANSFERS_FILES = False
    _requires_connection = False
    _supports_check_mode = True

    def run(self, tmp=None, task_vars=None):
        result = super().run(tmp, task_vars)
        dummy, args = self.validate_argument_spec(argument_spec=ARGUMENT_SPEC)
        lines = split_lines(args["lines"])
        for line in lines:
            display.display(line)
        result.update(changed=False, count=len(lines))
        return result
