#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: restic_repository
short_description: Initialise a restic repository exactly once, or check it
version_added: 1.0.0
description:
  - Probes the repository with C(restic cat config). An existing repository is left as it is; a missing one
    (restic exit code 10) is created with C(restic init).
  - A wrong password (exit code 12) fails and never leads to C(init); so do a locked repository, an
    unreachable backend (bounded by O(timeout)) and any unknown exit code.
  - Runs restic on the target or inside a container (for example the backup container) through C(docker exec).
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - infn_cloud.backup.restic
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: A missing repository is reported as changed and not created. O(state=checked) runs the
      read-only C(restic check) in check mode too.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  state:
    description:
      - V(present) creates the repository when it does not exist.
      - V(checked) requires an existing repository and runs C(restic check) on it; the task fails when
        the check finds errors.
    type: str
    choices: [present, checked]
    default: present
  repository_version:
    description:
      - Repository format version for C(restic init) (C(--repository-version)). Version 2 supports compression.
      - An existing repository is never changed; a different version only produces a warning.
    type: str
    choices: ['1', '2', stable, latest]
    default: stable
  read_data_subset:
    description:
      - With O(state=checked), also read this subset of the data packs (C(--read-data-subset)),
        for example V(5%), V(1/10) or V(500M). Other values fail before restic runs.
    type: str
notes:
  - Compression is not a property of the repository in restic; it is chosen by each writing command
    (E(RESTIC_COMPRESSION)) and is available on format version 2 only.
  - Two runs that create the same repository at the same moment are not serialised by restic;
    give every host its own repository path.
'''

EXAMPLES = r'''
- name: Ensure the repository of this host exists, from inside the backup container
  infn_cloud.backup.restic_repository:
    container: cloud-backup
    timeout: 60
  register: repo

- name: Ensure a repository with explicit settings
  infn_cloud.backup.restic_repository:
    repository: rest:http://127.0.0.1:8089/
    password: "{{ vault_restic_password }}"
    environment:
      RESTIC_REST_USERNAME: backup
      RESTIC_REST_PASSWORD: "{{ vault_rest_password }}"
    container: cloud-backup
    repository_version: "2"

- name: Verify the repository and 5% of its data
  infn_cloud.backup.restic_repository:
    container: cloud-backup
    state: checked
    read_data_subset: 5%
    timeout: 3600
'''

RETURN = r'''
repository_id:
  description: The repository id (from its config). V(null) in check mode when the repository would be created.
  returned: success
  type: str
  sample: cc1b5cd3d73280879d8b5c2aeb2b8a8063f96a1f58d81296e63017ccbae581b5
version:
  description: The repository format version. V(null) in check mode when the repository would be created.
  returned: success
  type: int
  sample: 2
compression_supported:
  description: Whether the repository format supports compression (version 2 or later).
    V(null) in check mode when the repository would be created.
  returned: success
  type: bool
  sample: true
check:
  description: The result of C(restic check).
  returned: when O(state=checked) and the check ran
  type: dict
  contains:
    num_errors:
      description: Number of errors found.
      type: int
      sample: 0
    suggest_repair_index:
      description: Whether restic suggests C(restic repair index).
      type: bool
      sample: false
    suggest_prune:
      description: Whether restic suggests C(restic prune).
      type: bool
      sample: false
    errors:
      description: The error messages of the check.
      type: list
      elements: str
      sample: ["pack 1460c6a2: does not exist"]
rc:
  description: The exit code of the failed restic call.
  returned: failure
  type: int
  sample: 12
meaning:
  description: What the exit code means.
  returned: failure
  type: str
  sample: "wrong password: no key of the repository opens with it"
stderr:
  description: The end of restic's error output, secrets removed.
  returned: failure
  type: str
  sample: "Fatal: wrong password or no key found"
'''

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.infn_cloud.backup.plugins.module_utils._restic import (
    RESTIC_MUTUALLY_EXCLUSIVE, ResticError, json_lines, read_data_subset_ok, restic_argument_spec,
    restic_from_module)


def run_check(restic, subset):
    rc, stdout, stderr = restic.run(['check'] + (['--read-data-subset', subset] if subset else []), accept=(0, 1))
    summary = [d for d in json_lines(stdout) if d.get('message_type') == 'summary']
    if not summary:
        raise ResticError(rc, restic.meaning(rc, stderr) if rc else 'no summary from restic check', restic.excerpt(stderr))
    return dict(num_errors=summary[-1].get('num_errors', 0),
                suggest_repair_index=summary[-1].get('suggest_repair_index', False),
                suggest_prune=summary[-1].get('suggest_prune', False),
                errors=[restic.scrub(d['message'].strip()) for d in json_lines(stderr)
                        if d.get('message_type') == 'error' and d.get('message', '').strip()])


def main():
    module = AnsibleModule(
        argument_spec=dict(
            restic_argument_spec(),
            state=dict(type='str', default='present', choices=['present', 'checked']),
            repository_version=dict(type='str', default='stable', choices=['1', '2', 'stable', 'latest']),
            read_data_subset=dict(type='str'),
        ),
        mutually_exclusive=RESTIC_MUTUALLY_EXCLUSIVE,
        supports_check_mode=True,
    )
    p = module.params
    if p['read_data_subset'] is not None and not read_data_subset_ok(p['read_data_subset']):
        module.fail_json(msg='read_data_subset %r must be n/t (1 <= n <= t), a percentage (above 0%% and at most 100%%) '
                             'or a size such as 500M' % p['read_data_subset'])
    restic = restic_from_module(module)
    changed = False
    try:
        config = restic.config()
        if config is None and p['state'] == 'checked':
            module.fail_json(msg='restic: repository does not exist, nothing to check (create it with state=present)',
                             rc=10, meaning='repository does not exist', stderr='')
        if config is None and module.check_mode:
            module.exit_json(changed=True, repository_id=None, version=None, compression_supported=None)
        if config is None:
            restic.run(['init', '--repository-version', p['repository_version']])
            changed, config = True, restic.config(missing_ok=False)
        elif p['repository_version'].isdigit() and int(p['repository_version']) != config.get('version'):
            module.warn('repository has format version %s, not the requested %s; an existing repository is '
                        'left as it is' % (config.get('version'), p['repository_version']))
        result = dict(changed=changed, repository_id=config['id'], version=config.get('version'),
                      compression_supported=config.get('version', 1) >= 2)
        if p['state'] == 'checked':
            result['check'] = run_check(restic, p['read_data_subset'])
            if result['check']['num_errors']:
                module.fail_json(msg='restic check found %d error(s) in the repository: %s' % (
                    result['check']['num_errors'], ' | '.join(result['check']['errors'][:5])), **result)
    except ResticError as exc:
        hint = '; the repository exists and was left untouched (not initialised)' if exc.rc == 12 else ''
        module.fail_json(msg=str(exc) + hint, rc=exc.rc, meaning=exc.meaning, stderr=exc.stderr, changed=changed)
    module.exit_json(**result)


if __name__ == '__main__':
    main()
