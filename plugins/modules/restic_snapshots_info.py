#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: restic_snapshots_info
short_description: List the snapshots of a restic repository
version_added: 1.0.0
description:
  - Lists snapshots (C(restic snapshots --json)), optionally only those of one host, with given tags or paths,
    for reports and restore playbooks.
  - Runs restic on the target or inside a container (for example the backup container) through C(docker exec).
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - infn_cloud.backup.restic
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Reads only; runs the same in check mode.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  host:
    description:
      - Only snapshots taken on this host (C(--host)), a single word.
    type: str
  tags:
    description:
      - Only snapshots carrying all of these tags (C(--tag a,b)), so a tag cannot contain a comma.
    type: list
    elements: str
    default: []
  paths:
    description:
      - Only snapshots including all of these absolute paths (C(--path)).
    type: list
    elements: str
    default: []
'''

EXAMPLES = r'''
- name: Snapshots of this host tagged daily, from inside the backup container
  infn_cloud.backup.restic_snapshots_info:
    container: cloud-backup
    host: "{{ inventory_hostname }}"
    tags: [daily]
  register: snaps

- name: Show the newest one
  ansible.builtin.debug:
    msg: "{{ snaps.latest.short_id }} taken {{ snaps.latest.time }}"
  when: snaps.count > 0
'''

RETURN = r'''
snapshots:
  description: The matching snapshots, oldest first.
  returned: success
  type: list
  elements: dict
  contains:
    id:
      description: Snapshot id.
      type: str
      sample: c7aae76a26e0ea88c76f4af76bd8aaa6fc7656303f70373dc8007bada14523db
    short_id:
      description: Short snapshot id.
      type: str
      sample: c7aae76a
    time:
      description: When the snapshot was taken (RFC 3339).
      type: str
      sample: "2026-11-28T02:44:39.347841296Z"
    hostname:
      description: Host the snapshot was taken on.
      type: str
      sample: vm1
    paths:
      description: Paths backed up.
      type: list
      elements: str
      sample: ["/backup"]
    tags:
      description: Tags of the snapshot.
      type: list
      elements: str
      sample: ["daily"]
    summary:
      description:
        - Statistics of the backup run as restic stores them (restic 0.17 or later), for example
          C(total_bytes_processed), C(total_files_processed), C(data_added), C(data_added_packed),
          C(backup_start), C(backup_end). V(null) for snapshots written by older restic.
      type: dict
      sample: {"total_bytes_processed": 4556, "total_files_processed": 4, "data_added": 8005}
count:
  description: Number of matching snapshots.
  returned: success
  type: int
  sample: 1
latest:
  description: The newest matching snapshot (same keys as an item of RV(snapshots)); V(null) when there is none.
  returned: success
  type: dict
  sample: {"id": "c7aae76a26e0ea88c76f4af76bd8aaa6fc7656303f70373dc8007bada14523db", "short_id": "c7aae76a"}
rc:
  description: The exit code of the failed restic call.
  returned: failure
  type: int
  sample: 10
meaning:
  description: What the exit code means.
  returned: failure
  type: str
  sample: repository does not exist
stderr:
  description: The end of restic's error output, secrets removed.
  returned: failure
  type: str
  sample: "Fatal: repository does not exist: unable to open config file"
'''

import re
from datetime import datetime

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.infn_cloud.backup.plugins.module_utils._restic import (
    RESTIC_MUTUALLY_EXCLUSIVE, ResticError, parse_json, restic_argument_spec, restic_from_module)

FIELDS = ('id', 'short_id', 'time', 'hostname', 'paths', 'tags', 'summary')


def taken(snapshot):
    """Sort key: restic's RFC 3339 time (nanoseconds, any offset) as an aware datetime."""
    ts = re.sub(r'\.(\d+)', lambda m: '.' + (m.group(1) + '00000')[:6], snapshot['time']).replace('Z', '+00:00')
    return datetime.fromisoformat(ts)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            restic_argument_spec(),
            host=dict(type='str'),
            tags=dict(type='list', elements='str', default=[]),
            paths=dict(type='list', elements='str', default=[]),
        ),
        mutually_exclusive=RESTIC_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    p = module.params
    problems = []
    if p['host'] is not None and re.search(r'[\s\x00-\x1f\x7f]', p['host']):
        problems.append('host %r must be a single word' % p['host'])
    problems += ["tags: %r must be one tag, without commas (give a list)" % tag for tag in p['tags']
                 if not tag or re.search(r'[,\x00-\x1f\x7f]', tag)]
    problems += ["paths: %r must be an absolute path" % path for path in p['paths']
                 if not path.startswith('/') or '\x00' in path]
    if problems:
        module.fail_json(msg='; '.join(problems))
    args = ['snapshots'] + (['--host', p['host']] if p['host'] else []) + (['--tag', ','.join(p['tags'])] if p['tags'] else [])
    for path in p['paths']:
        args += ['--path', path]
    restic = restic_from_module(module)
    try:
        dummy, stdout, dummy = restic.run(args)
    except ResticError as exc:
        module.fail_json(msg=str(exc), rc=exc.rc, meaning=exc.meaning, stderr=exc.stderr)
    found = parse_json(stdout)
    if not isinstance(found, list):
        module.fail_json(msg='restic: unexpected output of `restic snapshots --json`', stderr=restic.scrub(stdout[-300:]))
    snapshots = sorted(({k: (s.get(k) or [] if k in ('paths', 'tags') else s.get(k)) for k in FIELDS} for s in found),
                       key=taken)
    module.exit_json(changed=False, snapshots=snapshots, count=len(snapshots), latest=snapshots[-1] if snapshots else None)


if __name__ == '__main__':
    main()
