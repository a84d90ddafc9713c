#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2026, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: stack_files
short_description: Put a set of directories and files in place on a host in one call
version_added: 0.1.0
description:
  - Ensures directories (mode, owner, group), files (content, mode, owner, group) and secret files, removes the files
    named in O(absent) and, in each directory of O(exclusive), every file that is not one of the given files.
  - Everything travels in one module call and is compared on the host, so that a rollout whose files have not changed
    costs one round trip, however many files the stack has (M(ansible.builtin.copy) in a loop costs two per file).
  - Files are replaced atomically (a temporary file in the same directory, renamed over the old one); a file whose
    content, mode and ownership are already right is not touched.
  - The content of O(private_files) is never returned, logged or shown in a diff; only their paths are.
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reports what would be created, written or removed, and changes nothing.
  diff_mode:
    support: full
    details: One diff per changed directory or file; a secret file's diff names the file, never its content.
  platform:
    platforms: posix
options:
  directories:
    description:
      - Directories to create or fix, in order (a parent before its children).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      mode:
        description: Octal mode, for example V(0750).
        type: str
        required: true
      owner:
        description: User name or numeric ID.
        type: str
        default: root
      group:
        description: Group name or numeric ID.
        type: str
        default: root
  files:
    description:
      - Files to write when their content, mode or ownership differ. Their parent directory must exist (or be in
        O(directories)).
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The whole content of the file (text, written as UTF-8).
        type: str
        required: true
      mode:
        description: Octal mode, for example V(0644).
        type: str
        required: true
      owner:
        description: User name or numeric ID.
        type: str
        default: root
      group:
        description: Group name or numeric ID.
        type: str
        default: root
  private_files:
    description:
      - Like O(files), for files holding secrets (private to their owner); their content is never returned nor shown in a diff.
    type: list
    elements: dict
    default: []
    suboptions:
      path:
        description: Absolute path.
        type: path
        required: true
      content:
        description: The whole content of the file (text, written as UTF-8).
        type: str
        required: true
      mode:
        description: Octal mode, for example V(0600).
        type: str
        required: true
      owner:
        description: User name or numeric ID.
        type: str
        default: root
      group:
        description: Group name or numeric ID.
        type: str
        default: root
  exclusive:
    description:
      - Directories that hold only the files given in O(files) and O(private_files); any other file in them (not in
        their subdirectories) is removed.
    type: list
    elements: path
    default: []
  absent:
    description:
      - Files to remove when they exist.
    type: list
    elements: path
    default: []
"""

EXAMPLES = r"""
- name: Write a small stack's files
  infn_cloud.backup.stack_files:
    directories:
      - {path: /opt/app, mode: "0750"}
      - {path: /opt/app/secrets, mode: "0700", owner: "1000", group: "1000"}
    files:
      - {path: /opt/app/compose.yaml, content: "{{ lookup('ansible.builtin.template', 'compose.yaml.j2') }}", mode: "0644"}
    private_files:
      - {path: /opt/app/secrets/PASSWORD, content: "{{ app_password }}", mode: "0600", owner: "1000", group: "1000"}
    exclusive: [/opt/app/secrets]
    absent: [/etc/cron.d/app]
  register: app_files
  no_log: true
"""

RETURN = r"""
written:
  description: The files created or rewritten (or that would be, in check mode), secret ones included.
  returned: always
  type: list
  elements: str
  sample: [/opt/app/compose.yaml]
removed:
  description: The files removed (or that would be, in check mode).
  returned: always
  type: list
  elements: str
  sample: [/opt/app/secrets/OLD_TOKEN]
directories:
  description: The directories created or whose mode or ownership were fixed.
  returned: always
  type: list
  elements: str
  sample: [/opt/app/secrets]
"""

import grp
import os
import pwd
import stat
import tempfile

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.common.text.converters import to_bytes, to_text

_ENTRY = dict(path=dict(type="path", required=True), mode=dict(type="str", required=True),
              owner=dict(type="str", default="root"), group=dict(type="str", default="root"))

ARGUMENT_SPEC = dict(
    directories=dict(type="list", elements="dict", default=[], options=dict(_ENTRY)),
    files=dict(type="list", elements="dict", default=[], options=dict(_ENTRY, content=dict(type="str", required=True))),
    private_files=dict(type="list", elements="dict", default=[],
                       options=dict(_ENTRY, content=dict(type="str", required=True, no_log=True))),
    exclusive=dict(type="list", elements="path", default=[]),
    absent=dict(type="list", elements="path", default=[]),
)


class StackFiles:
    """Read each entry's state on the host, compare, act unless in check mode; one result for the whole set."""

    def __init__(self, module):
        self.module = module
        self.check = module.check_mode
        self.result = dict(changed=False, written=[], removed=[], directories=[])
        self.diffs = []

    def fail(self, msg):
        self.module.fail_json(msg=msg, **self.result)

    def check_input(self):
        """Every path, mode and owner of the input, before anything is changed: (uid, gid, mode) by path."""
        p = self.module.params
        self.owners = {}
        for option in ("directories", "files", "private_files"):
            for index, entry in enumerate(p[option]):
                where = "%s[%d]" % (option, index)
                if not os.path.isabs(entry["path"]):
                    self.fail("%s.path %r must be an absolute path" % (where, entry["path"]))
                try:
                    mode = int(entry["mode"], 8)
                except ValueError:
                    mode = -1
                if not 0 <= mode <= 0o7777:
                    self.fail("%s.mode %r is not an octal mode such as 0644 (%s)" % (where, entry["mode"], entry["path"]))
                if "\x00" in entry["content"] if "content" in entry else False:
                    self.fail("%s.content must not contain a NUL character (%s)" % (where, entry["path"]))
                uid = self.lookup(entry["owner"], pwd.getpwnam, "pw_uid", "%s.owner" % where, "user")
                gid = self.lookup(entry["group"], grp.getgrnam, "gr_gid", "%s.group" % where, "group")
                self.owners[entry["path"]] = (uid, gid, mode)
        for option in ("exclusive", "absent"):
            for path in p[option]:
                if not os.path.isabs(path):
                    self.fail("%s: %r must be an absolute path" % (option, path))

    def lookup(self, value, getter, field, where, kind):
        if value.isdigit():
            return int(value)
        try:
            return getattr(getter(value), field)
        except KeyError:
            self.fail("%s %r is not a %s on the host" % (where, value, kind))

    def ids(self, entry):
        return self.owners[entry["path"]]

    @staticmethod
    def describe(st):
        return {"mode": "%04o" % stat.S_IMODE(st.st_mode), "owner": st.st_uid, "group": st.st_gid} if st else {}

    def directory(self, entry):
        path = entry["path"]
        uid, gid, mode = self.ids(entry)
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        if st is not None and not stat.S_ISDIR(st.st_mode):
            self.fail("%s exists and is not a directory" % path)
        if st and stat.S_IMODE(st.st_mode) == mode and (st.st_uid, st.st_gid) == (uid, gid):
            return
        self.result["directories"].append(path)
        self.diffs.append({"before_header": path, "after_header": path,
                           "before": "%s\n" % (self.describe(st) or "absent"),
                           "after": "%s\n" % {"mode": "%04o" % mode, "owner": uid, "group": gid, "state": "directory"}})
        if self.check:
            return
        if st is None:
            os.mkdir(path, mode)
        os.chown(path, uid, gid)
        os.chmod(path, mode)

    def file(self, entry, secret):
        path = entry["path"]
        uid, gid, mode = self.ids(entry)
        data = to_bytes(entry["content"], errors="surrogate_or_strict")
        try:
            st = os.lstat(path)
        except FileNotFoundError:
            st = None
        old = None
        if st is not None:
            if not stat.S_ISREG(st.st_mode):
                self.fail("%s exists and is not a regular file" % path)
            with open(path, "rb") as handle:
                old = handle.read()
            if old == data and stat.S_IMODE(st.st_mode) == mode and (st.st_uid, st.st_gid) == (uid, gid):
                return
        self.result["written"].append(path)
        if secret:
            self.diffs.append({"before_header": path, "after_header": path,
                               "before": "(secret file%s)\n" % ("" if st else ", absent"),
                               "after": "(secret file, %s)\n" % ("changed" if old != data else "same content")})
        else:
            meta_before = self.describe(st)
            meta_after = {"mode": "%04o" % mode, "owner": uid, "group": gid}
            before = to_text(old, errors="surrogate_or_replace") if old is not None else ""
            after = entry["content"]
            if old == data and meta_before != meta_after:
                before, after = "%s\n" % meta_before, "%s\n" % meta_after
            self.diffs.append({"before_header": path if st else "%s (absent)" % path, "after_header": path,
                               "before": before, "after": after})
        if self.check:
            return
        directory = os.path.dirname(path)
        if not os.path.isdir(directory):
            self.fail("%s: its directory %s does not exist" % (path, directory))
        fd, tmp = tempfile.mkstemp(prefix=".%s." % os.path.basename(path), dir=directory)
        try:
            os.fchmod(fd, mode)
            os.fchown(fd, uid, gid)
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
            os.rename(tmp, path)
        except BaseException:
            if os.path.exists(tmp):
                os.unlink(tmp)
            raise

    def remove(self, path):
        if not os.path.lexists(path):
            return
        if os.path.isdir(path) and not os.path.islink(path):
            self.fail("%s is a directory: only files are removed" % path)
        self.result["removed"].append(path)
        self.diffs.append({"before_header": path, "after_header": "%s (absent)" % path,
                           "before": "(present)\n", "after": ""})
        if not self.check:
            os.unlink(path)

    def run(self):
        p = self.module.params
        # every path, mode and owner is checked before anything is changed
        self.check_input()
        for entry in p["directories"]:
            self.directory(entry)
        for entry in p["files"]:
            self.file(entry, secret=False)
        for entry in p["private_files"]:
            self.file(entry, secret=True)
        wanted = set(e["path"] for e in p["files"] + p["private_files"])
        stale = list(p["absent"])
        for directory in p["exclusive"]:
            if os.path.isdir(directory):
                stale += sorted(os.path.join(directory, name) for name in os.listdir(directory)
                                if not os.path.isdir(os.path.join(directory, name))
                                and os.path.join(directory, name) not in wanted)
        for path in stale:
            self.remove(path)
        self.result["changed"] = bool(self.result["written"] or self.result["removed"] or self.result["directories"])
        if self.module._diff and self.diffs:
            self.result["diff"] = self.diffs
        self.module.exit_json(**self.result)


def main():
    StackFiles(AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)).run()


if __name__ == "__main__":
    main()
