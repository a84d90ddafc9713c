"""restic_repository and restic_snapshots_info through ansible-playbook, against real restic.

Real restic 0.18 in the real backup image, through the real `rclone serve restic` of that image, on a
real S3 server (moto, on loopback). Each test gets its own containers and repository paths; every
playbook runs at -vvv and its whole output is searched for the secrets.
"""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
import uuid

import boto3
import pytest

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model

IMAGE = 'infn-cloud/cloud-backup:latest'
BUCKET = 'backups'
TIMEOUT = 10  # the modules' timeout in these tests (seconds)
RUN = uuid.uuid4().hex[:8]
S3_KEY, S3_SECRET = 'AKTEST' + RUN, 's3-secret-' + uuid.uuid4().hex
REST_USER, REST_PASSWORD = 'rest-' + RUN, 'rest-pw-' + uuid.uuid4().hex
SECRETS = (S3_SECRET, REST_PASSWORD)


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def wait_port(port, proc=None, seconds=30):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(('127.0.0.1', port)) == 0:
                return
        assert proc is None or proc.poll() is None, 'server exited'
        time.sleep(0.2)
    raise AssertionError('nothing listens on 127.0.0.1:%d after %d s' % (port, seconds))


def docker(*args, check=True, **kw):
    return subprocess.run(('docker',) + args, check=check, capture_output=True, text=True, timeout=120, **kw)


@pytest.fixture(scope='module')
def s3():
    if docker('image', 'inspect', IMAGE, check=False).returncode:
        pytest.fail('image %s missing: build it with lab/lib.sh build_image' % IMAGE)
    port = free_port()
    proc = subprocess.Popen([os.path.join(os.path.dirname(sys.executable), 'moto_server'), '-H', '127.0.0.1',
                             '-p', str(port)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        wait_port(port, proc)
        client = boto3.client('s3', endpoint_url='http://127.0.0.1:%d' % port, region_name='us-east-1',
                              aws_access_key_id=S3_KEY, aws_secret_access_key=S3_SECRET)
        client.create_bucket(Bucket=BUCKET)
        yield port, client
    finally:
        proc.terminate()
        proc.wait(10)


class Backup:
    """One backup container (the real image) serving BUCKET/<path> as a restic REST server."""

    def __init__(self, s3_port, path):
        self.name, self.path, self.port = 'infn-test-restic-%s-%s' % (RUN, uuid.uuid4().hex[:6]), path, free_port()
        self.password = 'restic-pw-' + uuid.uuid4().hex
        self.repository = 'rest:http://127.0.0.1:%d/' % self.port
        # the destination's environment as the role's host model writes it to .env
        dest = {'type': 's3', 'endpoint': 'http://127.0.0.1:%d' % s3_port, 'bucket': BUCKET, 'path': path,
                'access_key_id': S3_KEY, 'secret_access_key': S3_SECRET}
        env, bucket_path = _model.destination_env(dest, _model.PRIMARY_REMOTE, path)
        env = {k: v for k, v in env.items() if v is not None}
        env.update(CLOUD_BACKUP_REMOTE=_model.PRIMARY_REMOTE, BACKUP_BUCKET_PATH=bucket_path)
        env.update(RESTIC_REST_PORT=str(self.port),
                   RESTIC_REST_USERNAME=REST_USER, RESTIC_REST_PASSWORD=REST_PASSWORD,
                   RESTIC_REPOSITORY=self.repository, RESTIC_PASSWORD=self.password)
        # Values through the docker client's environment (-e NAME), as the module does it.
        argv = ['run', '-d', '--name', self.name, '--network', 'host', '--label', 'infn-test=restic']
        for name in env:
            argv += ['-e', name]
        docker(*argv, IMAGE, env=dict(os.environ, **env))
        wait_port(self.port)

    def restic(self, *args, password=None):
        """restic in the container with its own (correct) settings; returns (rc, parsed JSON or None)."""
        extra = ('-e', 'RESTIC_PASSWORD') if password else ()
        res = docker('exec', *extra, self.name, 'restic', '--json', *args, check=False,
                     env=dict(os.environ, RESTIC_PASSWORD=password or ''))
        try:
            return res.returncode, json.loads(res.stdout)
        except ValueError:
            return res.returncode, None

    def remove(self):
        docker('rm', '-f', self.name, check=False)


@pytest.fixture
def backups(s3):
    made = []

    def make(count=1):
        new = [Backup(s3[0], 'vm-%s-%s' % (RUN, uuid.uuid4().hex[:6])) for dummy in range(count)]
        made.extend(new)
        return new
    yield make
    for backup in made:
        backup.remove()


def play(tmp_path, module, args, hosts, check=False, secrets=()):
    """Run one task of MODULE on every host (name -> hostvars) at -vvv; return ({host: result}, seconds)."""
    out = tmp_path / uuid.uuid4().hex[:8]
    out.mkdir()
    inventory = {'all': {'hosts': {host: dict(hostvars, ansible_connection='local',
                                              ansible_python_interpreter='{{ ansible_playbook_python }}')
                                   for host, hostvars in hosts.items()}}}
    playbook = [{'name': 'restic module test', 'hosts': 'all', 'gather_facts': False, 'tasks': [
        {'name': 'Module under test', 'infn_cloud.backup.' + module: args, 'register': 'result',
         'check_mode': check, 'ignore_errors': True},
        {'name': 'Save the result', 'check_mode': False, 'ansible.builtin.copy': {
            'content': '{{ result | to_json }}', 'dest': str(out) + '/{{ inventory_hostname }}.json'}},
    ]}]
    (out / 'inventory.yml').write_text(json.dumps(inventory))
    (out / 'playbook.yml').write_text(json.dumps(playbook))
    started = time.monotonic()
    proc = subprocess.run([os.path.join(os.path.dirname(sys.executable), 'ansible-playbook'), '-vvv',
                           '-f', str(len(hosts)), '-i', str(out / 'inventory.yml'), str(out / 'playbook.yml')],
                          capture_output=True, text=True, timeout=300, check=False,
                          env=dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0'))
    elapsed = time.monotonic() - started
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {host: json.loads((out / (host + '.json')).read_text()) for host in hosts}
    text = proc.stdout + proc.stderr + json.dumps(results)
    leaked = [s for s in SECRETS + tuple(secrets) if s in text]
    assert not leaked, 'secret(s) in the -vvv output or results'
    return results, elapsed


def explicit(backup, **extra):
    """Module arguments that give everything explicitly (instead of the container's environment)."""
    return dict(container=backup.name, repository=backup.repository, password=backup.password, timeout=TIMEOUT,
                environment={'RESTIC_REST_USERNAME': REST_USER, 'RESTIC_REST_PASSWORD': REST_PASSWORD}, **extra)


def test_missing_repository_is_created_once_and_check_mode_writes_nothing(tmp_path, backups):
    backup, = backups()
    assert backup.restic('cat', 'config')[0] == 10

    res, dummy = play(tmp_path, 'restic_repository', explicit(backup), {'localhost': {}}, check=True,
                      secrets=[backup.password])
    assert res['localhost']['changed'] is True and not res['localhost'].get('failed')
    assert res['localhost']['repository_id'] is None
    assert backup.restic('cat', 'config')[0] == 10, 'check mode created the repository'

    res, dummy = play(tmp_path, 'restic_repository', explicit(backup, repository_version='2'), {'localhost': {}},
                      secrets=[backup.password])
    created = res['localhost']
    assert created['changed'] is True and not created.get('failed'), created
    rc, config = backup.restic('cat', 'config')
    assert rc == 0 and created['repository_id'] == config['id'] and len(config['id']) == 64
    assert created['version'] == config['version'] == 2 and created['compression_supported'] is True

    res, dummy = play(tmp_path, 'restic_repository', explicit(backup, repository_version='1'), {'localhost': {}},
                      secrets=[backup.password])
    again = res['localhost']
    assert again['changed'] is False and not again.get('failed')
    assert again['repository_id'] == created['repository_id'] and again['version'] == 2
    assert any('format version 2, not the requested 1' in w for w in again['warnings'])
    assert len(backup.restic('key', 'list')[1]) == 1


def test_wrong_password_fails_and_leaves_the_repository_untouched(tmp_path, backups, s3):
    backup, = backups()
    assert backup.restic('init')[0] == 0
    assert docker('exec', backup.name, 'backup', '--host', 'vm1', '/etc/hostname').returncode == 0
    config_before, snapshots_before = backup.restic('cat', 'config')[1], backup.restic('snapshots')[1]
    objects_before = sorted(o['Key'] for o in s3[1].list_objects_v2(Bucket=BUCKET, Prefix=backup.path)['Contents'])

    wrong = 'wrong-pw-' + uuid.uuid4().hex
    res, dummy = play(tmp_path, 'restic_repository', dict(explicit(backup), password=wrong), {'localhost': {}},
                      secrets=[wrong, backup.password])
    failed = res['localhost']
    assert failed['failed'] is True and failed['changed'] is False and failed['rc'] == 12
    assert 'wrong password' in failed['msg'] and 'not initialised' in failed['msg']

    # A password file (read inside the container) wins over the container's own RESTIC_PASSWORD.
    docker('exec', '-i', backup.name, 'sh', '-c', 'umask 077; cat > /home/user/.restic-pw', input=wrong)
    res, dummy = play(tmp_path, 'restic_repository', {'container': backup.name, 'timeout': TIMEOUT,
                                                      'password_file': '/home/user/.restic-pw'},
                      {'localhost': {}}, secrets=[wrong, backup.password])
    assert res['localhost']['failed'] is True and res['localhost']['rc'] == 12

    assert backup.restic('cat', 'config')[1] == config_before
    assert backup.restic('snapshots')[1] == snapshots_before and len(snapshots_before) == 1
    objects_after = sorted(o['Key'] for o in s3[1].list_objects_v2(Bucket=BUCKET, Prefix=backup.path)['Contents'])
    assert objects_after == objects_before
    assert backup.restic('cat', 'config', password=wrong)[0] == 12


def test_unreachable_backend_fails_within_the_timeout(tmp_path, backups):
    backup, = backups()
    dead = 'rest:http://127.0.0.1:%d/' % free_port()
    res, elapsed = play(tmp_path, 'restic_repository', dict(explicit(backup), repository=dead), {'localhost': {}},
                        secrets=[backup.password])
    failed = res['localhost']
    assert failed['failed'] is True and failed['rc'] == 124
    assert 'backend unreachable or timed out' in failed['msg'] and 'within %d s' % TIMEOUT in failed['msg']
    assert 'connection refused' in failed['stderr']
    # the whole play (ansible-playbook's start, docker exec) on top of the timeout: seconds, more when every core is
    # busy (16 s once with the suite's three workers); restic alone retries for 15 minutes
    assert elapsed < TIMEOUT + 30, 'took %.0f s' % elapsed
    # restic itself was stopped inside the container, not left retrying for 15 minutes.
    assert docker('exec', backup.name, 'pgrep', '-x', 'restic', check=False).returncode == 1

    # The REST server refusing the credentials is an error, not a missing repository.
    res, dummy = play(tmp_path, 'restic_repository',
                      dict(explicit(backup), environment={'RESTIC_REST_USERNAME': REST_USER,
                                                          'RESTIC_REST_PASSWORD': 'not-the-rest-password'}),
                      {'localhost': {}}, secrets=[backup.password])
    assert res['localhost']['failed'] is True and res['localhost']['rc'] == 1
    assert '401 Unauthorized' in res['localhost']['msg']
    assert backup.restic('cat', 'config')[0] == 10

    # The server stopped: the container is gone, which is said as such.
    backup.remove()
    res, dummy = play(tmp_path, 'restic_repository', explicit(backup), {'localhost': {}}, secrets=[backup.password])
    assert res['localhost']['failed'] is True and 'container missing or not running' in res['localhost']['msg']


def test_concurrent_rollout_initialises_each_repository_once(tmp_path, backups, s3):
    fleet = backups(4)
    hosts = {'vm%d' % i: {'backup_container': b.name} for i, b in enumerate(fleet)}
    # As the role calls it: everything else comes from the backup container's own environment.
    args = {'container': '{{ backup_container }}', 'timeout': TIMEOUT}
    secrets = [b.password for b in fleet]

    res, dummy = play(tmp_path, 'restic_repository', args, hosts, secrets=secrets)
    assert all(r['changed'] is True and not r.get('failed') for r in res.values()), res
    ids = {host: r['repository_id'] for host, r in res.items()}
    assert len(set(ids.values())) == len(fleet)
    for host, backup in zip(sorted(hosts), fleet):
        assert backup.restic('cat', 'config')[1]['id'] == ids[host]
        # One init = one config and one key object under the host's own path in the shared bucket.
        keys = [o['Key'] for o in s3[1].list_objects_v2(Bucket=BUCKET, Prefix=backup.path + '/')['Contents']]
        assert sorted(k.split('/')[1] for k in keys) == ['config', 'keys'], keys

    res, dummy = play(tmp_path, 'restic_repository', args, hosts, secrets=secrets)
    assert all(r['changed'] is False and not r.get('failed') for r in res.values()), res
    assert {host: r['repository_id'] for host, r in res.items()} == ids


def test_snapshots_info_after_a_real_backup(tmp_path, backups):
    backup, = backups()
    assert backup.restic('init')[0] == 0
    for tags, path in ((('daily', 'etc'), '/etc/hostname'), (('daily', 'weekly'), '/etc/hosts')):
        tag_args = [arg for tag in tags for arg in ('--tag', tag)]
        assert docker('exec', backup.name, 'backup', '--host', 'vm7', *tag_args, path).returncode == 0

    def info(**filters):
        res, dummy = play(tmp_path, 'restic_snapshots_info', explicit(backup, **filters), {'localhost': {}},
                          secrets=[backup.password])
        assert not res['localhost'].get('failed') and res['localhost']['changed'] is False, res
        return res['localhost']

    both = info(host='vm7', tags=['daily', 'etc'])
    assert both['count'] == 1 and both['latest'] == both['snapshots'][0]
    snap = both['latest']
    assert snap['hostname'] == 'vm7' and snap['tags'] == ['daily', 'etc'] and snap['paths'] == ['/etc/hostname']
    assert len(snap['id']) == 64 and snap['id'].startswith(snap['short_id']) and snap['time']
    assert snap['summary']['total_files_processed'] == 1 and snap['summary']['total_bytes_processed'] > 0

    every = info(host='vm7')
    assert every['count'] == 2 and every['snapshots'][0] == snap and every['latest']['tags'] == ['daily', 'weekly']
    by_path = info(paths=['/etc/hosts'])
    assert by_path['count'] == 1 and by_path['latest'] == every['latest']
    none = info(host='other')
    assert none['count'] == 0 and none['latest'] is None


def test_snapshots_info_on_a_missing_repository_fails(tmp_path, backups):
    backup, = backups()
    res, dummy = play(tmp_path, 'restic_snapshots_info', explicit(backup), {'localhost': {}},
                      secrets=[backup.password])
    assert res['localhost']['failed'] is True and res['localhost']['rc'] == 10
    assert 'repository does not exist' in res['localhost']['msg']


def test_checked_reports_locks_and_damage(tmp_path, backups, s3):
    backup, = backups()
    res, dummy = play(tmp_path, 'restic_repository', explicit(backup, state='checked'), {'localhost': {}},
                      secrets=[backup.password])
    assert res['localhost']['failed'] is True and 'does not exist' in res['localhost']['msg']
    assert backup.restic('cat', 'config')[0] == 10, 'state=checked created the repository'

    assert backup.restic('init')[0] == 0
    assert docker('exec', backup.name, 'backup', '/etc/hostname').returncode == 0
    res, dummy = play(tmp_path, 'restic_repository', explicit(backup, state='checked', read_data_subset='100%'),
                      {'localhost': {}}, secrets=[backup.password])
    ok = res['localhost']
    assert not ok.get('failed') and ok['changed'] is False and ok['check']['num_errors'] == 0, ok

    # A backup in progress (reading stdin) holds a lock: check (exclusive lock) must fail as locked.
    holder = subprocess.Popen(['docker', 'exec', '-i', backup.name, 'restic', 'backup', '--stdin'],
                              stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(3)
        res, dummy = play(tmp_path, 'restic_repository', explicit(backup, state='checked'), {'localhost': {}},
                          secrets=[backup.password])
    finally:
        holder.communicate(b'data', timeout=60)
    assert res['localhost']['failed'] is True and res['localhost']['rc'] == 11
    assert 'locked' in res['localhost']['msg']

    listing = s3[1].list_objects_v2(Bucket=BUCKET, Prefix=backup.path + '/data/')['Contents']
    s3[1].delete_object(Bucket=BUCKET, Key=listing[0]['Key'])
    res, dummy = play(tmp_path, 'restic_repository', explicit(backup, state='checked', read_data_subset='100%'),
                      {'localhost': {}}, secrets=[backup.password])
    damaged = res['localhost']
    assert damaged['failed'] is True and damaged['check']['num_errors'] > 0
    assert 'restic check found' in damaged['msg'] and 'does not exist' in damaged['msg']
