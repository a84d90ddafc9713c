# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner for restic: on the target or inside a container through the docker CLI.

Repository, password and backend credentials travel only through the environment (for
``docker exec`` as bare ``-e NAME`` flags whose values live in the docker client's own
environment), never on an argv, never in results or messages. Every call is bounded by a
timeout because restic retries an unreachable backend for up to 15 minutes.
"""

from __future__ import annotations

import json
import os
import re

from ansible_collections.infn_cloud.backup.plugins.module_utils._process import (
    KILL_AFTER, CONTROL, container_problems, run_bounded)

MEANINGS = {
    0: 'ok',
    1: 'error',
    3: 'partial: some source files could not be read',
    10: 'repository does not exist',
    11: 'repository is locked by another restic process (list locks with `restic list locks`,'
        ' remove stale ones with `restic unlock`)',
    12: 'wrong password: no key of the repository opens with it',
    124: 'backend unreachable or timed out: restic did not finish within {timeout} s'
         ' (restic retries an unreachable backend for up to 15 minutes)',
    125: 'docker exec failed (container missing or not running?)',
    126: 'command not executable in the container (missing binary or unknown container_user?)',
    127: 'restic binary not found (check restic_binary)',
}
MEANINGS[137] = MEANINGS[124] + ', killed'
DOCKER_ERRORS = ('Error response from daemon', 'Cannot connect to the Docker daemon')
ENV_NAME = re.compile(r'^[A-Za-z_][A-Za-z0-9_]*$')
ANSI = re.compile(r'\x1b\[[0-9;]*[A-Za-z]')
URL_USERINFO = re.compile(r'(://)[^/@\s]+@')


def restic_argument_spec():
    """Common options, documented in the infn_cloud.backup.restic doc fragment."""
    return dict(
        repository=dict(type='str'),
        password=dict(type='str', no_log=True),
        password_file=dict(type='path', no_log=False),
        container=dict(type='str'),
        container_user=dict(type='str'),
        environment=dict(type='dict', default={}, no_log=True),
        timeout=dict(type='int', default=120),
        restic_binary=dict(type='str', default='restic'),
    )


RESTIC_MUTUALLY_EXCLUSIVE = [('password', 'password_file')]


def argument_problems(p):
    """What is wrong with the common options, found before docker or restic runs. Never shows a secret, nor the
    repository (it may hold credentials)."""
    problems = []
    if p['repository'] is not None and not p['repository'].strip():
        problems.append("repository must not be empty (omit it to use restic's own RESTIC_REPOSITORY)")
    elif p['repository'] is not None and CONTROL.search(p['repository']):
        problems.append('repository must be one line, without control characters')
    if p['password'] is not None and not p['password']:
        problems.append("password must not be empty (omit it to use restic's own RESTIC_PASSWORD)")
    elif p['password'] is not None and '\x00' in p['password']:
        problems.append('password must not contain a NUL character')
    if p['password_file'] is not None and not p['password_file'].startswith('/'):
        problems.append('password_file must be an absolute path, got %r' % p['password_file'])
    elif p['password_file'] is not None and not p['container'] and not (
            os.path.isfile(p['password_file']) and os.access(p['password_file'], os.R_OK)):
        problems.append('password_file %r is not a readable file' % p['password_file'])
    problems += container_problems(p['container'], p['container_user'])
    problems += ['environment: the value of %s contains a NUL character' % name
                 for name, value in sorted((p['environment'] or {}).items()) if '\x00' in str(value)]
    if p['timeout'] <= 0:
        problems.append('timeout must be a positive number of seconds, got %d' % p['timeout'])
    if not p['restic_binary'].strip():
        problems.append('restic_binary must not be empty')
    elif CONTROL.search(p['restic_binary']):
        problems.append('restic_binary must be one line, without control characters')
    return problems


# restic check --read-data-subset: n/t, x% or a size with an optional unit (restic checks them the same way)
SUBSET = re.compile(r'^(?:(\d+)/(\d+)|(\d*\.?\d+)%|(\d+)[bBkKmMgGtT]?)$')


def read_data_subset_ok(value):
    """A value restic's check --read-data-subset accepts (the module and the role's checks share it)."""
    match = SUBSET.match(str(value))
    if not match:
        return False
    part, total, percent, size = match.groups()
    if part is not None:
        return 1 <= int(part) <= int(total)
    if percent is not None:
        return 0 < float(percent) <= 100
    return int(size) > 0


class ResticError(Exception):
    """A failed restic call: exit code, its meaning and a scrubbed excerpt of stderr."""

    def __init__(self, rc, meaning, stderr=''):
        self.rc, self.meaning, self.stderr = rc, meaning, stderr
        super().__init__('restic: %s (rc %s)%s' % (meaning, rc, ': ' + stderr if stderr else ''))


class Restic:
    def __init__(self, repository=None, password=None, password_file=None, container=None,
                 container_user=None, environment=None, timeout=120, restic_binary='restic',
                 docker_binary='docker'):
        self.env = {k: str(v) for k, v in (environment or {}).items()}
        bad = [k for k in self.env if not ENV_NAME.match(k)]
        if bad:
            raise ValueError('invalid environment variable name(s): %s' % ', '.join(sorted(bad)))
        for name, value in (('RESTIC_REPOSITORY', repository), ('RESTIC_PASSWORD', password),
                            ('RESTIC_PASSWORD_FILE', password_file)):
            if value is not None:
                self.env[name] = value
        # The password given wins over the other way of giving one that the container (or host) may have set itself:
        # that one is cleared (restic and the image's entrypoint read an empty variable as unset).
        if password is not None:
            self.env['RESTIC_PASSWORD_FILE'] = ''
        elif password_file is not None:
            self.env['RESTIC_PASSWORD'] = ''
        # (value, mask) pairs scrubbed from every message, longest first.
        self.secrets = sorted(((v, '<repository>' if k == 'RESTIC_REPOSITORY' else '********')
                               for k, v in self.env.items() if v and k != 'RESTIC_PASSWORD_FILE'),
                              key=lambda item: len(item[0]), reverse=True)
        self.container, self.container_user = container, container_user
        self.timeout, self.restic_binary, self.docker_binary = timeout, restic_binary, docker_binary

    def command(self, args):
        """The argv and the environment of one call (the argv never holds a value of the environment)."""
        restic = [self.restic_binary, '--json'] + list(args)
        if not self.container:
            return restic, dict(os.environ, **self.env)
        argv = [self.docker_binary, 'exec', '-i']
        if self.container_user:
            argv += ['-u', self.container_user]
        for name in sorted(self.env):
            argv += ['-e', name]
        argv += [self.container, 'timeout', '--kill-after=%d' % KILL_AFTER, str(self.timeout)] + restic
        return argv, dict(os.environ, **self.env)

    def scrub(self, text):
        for secret, mask in self.secrets:
            text = text.replace(secret, mask)
        return URL_USERINFO.sub(r'\1***@', text)

    def excerpt(self, stderr, lines=6):
        """The last lines of stderr, restic's JSON errors reduced to their message, secrets removed."""
        out = []
        for line in ANSI.sub('', stderr).splitlines():
            doc = parse_json(line)
            if isinstance(doc, dict) and 'message' in doc:
                line = doc['message']
            out.extend(part.strip() for part in line.splitlines() if part.strip())
        return self.scrub(' | '.join(out[-lines:]))

    def meaning(self, rc, stderr):
        if self.container and rc == 1 and any(e in stderr for e in DOCKER_ERRORS):
            return MEANINGS[125]
        return MEANINGS.get(rc, 'unknown exit code').format(timeout=self.timeout)

    def run(self, args, accept=(0,)):
        """Run ``restic --json ARGS``; return (rc, stdout, stderr) or raise ResticError if rc not in accept."""
        argv, env = self.command(args)
        # Inside a container `timeout` bounds restic; this outer bound only guards a hung docker client.
        limit = self.timeout + (2 * KILL_AFTER if self.container else 0)
        try:
            rc, stdout, stderr = run_bounded(argv, env, limit, kill_after=KILL_AFTER)
        except OSError as exc:
            raise ResticError(127, MEANINGS[127], self.scrub('%s: %s' % (argv[0], exc.strerror)))
        if rc not in accept:
            raise ResticError(rc, self.meaning(rc, stderr), self.excerpt(stderr))
        return rc, stdout, stderr

    def config(self, missing_ok=True):
        """The repository's config (id, version, chunker_polynomial), or None if it does not exist."""
        rc, stdout, dummy = self.run(['cat', 'config', '--no-lock'], accept=(0, 10) if missing_ok else (0,))
        if rc == 10:
            return None
        doc = parse_json(stdout)
        if not isinstance(doc, dict) or 'id' not in doc:
            raise ResticError(rc, 'unexpected output of `restic cat config`', self.scrub(stdout[-300:]))
        return doc


def parse_json(text):
    try:
        return json.loads(text)
    except ValueError:
        return None


def json_lines(text):
    """restic's line-delimited JSON messages (non-JSON lines are skipped)."""
    return [doc for doc in map(parse_json, text.splitlines()) if isinstance(doc, dict)]


def restic_from_module(module):
    p = module.params
    problems = argument_problems(p)
    if problems:
        module.fail_json(msg='; '.join(problems))
    try:
        return Restic(repository=p['repository'], password=p['password'], password_file=p['password_file'],
                      container=p['container'], container_user=p['container_user'],
                      environment=p['environment'], timeout=p['timeout'], restic_binary=p['restic_binary'],
                      docker_binary=module.get_bin_path('docker', required=True) if p['container'] else 'docker')
    except ValueError as exc:
        module.fail_json(msg=str(exc))
