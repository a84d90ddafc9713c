"""The restic runner: argv/environment construction, exit-code mapping, timeouts, scrubbing.

restic and docker are stood in for by small shell scripts that record their argv and environment,
so the tests see exactly what a real process would be handed.
"""
from __future__ import annotations

import json
import stat
import time

import pytest

from ansible_collections.infn_cloud.backup.plugins.module_utils._restic import (
    MEANINGS, Restic, ResticError, json_lines)

PASSWORD = 'pw-Very-Secret-1'
REST_PASSWORD = 'rest-Secret-2'
AWS_SECRET = 'aws-Secret-3'
SECRETS = (PASSWORD, REST_PASSWORD, AWS_SECRET)
ENVIRONMENT = {'RESTIC_REST_USERNAME': 'backupuser', 'RESTIC_REST_PASSWORD': REST_PASSWORD,
               'AWS_SECRET_ACCESS_KEY': AWS_SECRET}


def script(tmp_path, name, body):
    path = tmp_path / name
    path.write_text('#!/bin/sh\n' + body + '\n')
    path.chmod(path.stat().st_mode | stat.S_IEXEC)
    return str(path)


def recorder(tmp_path, name='restic', rc=0, stdout='', stderr=''):
    """A fake binary that records argv and environment as JSON, prints, and exits with rc."""
    record = tmp_path / (name + '.json')
    body = ('python3 -c \'import json, os, sys; json.dump({"argv": sys.argv[1:], "env": dict(os.environ)}, '
            'open("%s", "w"))\' "$@"\nprintf %%s \'%s\'\nprintf %%s \'%s\' >&2\nexit %d' % (record, stdout, stderr, rc))
    return script(tmp_path, name, body), record


def runner(**kw):
    kw.setdefault('repository', 'rest:http://127.0.0.1:8089/')
    kw.setdefault('password', PASSWORD)
    kw.setdefault('environment', ENVIRONMENT)
    return Restic(**kw)


def test_local_argv_holds_no_secret_and_env_holds_them():
    argv, env = runner().command(['cat', 'config'])
    assert argv == ['restic', '--json', 'cat', 'config']
    assert env['RESTIC_PASSWORD'] == PASSWORD
    assert env['RESTIC_REPOSITORY'] == 'rest:http://127.0.0.1:8089/'
    assert env['RESTIC_REST_PASSWORD'] == REST_PASSWORD and env['AWS_SECRET_ACCESS_KEY'] == AWS_SECRET
    assert 'PATH' in env


def test_docker_argv_names_variables_without_values():
    argv, env = runner(container='cloud-backup', container_user='user', timeout=30).command(['snapshots'])
    names = ['AWS_SECRET_ACCESS_KEY', 'RESTIC_PASSWORD', 'RESTIC_PASSWORD_FILE', 'RESTIC_REPOSITORY',
             'RESTIC_REST_PASSWORD', 'RESTIC_REST_USERNAME']
    expected = ['docker', 'exec', '-i', '-u', 'user']
    for name in names:
        expected += ['-e', name]
    expected += ['cloud-backup', 'timeout', '--kill-after=5', '30', 'restic', '--json', 'snapshots']
    assert argv == expected
    assert not any(secret in arg for arg in argv for secret in SECRETS + ('rest:http',))
    assert all(env[name] for name in names if name != 'RESTIC_PASSWORD_FILE')
    # the password given wins: a password file the container may name is cleared
    assert env['RESTIC_PASSWORD_FILE'] == ''


def test_password_file_and_no_credentials():
    argv, env = Restic(password_file='/run/secrets/pw', container='c').command(['cat', 'config'])
    assert argv[:7] == ['docker', 'exec', '-i', '-e', 'RESTIC_PASSWORD', '-e', 'RESTIC_PASSWORD_FILE'] and argv[7] == 'c'
    # the file given wins: a password the container's environment may hold is cleared
    assert env['RESTIC_PASSWORD_FILE'] == '/run/secrets/pw' and env['RESTIC_PASSWORD'] == ''
    # Nothing given: restic uses the container's own environment, nothing is passed.
    argv, dummy = Restic(container='c').command(['cat', 'config'])
    assert '-e' not in argv


def test_options_override_environment_and_bad_names_are_refused():
    dummy, env = Restic(password=PASSWORD, environment={'RESTIC_PASSWORD': 'other'}).command([])
    assert env['RESTIC_PASSWORD'] == PASSWORD
    with pytest.raises(ValueError, match='invalid environment variable name'):
        Restic(environment={'X=leak': 'v'})


def test_fake_docker_receives_secrets_only_through_environment(tmp_path):
    docker, record = recorder(tmp_path, 'docker', stdout='{"version":2,"id":"abc"}')
    config = runner(container='ctr', docker_binary=docker, timeout=7).config()
    assert config == {'version': 2, 'id': 'abc'}
    seen = json.loads(record.read_text())
    assert not any(secret in arg for arg in seen['argv'] for secret in SECRETS)
    assert seen['argv'][-9:] == ['ctr', 'timeout', '--kill-after=5', '7', 'restic', '--json', 'cat', 'config', '--no-lock']
    assert seen['env']['RESTIC_PASSWORD'] == PASSWORD and seen['env']['RESTIC_REST_PASSWORD'] == REST_PASSWORD


@pytest.mark.parametrize('rc', [1, 3, 10, 11, 12, 42])
def test_exit_codes_are_mapped(tmp_path, rc):
    restic, dummy = recorder(tmp_path, rc=rc, stderr='Fatal: something')
    with pytest.raises(ResticError) as err:
        runner(restic_binary=restic).run(['snapshots'])
    assert err.value.rc == rc
    assert err.value.meaning == MEANINGS.get(rc, 'unknown exit code')
    assert err.value.stderr == 'Fatal: something'
    assert str(err.value).startswith('restic: %s (rc %d)' % (err.value.meaning, rc))


def test_meanings_name_what_happened():
    assert 'does not exist' in MEANINGS[10]
    assert 'locked' in MEANINGS[11]
    assert 'wrong password' in MEANINGS[12]
    assert 'backend unreachable or timed out' in MEANINGS[124] and 'killed' in MEANINGS[137]
    assert 'container' in MEANINGS[125] and 'not found' in MEANINGS[127]


def test_accepted_codes_are_returned(tmp_path):
    restic, dummy = recorder(tmp_path, rc=3, stdout='{"message_type":"summary"}')
    rc, stdout, dummy = runner(restic_binary=restic).run(['backup'], accept=(0, 3))
    assert rc == 3 and json_lines(stdout) == [{'message_type': 'summary'}]


def test_config_probe(tmp_path):
    missing, dummy = recorder(tmp_path, rc=10)
    assert runner(restic_binary=missing).config() is None
    with pytest.raises(ResticError) as err:
        runner(restic_binary=missing).config(missing_ok=False)
    assert err.value.rc == 10
    wrong, dummy = recorder(tmp_path, 'wrong', rc=12)
    with pytest.raises(ResticError) as err:
        runner(restic_binary=wrong).config()
    assert err.value.rc == 12
    garbage, dummy = recorder(tmp_path, 'garbage', stdout='not json')
    with pytest.raises(ResticError, match='unexpected output'):
        runner(restic_binary=garbage).config()


def test_secrets_and_url_credentials_are_scrubbed_from_stderr(tmp_path):
    stderr = ('\x1b[2KHead "http://backupuser:%s@127.0.0.1:8089/config" failed\n'
              '{"message_type":"exit_error","code":1,"message":"Fatal: %s and %s at rest:http://127.0.0.1:8089/"}'
              % (REST_PASSWORD, PASSWORD, AWS_SECRET))
    restic, dummy = recorder(tmp_path, rc=1, stderr=stderr)
    with pytest.raises(ResticError) as err:
        runner(restic_binary=restic).run(['snapshots'])
    text = str(err.value)
    assert not any(secret in text for secret in SECRETS)
    assert 'http://***@127.0.0.1:8089/config' in text and '\x1b' not in text
    assert 'Fatal: ******** and ******** at <repository>' in text


def test_docker_daemon_errors_are_not_taken_for_restic_errors(tmp_path):
    docker, dummy = recorder(tmp_path, 'docker', rc=1, stderr='Error response from daemon: No such container: ctr')
    with pytest.raises(ResticError) as err:
        runner(container='ctr', docker_binary=docker).run(['cat', 'config'])
    assert err.value.rc == 1 and err.value.meaning == MEANINGS[125]


def test_missing_binary_is_127():
    with pytest.raises(ResticError) as err:
        runner(restic_binary='/nonexistent/restic').run(['version'])
    assert err.value.rc == 127 and err.value.meaning == MEANINGS[127]


def test_timeout_terminates_and_reports_unreachable(tmp_path):
    restic = script(tmp_path, 'restic', 'echo "dial tcp: connection refused" >&2\nexec sleep 30')
    started = time.monotonic()
    with pytest.raises(ResticError) as err:
        runner(restic_binary=restic, timeout=1).run(['cat', 'config'])
    assert time.monotonic() - started < 5
    assert err.value.rc == 124
    assert 'backend unreachable or timed out' in err.value.meaning and 'within 1 s' in err.value.meaning
    assert 'connection refused' in err.value.stderr


def test_timeout_kills_what_ignores_sigterm(tmp_path):
    restic = script(tmp_path, 'restic', "trap '' TERM\nwhile :; do sleep 0.1; done")
    started = time.monotonic()
    with pytest.raises(ResticError) as err:
        runner(restic_binary=restic, timeout=1).run(['cat', 'config'])
    assert 5 <= time.monotonic() - started < 10
    assert err.value.rc == 137 and 'killed' in err.value.meaning
