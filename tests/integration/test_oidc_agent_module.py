"""oidc_agent_account, playbooks/enroll.yml and playbooks/renew.yml against the real thing.

- The lab's OpenID Connect provider (lab/oidc: npm oidc-provider with the device flow, dynamic registration,
  IAM-like refresh tokens: unsigned JWTs with exp, never rotated) over HTTPS with its own CA on 127.0.0.1,
  started and stopped with lab/oidc/start.sh; lifetimes changed at run time through its /lab/settings.
- oidc-agent 4.2.6 in the real backup image (infn-cloud/cloud-backup), one container per host, run with
  --init and --network host, the lab CA mounted.
- A "fleet": containers of the lab's VM image (python3 + docker CLI, the host's docker socket) reached with
  community.docker.docker; on each, the module docker-execs into that host's backup container, as on a VM.
- The user: lab/oidc/approve.mjs, driving the provider's real /device pages. For the playbooks it reads the
  codes from the playbook's own table while the playbook runs, as a person would.

Every ansible run is at -vvv; its whole output is searched for the password, the client secrets and the
refresh tokens of every account made here.
"""
from __future__ import annotations

import base64
import functools
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
BIN = os.path.dirname(sys.executable)
IMAGE = 'infn-cloud/cloud-backup:latest'
VM_IMAGE = 'infn-lab/vm:latest'
RUN = uuid.uuid4().hex[:8]
LABEL = 'infn-test=oidc-%s' % RUN
ACCOUNT = 'cloud-backup'
CA_IN_CONTAINER = '/etc/cloud-backup/oidc-ca.pem'
PASSWORD = 'oidc-pw-' + uuid.uuid4().hex
WRONG_PASSWORD = 'wrong-pw-' + uuid.uuid4().hex
CLIENT_ID = 'backup-client-' + RUN
CLIENT_SECRET = 'client-secret-' + uuid.uuid4().hex
# Everything that must never be printed; refresh tokens and dynamic client secrets are added as made.
SECRETS = {PASSWORD, WRONG_PASSWORD, CLIENT_SECRET}
OUTPUTS = []
CODE_ROW = re.compile(r'^\s*"(\S+)\s+([A-Z0-9]{4}-[A-Z0-9]{4})\s+(https://\S+?)",?\s*$')
REPORT_ROW = re.compile(r'^\s*"(\S+)\s+(approved|ok|denied|expired|timed out|not enrolled|failed|pending)\s+(.*?)",?\s*$')
STATE = '/home/user/.local/state/oidc-agent'
CONFIG = '/home/user/.config/oidc-agent'


def docker(*args, check=True, timeout=120, **kw):
    return subprocess.run(('docker',) + args, check=check, capture_output=True, text=True, timeout=timeout, **kw)


@functools.lru_cache(maxsize=None)
def pycode_volume():
    """The compiled code of Ansible's module payloads, shared with the lab's VMs: the volume lab/lab.sh gives a VM."""
    out = subprocess.run(['bash', 'lab/lab.sh', 'vm-volumes'], cwd=REPO, capture_output=True, text=True, check=True)
    return dict(line.split('=', 1) for line in out.stdout.splitlines())['LAB_VM_PYCODE_VOLUME']


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


# ------------------------------------------------------------------ the provider
class Provider:
    def __init__(self, state):
        self.state, self.port = state, free_port()
        env = dict(os.environ, LAB_OIDC_STATE=str(state), LAB_OIDC_PORT=str(self.port), LAB_OIDC_DEVICE_INTERVAL='1',
                   LAB_OIDC_DEVICE_CODE_TTL='120',
                   LAB_OIDC_CLIENTS=json.dumps([{'client_id': CLIENT_ID, 'client_secret': CLIENT_SECRET,
                                                 'client_name': 'cloud-backup test client'}]))
        res = subprocess.run([os.path.join(REPO, 'lab', 'oidc', 'start.sh')], env=env, capture_output=True, text=True,
                             timeout=300, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        out = dict(line.split('=', 1) for line in res.stdout.splitlines() if '=' in line)
        self.issuer, self.ca = out['OIDC_ISSUER'], out['OIDC_CA_FILE']
        with open(out['OIDC_ADMIN_TOKEN_FILE']) as f:
            self.admin_token = f.read().strip()
        self.ssl = ssl.create_default_context(cafile=self.ca)

    def stop(self):
        subprocess.run([os.path.join(REPO, 'lab', 'oidc', 'start.sh'), 'stop'], timeout=60, check=False,
                       env=dict(os.environ, LAB_OIDC_STATE=str(self.state)), capture_output=True)

    def settings(self, **changes):
        req = urllib.request.Request(self.issuer + 'lab/settings', data=json.dumps(changes).encode(), method='PUT',
                                     headers={'Authorization': 'Bearer ' + self.admin_token})
        with urllib.request.urlopen(req, context=self.ssl, timeout=10) as res:
            return json.load(res)

    def decide(self, code, decision):
        """The scripted user at the provider's /device pages: approve or deny CODE."""
        res = subprocess.run(['node', os.path.join(REPO, 'lab', 'oidc', 'approve.mjs'), '--issuer', self.issuer,
                              '--ca', self.ca, decision, code], capture_output=True, text=True, timeout=60, check=False)
        assert res.returncode == 0, res.stdout + res.stderr
        return res.stdout

    def refresh(self, client_id, client_secret, refresh_token):
        """A refresh grant as the client itself would send it: (HTTP status, JSON body)."""
        body = urllib.parse.urlencode({'grant_type': 'refresh_token', 'refresh_token': refresh_token}).encode()
        auth = base64.b64encode(('%s:%s' % (urllib.parse.quote(client_id, safe=''),
                                            urllib.parse.quote(client_secret, safe=''))).encode()).decode()
        req = urllib.request.Request(self.issuer + 'token', data=body, headers={'Authorization': 'Basic ' + auth})
        try:
            with urllib.request.urlopen(req, context=self.ssl, timeout=10) as res:
                return res.status, json.load(res)
        except urllib.error.HTTPError as exc:
            return exc.code, json.load(exc)


@pytest.fixture(scope='module')
def provider(tmp_path_factory):
    for image in (IMAGE, VM_IMAGE):
        if docker('image', 'inspect', image, check=False).returncode:
            name = image.split(':')[0]
            directory = 'roles/cloud_backup/files/image' if image == IMAGE else 'lab/images/vm'
            res = subprocess.run(['bash', '-c', 'cd "$1" && source lab/lib.sh && ensure_base_image && build_image "$2" "$3"',
                                  'build', REPO, name, directory], capture_output=True, text=True, timeout=1800,
                                 check=False)
            assert res.returncode == 0, 'image %s missing and its build failed: %s' % (image, res.stderr[-2000:])
    prov = Provider(tmp_path_factory.mktemp('oidc-provider'))
    try:
        yield prov
    finally:
        prov.stop()


# ------------------------------------------------------------------ hosts: a VM container + its backup container
class Host:
    def __init__(self, provider, name):
        self.name = name
        self.backup = 'infn-test-oidc-%s-%s-bk' % (RUN, name)
        self.vm = 'infn-test-oidc-%s-%s-vm' % (RUN, name)
        docker('run', '-d', '--name', self.backup, '--network', 'host', '--init', '--label', LABEL,
               '-v', '%s:%s:ro' % (provider.ca, CA_IN_CONTAINER), IMAGE, 'sleep', 'infinity')
        docker('run', '-d', '--name', self.vm, '--network', 'host', '--label', LABEL,
               '-v', '/var/run/docker.sock:/var/run/docker.sock', '-v', pycode_volume(),
               '--entrypoint', 'sleep', VM_IMAGE, 'infinity')

    def sh(self, script, password=None, check=False):
        """A shell script in the backup container (the test's own look, not the module's)."""
        extra = ('-e', 'OIDC_ENCRYPTION_PW') if password else ()
        env = dict(os.environ, OIDC_ENCRYPTION_PW=password or '')
        return docker('exec', *extra, self.backup, 'sh', '-c', 'export OIDC_SOCK=%s/agent.sock OIDC_CONFIG_DIR=%s; %s'
                      % (STATE, CONFIG, script), check=check, env=env)

    def account(self):
        """The decrypted account configuration (read with the password, test-side), or None."""
        res = self.sh('oidc-gen -p %s --pw-env' % ACCOUNT, password=PASSWORD)
        if res.returncode:
            return None
        doc = json.loads(res.stdout[res.stdout.index('{'):res.stdout.rindex('}') + 1])
        for key in ('refresh_token', 'client_secret', 'registration_access_token'):
            if doc.get(key):
                SECRETS.add(doc[key])
        return doc

    def file_modes(self):
        """{path: octal mode} of the account file and the state directories."""
        res = self.sh('stat -c "%%n %%a" %s %s/%s %s %s/flows %s/accounts 2>/dev/null' % (CONFIG, CONFIG, ACCOUNT, STATE,
                                                                                        STATE, STATE))
        return dict(line.rsplit(' ', 1) for line in res.stdout.splitlines())

    def has_account_file(self):
        return self.sh('test -f %s/%s' % (CONFIG, ACCOUNT)).returncode == 0

    def has_flow(self):
        return self.sh('test -e %s/flows/%s' % (STATE, ACCOUNT)).returncode == 0

    def remove(self):
        docker('rm', '-f', self.backup, self.vm, check=False)


@pytest.fixture(scope='module')
def hosts_factory(provider):
    made = []

    def make(count, prefix):
        new = [Host(provider, '%s%d' % (prefix, i + 1)) for i in range(count)]
        made.extend(new)
        return new
    yield make
    for host in made:
        host.remove()


@pytest.fixture(scope='module')
def fleet(hosts_factory):
    """Three hosts enrolled by test_enroll_fleet and used by the tests after it."""
    return hosts_factory(3, 'vm')


# ------------------------------------------------------------------ running ansible
def check_output(text):
    OUTPUTS.append(text)
    leaked = [s for s in SECRETS if s and s in text]
    assert not leaked, 'a secret (%d of them) appears in the -vvv output or the results' % len(leaked)


def run_playbook(tmp_path, provider, playbook, hosts, decisions=None, extra=(), extra_vars=None):
    """ansible-playbook -vvv PLAYBOOK on HOSTS (docker connection to their VM containers), while the scripted user
    approves/denies the codes of the fleet table (decisions: host -> approve|deny|ignore, default approve).
    Returns (rc, output, {host: code}, seconds)."""
    work = tmp_path / ('run-' + uuid.uuid4().hex[:6])
    work.mkdir()
    inventory = {'all': {'children': {'cloud_backup': {
        'hosts': {h.name: {'ansible_host': h.vm, 'cloud_backup_container_name': h.backup} for h in hosts},
        'vars': dict({'ansible_connection': 'community.docker.docker', 'ansible_python_interpreter': '/usr/bin/python3',
                      # the role's variables (its day-2 entry points check them as the rollout does)
                      'cloud_backup_restic_password': 'a-restic-password-%s' % RUN,
                      'cloud_backup_rest_password': 'a-rest-password-%s' % RUN,
                      'cloud_backup_destination': {'type': 'local', 'path': '/srv/backup-repository'},
                      'cloud_backup_oidc_account': ACCOUNT,
                      'cloud_backup_oidc_issuer': provider.issuer, 'cloud_backup_oidc_ca_file': CA_IN_CONTAINER,
                      'cloud_backup_oidc_password': PASSWORD, 'cloud_backup_enroll_poll_seconds': 1},
                     **(extra_vars or {}))}}}}
    (work / 'inventory.yml').write_text(json.dumps(inventory))
    argv = [os.path.join(BIN, 'ansible-playbook'), '-vvv', '-i', str(work / 'inventory.yml'),
            os.path.join(REPO, 'playbooks', playbook)] + list(extra)
    started = time.monotonic()
    proc = subprocess.Popen(argv, cwd=str(work), stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            env=dict(os.environ, ANSIBLE_NOCOLOR='1', ANSIBLE_FORCE_COLOR='0',
                                     ANSIBLE_HOST_KEY_CHECKING='0'))
    lines, codes, errors = [], {}, []

    def user(host, code):
        decision = (decisions or {}).get(host, 'approve')
        try:
            if decision != 'ignore':
                provider.decide(code, decision)
        except AssertionError as exc:  # reported after the run
            errors.append(str(exc))

    workers = []
    for line in proc.stdout:
        lines.append(line)
        match = CODE_ROW.match(line)
        if match and match.group(1) not in codes:
            codes[match.group(1)] = match.group(2)
            worker = threading.Thread(target=user, args=(match.group(1), match.group(2)))
            worker.start()
            workers.append(worker)
    rc = proc.wait(timeout=600)
    for worker in workers:
        worker.join(60)
    output = ''.join(lines)
    assert not errors, errors
    check_output(output)
    return rc, output, codes, time.monotonic() - started


def report(output):
    """The last outcome table of an enroll/renew run: host -> (result, detail)."""
    table, rows = {}, False
    for line in output.splitlines():
        if 'HOST' in line and 'RESULT' in line and 'DETAIL' in line:
            table, rows = {}, True
            continue
        match = REPORT_ROW.match(line) if rows else None
        if match:
            table[match.group(1)] = (match.group(2), match.group(3))
        elif rows and table and line.strip() in (']', '}'):
            rows = False
    return table


def recap(output):
    """PLAY RECAP: host -> {ok, changed, failed, ...}."""
    out = {}
    for match in re.finditer(r'^(\S+)\s+: ((?:\w+=\d+\s*)+)$', output, re.M):
        out[match.group(1)] = {k: int(v) for k, v in re.findall(r'(\w+)=(\d+)', match.group(2))}
    return out


def run_module(tmp_path, hosts, args, check=False):
    """One task of the module on the controller (local connection) for each host, with container = its backup
    container; results by host name. Each call runs at -vvv and is searched for secrets."""
    work = tmp_path / ('mod-' + uuid.uuid4().hex[:6])
    work.mkdir()
    inventory = {'all': {'hosts': {h.name: {'ansible_connection': 'local', 'backup': h.backup,
                                            'ansible_python_interpreter': '{{ ansible_playbook_python }}'}
                                   for h in hosts}}}
    playbook = [{'name': 'oidc_agent_account', 'hosts': 'all', 'gather_facts': False, 'tasks': [
        {'name': 'Module under test', 'infn_cloud.backup.oidc_agent_account': dict({'container': '{{ backup }}'}, **args),
         'register': 'result', 'check_mode': check, 'ignore_errors': True},
        {'name': 'Save the result', 'check_mode': False, 'ansible.builtin.copy': {
            'content': '{{ result | to_json }}', 'dest': str(work) + '/{{ inventory_hostname }}.json'}},
    ]}]
    (work / 'inventory.yml').write_text(json.dumps(inventory))
    (work / 'playbook.yml').write_text(json.dumps(playbook))
    proc = subprocess.run([os.path.join(BIN, 'ansible-playbook'), '-vvv', '-f', str(len(hosts)), '-i',
                           str(work / 'inventory.yml'), str(work / 'playbook.yml')], cwd=str(work), capture_output=True,
                          text=True, timeout=600, check=False, env=dict(os.environ, ANSIBLE_NOCOLOR='1'))
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    results = {h.name: json.loads((work / (h.name + '.json')).read_text()) for h in hosts}
    check_output(proc.stdout + proc.stderr + json.dumps(results))
    return results


def module_args(provider, **extra):
    return dict({'name': ACCOUNT, 'issuer': provider.issuer, 'ca_file': CA_IN_CONTAINER, 'password': PASSWORD,
                 'timeout': 30}, **extra)


# ------------------------------------------------------------------ the tests (in order: they share the fleet)
def test_enroll_fleet_in_one_sitting_then_rerun_is_unchanged(tmp_path, provider, fleet):
    rc, output, codes, seconds = run_playbook(tmp_path, provider, 'enroll.yml', fleet, extra=['-e', 'cloud_backup_enroll_deadline=90'])
    assert rc == 0, output[-4000:]
    # One table for the whole fleet, every host with its own code and link.
    assert output.count('HOST                          CODE         LINK') == 1
    assert sorted(codes) == ['vm1', 'vm2', 'vm3'] and len(set(codes.values())) == 3
    for host, code in codes.items():
        assert '%s?user_code=%s' % (provider.issuer + 'device', code) in output
    assert {h: r[0] for h, r in report(output).items()} == {'vm1': 'approved', 'vm2': 'approved', 'vm3': 'approved'}
    for host in fleet:
        account = host.account()
        assert account and account['issuer_url'] == provider.issuer and account['refresh_token'].count('.') == 2
        modes = host.file_modes()
        assert modes['%s/%s' % (CONFIG, ACCOUNT)] == '600'
        assert {modes[p] for p in (CONFIG, STATE, STATE + '/flows', STATE + '/accounts')} == {'700'}
        assert not host.has_flow()
        detail = report(output)[host.name][1]
        assert re.match(r'refresh token valid for (29\.9\d|30\.0) more days', detail), detail
    check_output(output)  # now that the refresh tokens are known
    print('enroll of 3 hosts: %.1f s' % seconds)

    rc, output, codes, seconds = run_playbook(tmp_path, provider, 'enroll.yml', fleet)
    assert rc == 0, output[-4000:]
    assert codes == {} and 'Nothing to approve' in output
    assert {h: r[0] for h, r in report(output).items()} == {'vm1': 'ok', 'vm2': 'ok', 'vm3': 'ok'}
    assert all(counts['changed'] == 0 and counts['failed'] == 0 for counts in recap(output).values()), recap(output)
    print('rerun: %.1f s' % seconds)


def test_agent_or_container_restart_reloads_the_account_without_approval(tmp_path, provider, fleet):
    vm1, vm2, vm3 = fleet
    before = {h.name: h.account()['refresh_token'] for h in fleet}
    assert vm1.sh('pkill -x oidc-agent').returncode == 0
    docker('restart', '-t', '1', vm2.backup)
    assert vm2.sh('test -S %s/agent.sock' % STATE).returncode == 0  # a stale socket survives the restart
    results = run_module(tmp_path, fleet, module_args(provider))
    for host in fleet:
        r = results[host.name]
        assert not r.get('failed'), r
        assert r['changed'] is False and r['pending'] is False and r['approved'] is False
        assert r['refresh_token_expiry_source'] == 'jwt' and 29.9 < r['days_left'] <= 30
    assert results['vm1']['account_loaded'] and results['vm1']['agent_started']
    assert results['vm2']['account_loaded'] and results['vm2']['agent_started']
    assert not results['vm3']['account_loaded'] and not results['vm3']['agent_started']
    # The same refresh token (no new approval), and the agent serves tokens to other programs again.
    assert {h.name: h.account()['refresh_token'] for h in fleet} == before
    for host in (vm1, vm2):
        assert host.sh('oidc-token -e %s' % ACCOUNT).stdout.strip().isdigit()
        assert not host.has_flow()


def test_wrong_password_is_a_clear_failure(tmp_path, provider, fleet):
    vm1, vm2 = fleet[:2]
    vm1.sh('pkill -x oidc-agent')
    results = run_module(tmp_path, [vm1, vm2], module_args(provider, password=WRONG_PASSWORD))
    for host in (vm1, vm2):   # vm1: loading after the restart; vm2: the account is loaded, the password is still checked
        r = results[host.name]
        assert r['failed'] and r['error'] == 'wrong_password', r
        assert 'wrong password' in r['msg'] and r['pending'] is False and r['changed'] is False
        assert host.has_account_file() and not host.has_flow()
    assert 'oidc-add' in results['vm1']['msg']
    # Nothing was broken: the right password works again.
    results = run_module(tmp_path, [vm1], module_args(provider))
    assert not results['vm1'].get('failed') and results['vm1']['changed'] is False, results


def test_renew_fixes_an_expiring_token_and_leaves_the_others(tmp_path, provider, fleet):
    vm1 = fleet[0]
    try:
        # vm1 gets a token that expires in 3 days (renewed with a provider that issues such tokens).
        provider.settings(refresh_token_ttl=3 * 86400)
        rc, output, codes, dummy = run_playbook(tmp_path, provider, 'renew.yml', fleet,
                                                extra=['--limit', 'vm1', '-e', 'cloud_backup_renew_within_days=40'])
        assert rc == 0 and list(codes) == ['vm1'], output[-4000:]
        assert report(output)['vm1'][0] == 'approved'
        days = _days_left(vm1)
        assert 2.9 < days <= 3, days
    finally:
        provider.settings(refresh_token_ttl=30 * 86400)
    # renew.yml (7 days): only vm1 is due.
    rc, output, codes, seconds = run_playbook(tmp_path, provider, 'renew.yml', fleet)
    assert rc == 0, output[-4000:]
    assert list(codes) == ['vm1']
    assert {h: r[0] for h, r in report(output).items()} == {'vm1': 'approved', 'vm2': 'ok', 'vm3': 'ok'}
    assert 29.9 < _days_left(vm1) <= 30
    # Fixed: nothing due any more.
    rc, output, codes, dummy = run_playbook(tmp_path, provider, 'renew.yml', fleet)
    assert rc == 0 and codes == {} and 'Nothing to approve' in output
    assert {h: r[0] for h, r in report(output).items()} == {'vm1': 'ok', 'vm2': 'ok', 'vm3': 'ok'}
    assert all(counts['changed'] == 0 for counts in recap(output).values())
    print('renew of 1 of 3 hosts: %.1f s' % seconds)


def _days_left(host):
    payload = host.account()['refresh_token'].split('.')[1]
    exp = json.loads(base64.urlsafe_b64decode(payload + '=' * (-len(payload) % 4)))['exp']
    return (exp - time.time()) / 86400


def test_absent_revokes_and_removes(tmp_path, provider, fleet):
    vm3 = fleet[2]
    account = vm3.account()
    status, dummy = provider.refresh(account['client_id'], account['client_secret'], account['refresh_token'])
    assert status == 200
    results = run_module(tmp_path, [vm3], module_args(provider, state='absent'))
    r = results['vm3']
    assert not r.get('failed') and r['changed'] is True and r['revoked'] is True and r['account_exists'] is False, r
    assert not vm3.has_account_file() and vm3.sh('test -e %s/accounts/%s.json' % (STATE, ACCOUNT)).returncode
    assert ACCOUNT not in vm3.sh('oidc-add -a').stdout
    # Revoked at the provider: the old refresh token no longer works.
    status, body = provider.refresh(account['client_id'], account['client_secret'], account['refresh_token'])
    assert status == 400 and body['error'] == 'invalid_grant', body
    results = run_module(tmp_path, [vm3], module_args(provider, state='absent'))
    assert results['vm3']['changed'] is False


def test_denied_and_expired_are_distinct_and_write_no_account(tmp_path, provider, hosts_factory):
    hosts = hosts_factory(3, 'dx')
    ok, denied, expired = hosts
    try:
        provider.settings(device_code_ttl=15)
        rc, output, codes, seconds = run_playbook(tmp_path, provider, 'enroll.yml', hosts,
                                                  decisions={'dx2': 'deny', 'dx3': 'ignore'},
                                                  extra=['-e', 'cloud_backup_enroll_deadline=120'])
        assert rc != 0 and sorted(codes) == ['dx1', 'dx2', 'dx3']
        table = report(output)
        assert table['dx1'][0] == 'approved'
        assert table['dx2'][0] == 'denied' and '(access_denied)' in table['dx2'][1]
        assert table['dx3'][0] == 'expired' and '(expired_token)' in table['dx3'][1]
        assert 'no account configuration was written' in table['dx2'][1]
        assert seconds < 100, 'the expired host should end with its code (15 s), not at the deadline (120 s)'
        assert ok.has_account_file()
        for host in (denied, expired):
            assert not host.has_account_file() and not host.has_flow()
            assert host.account() is None

        # The module's own results: a new flow each (the failed ones were cleared), then distinct errors.
        started = run_module(tmp_path, [denied, expired], module_args(provider))
        for host in (denied, expired):
            r = started[host.name]
            assert r['changed'] and r['pending'] and r['user_code'] not in codes.values(), r
            assert r['verification_uri_complete'] == '%sdevice?user_code=%s' % (provider.issuer, r['user_code'])
        provider.decide(started['dx2']['user_code'], 'deny')
        waited = run_module(tmp_path, [denied, expired], module_args(provider, wait=True, wait_timeout=60))
        assert waited['dx2']['failed'] and waited['dx2']['error'] == 'access_denied', waited['dx2']
        assert waited['dx3']['failed'] and waited['dx3']['error'] == 'expired_token', waited['dx3']
        assert waited['dx2']['msg'] != waited['dx3']['msg']
        for host in (denied, expired):
            assert waited[host.name]['user_code'] == started[host.name]['user_code']  # the same flow was polled
            assert not host.has_account_file() and not host.has_flow()
    finally:
        provider.settings(device_code_ttl=120)


def test_check_mode_preregistered_client_and_opaque_token(tmp_path, provider, hosts_factory):
    host, = hosts_factory(1, 'pc')
    # Check mode on a fresh container predicts a flow and starts nothing (no agent, no file, no flow).
    predicted = run_module(tmp_path, [host], module_args(provider), check=True)['pc1']
    assert predicted['changed'] and predicted['pending'] and predicted['user_code'] is None, predicted
    assert host.sh('pgrep -x oidc-agent || pgrep -x oidc-gen').returncode == 1
    assert host.sh('test -e %s' % STATE).returncode == 1
    try:
        provider.settings(refresh_token_format='opaque')
        args = module_args(provider, client_id=CLIENT_ID, client_secret=CLIENT_SECRET, refresh_token_lifetime_days=10)
        started = run_module(tmp_path, [host], args)['pc1']
        assert started['pending'] and started['changed'], started
        # While the flow runs: neither the password nor the client secret on any command line, in the
        # container or on this machine.
        in_container = host.sh("for f in /proc/[0-9]*/cmdline; do tr '\\0' ' ' < $f; echo; done").stdout
        assert 'oidc-gen' in in_container
        on_host = subprocess.run(['ps', '-eo', 'args'], capture_output=True, text=True, check=True).stdout
        for text in (in_container, on_host):
            assert PASSWORD not in text and CLIENT_SECRET not in text
        assert host.sh('test -e %s/flows/%s/client.json' % (STATE, ACCOUNT)).returncode == 0
        assert host.sh('stat -c %%a %s/flows/%s/client.json' % (STATE, ACCOUNT)).stdout.strip() == '600'
        provider.decide(started['user_code'], 'approve')
        done = run_module(tmp_path, [host], dict(args, wait=True, wait_timeout=60))['pc1']
        assert done['approved'] and done['changed'] and not done['pending'], done
        assert done['refresh_token_expiry_source'] == 'recorded' and 9.99 < done['days_left'] <= 10, done
        account = host.account()
        assert account['client_id'] == CLIENT_ID and '.' not in account['refresh_token']
        assert host.sh('test -e %s/flows/%s/client.json' % (STATE, ACCOUNT)).returncode == 1
    finally:
        provider.settings(refresh_token_format='jwt')
    again = run_module(tmp_path, [host], dict(args, wait=True), check=True)['pc1']
    assert again['changed'] is False and again['pending'] is False, again
    again = run_module(tmp_path, [host], args)['pc1']
    assert again['changed'] is False and again['refresh_token_expiry_source'] == 'recorded', again


# ------------------------------------------------------------------ issue 13: a hung issuer, error codes as documented
class HungIssuer:
    """An issuer that accepts connections and never answers (nor closes them): TLS never starts."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind(('127.0.0.1', 0))
        self.sock.listen(64)
        self.url = 'https://127.0.0.1:%d/' % self.sock.getsockname()[1]
        self.held, self.accepted = [], 0
        threading.Thread(target=self.serve, daemon=True).start()

    def serve(self):
        while True:
            try:
                conn, dummy = self.sock.accept()
            except OSError:
                return
            self.held.append(conn)
            self.accepted += 1

    def close(self):
        self.sock.close()
        for conn in self.held:
            conn.close()


def enroll(tmp_path, provider, host, name):
    """Enroll account NAME on HOST with the module (the scripted user approves)."""
    started = run_module(tmp_path, [host], module_args(provider, name=name))[host.name]
    assert started['pending'], started
    provider.decide(started['user_code'], 'approve')
    done = run_module(tmp_path, [host], module_args(provider, name=name, wait=True, wait_timeout=60))[host.name]
    assert done['approved'] and not done.get('failed'), done


def token_ok(host, name, limit):
    """oidc-token NAME in HOST's container, as a backup job asks for it: (worked, seconds)."""
    started = time.monotonic()
    try:
        res = docker('exec', host.backup, 'sh', '-c', 'OIDC_SOCK=%s/agent.sock oidc-token -e %s' % (STATE, name),
                     check=False, timeout=limit)
        ok = res.returncode == 0 and res.stdout.strip().isdigit()
    except subprocess.TimeoutExpired:
        ok = False
    return ok, time.monotonic() - started


def test_hung_issuer_does_not_block_the_other_accounts(tmp_path, provider, hosts_factory):
    """Point 4: an issuer that accepts connections and never answers holds oidc-agent (its HTTP calls have no time
    limit). The module ends the stuck flow, restarts the agent with the accounts it had, and says which issuer it
    waited for and how long; meanwhile another account of the same agent keeps working within the module's timeout,
    the module's own calls for it too."""
    host, = hosts_factory(1, 'hg')
    enroll(tmp_path, provider, host, 'healthy')
    assert token_ok(host, 'healthy', 20)[0]
    hung = HungIssuer()
    timeout = 30
    results = {}

    def stuck():
        started = time.monotonic()
        results['stuck'] = run_module(tmp_path, [host], module_args(provider, name='stuck', issuer=hung.url,
                                                                    timeout=timeout))[host.name]
        results['stuck_seconds'] = time.monotonic() - started

    def healthy():
        started = time.monotonic()
        results['healthy'] = run_module(tmp_path, [host], module_args(provider, name='healthy',
                                                                      timeout=timeout))[host.name]
        results['healthy_seconds'] = time.monotonic() - started

    try:
        worker = threading.Thread(target=stuck)
        worker.start()
        # oidc-gen of `stuck` reaches the hung issuer through the agent: from then on the agent answers nobody
        deadline = time.monotonic() + 30
        while not hung.accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hung.accepted, 'oidc-gen never reached the hung issuer'
        hang = time.monotonic()
        other = threading.Thread(target=healthy)
        other.start()
        # the backup jobs' view: oidc-token of the healthy account (when, worked, seconds), from the hang on
        tokens = []
        while worker.is_alive() or other.is_alive():
            at = time.monotonic() - hang
            tokens.append((at,) + token_ok(host, 'healthy', timeout + 15))
        worker.join()
        other.join()
    finally:
        hung.close()
    print('stuck: %.1f s, healthy: %.1f s, oidc-token of healthy (from the hang: at, worked, seconds): %s' % (
        results['stuck_seconds'], results['healthy_seconds'], ['%.1f %s %.1f' % t for t in tokens]))
    r = results['stuck']
    assert r['failed'] and r['error'] == 'provider_timeout', r
    assert hung.url in r['msg'] and re.search(r'within \d+ s', r['msg']), r['msg']
    assert results['stuck_seconds'] < timeout + 20
    assert not host.has_flow() and host.sh('test -f %s/stuck' % CONFIG).returncode
    assert host.sh('pgrep -f "^oidc-gen stuck"').returncode == 1, 'the stuck oidc-gen is still running'
    h = results['healthy']
    assert not h.get('failed') and h['changed'] is False and 29 < h['days_left'] <= 30, h
    assert results['healthy_seconds'] < timeout + 20
    # No call waits as long as the module's timeout; tokens flow again within it (the calls caught in the hung agent
    # fail when it is ended), and every later call works (the replacement took over the socket with the account).
    assert tokens and max(seconds for dummy, dummy, seconds in tokens) < timeout, tokens
    first = min(i for i, (dummy, ok, dummy) in enumerate(tokens) if ok)
    assert tokens[first][0] + tokens[first][2] < timeout, tokens
    assert all(ok for dummy, ok, dummy in tokens[first:]), tokens
    # afterwards: the agent answers at once, the healthy account still loaded
    ok, seconds = token_ok(host, 'healthy', 10)
    assert ok and seconds < 5
    assert 'healthy' in host.sh('OIDC_SOCK=%s/agent.sock oidc-add -a' % STATE).stdout

    # The image's check-refresh-token recovers the same way: another stuck flow, then the job.
    hung2 = HungIssuer()
    try:
        host.sh('OIDC_ENCRYPTION_PW=x nohup oidc-gen stuck2 --iss=%s --flow=device --scope=openid --pw-env '
                '--prompt=none --confirm-default --no-url-call >/dev/null 2>&1 &' % hung2.url)
        deadline = time.monotonic() + 30
        while not hung2.accepted and time.monotonic() < deadline:
            time.sleep(0.2)
        assert hung2.accepted
        started = time.monotonic()
        env = dict(os.environ, OIDC_PASSWORD=PASSWORD)
        try:
            res = docker('exec', '-e', 'OIDC_PASSWORD', '-e', 'OIDC_ACCOUNT=healthy', '-e', 'OIDC_AGENT_WAIT=8',
                         '-e', 'OIDC_SOCK=%s/agent.sock' % STATE, '-e', 'OIDC_CONFIG_DIR=%s' % CONFIG,
                         '-e', 'OIDC_STATE_DIR=%s' % STATE, host.backup, 'check-refresh-token', check=False,
                         timeout=90, env=env)
            out, rc = res.stdout + res.stderr, res.returncode
        except subprocess.TimeoutExpired:
            out, rc = 'check-refresh-token still waiting after 90 s', None
        seconds = time.monotonic() - started
    finally:
        hung2.close()
    print('check-refresh-token with a hung agent: rc %s in %.1f s: %s' % (rc, seconds, out))
    assert rc == 0 and 'days left' in out and seconds < 40, out
    assert host.sh('pgrep -f "^oidc-gen stuck2"').returncode == 1


def test_closed_port_is_provider_unreachable(tmp_path, provider, hosts_factory):
    """Point 5: nothing listens at the issuer: provider_unreachable, not registration_failed, and no advice to run
    again for a new code."""
    host, = hosts_factory(1, 'cp')
    closed = 'https://127.0.0.1:%d/' % free_port()
    r = run_module(tmp_path, [host], module_args(provider, issuer=closed))[host.name]
    assert r['failed'] and r['error'] == 'provider_unreachable', r
    assert 'new code' not in r['msg'] and 'issuer' in r['msg'], r['msg']
    assert not host.has_account_file() and not host.has_flow()


def _device_authorization(provider):
    body = urllib.parse.urlencode({'client_id': CLIENT_ID, 'scope': 'openid'}).encode()
    auth = base64.b64encode(('%s:%s' % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()
    req = urllib.request.Request(provider.issuer + 'device/auth', data=body, headers={'Authorization': 'Basic ' + auth})
    with urllib.request.urlopen(req, context=provider.ssl, timeout=10) as res:
        return json.load(res)


def _poll(provider, device_code):
    body = urllib.parse.urlencode({'grant_type': 'urn:ietf:params:oauth:grant-type:device_code',
                                   'device_code': device_code}).encode()
    auth = base64.b64encode(('%s:%s' % (CLIENT_ID, CLIENT_SECRET)).encode()).decode()
    req = urllib.request.Request(provider.issuer + 'token', data=body, headers={'Authorization': 'Basic ' + auth})
    try:
        with urllib.request.urlopen(req, context=provider.ssl, timeout=10) as res:
            return res.status, json.load(res)
    except urllib.error.HTTPError as exc:
        return exc.code, json.load(exc)


def test_forgotten_device_code_is_expired_and_enroll_shows_expired(tmp_path, provider, hosts_factory):
    """Point 5: the lab OP answers like IAM (no interval: oidc-gen polls every 5 s; a code polled after its deadline,
    once cleanup removed it: invalid_grant "Invalid device code"); the module reports expired_token and enroll.yml
    shows the host as expired, not failed."""
    host, = hosts_factory(1, 'ex')
    try:
        provider.settings(device_interval=None, device_code_ttl=8, device_code_cleanup=0)
        answer = _device_authorization(provider)
        assert 'interval' not in answer and answer['expires_in'] == 8, answer
        assert _poll(provider, answer['device_code'])[1]['error'] == 'authorization_pending'
        time.sleep(9)
        assert _poll(provider, answer['device_code']) == (400, {'error': 'invalid_grant',
                                                                'error_description': 'Invalid device code'})
        rc, output, codes, seconds = run_playbook(tmp_path, provider, 'enroll.yml', [host], decisions={'ex1': 'ignore'},
                                                  extra=['-e', 'cloud_backup_enroll_deadline=60'])
        assert rc != 0 and list(codes) == ['ex1'], output[-3000:]
        result, detail = report(output)['ex1']
        assert result == 'expired' and '(expired_token)' in detail, (result, detail)
        assert seconds < 60
        assert not host.has_account_file() and not host.has_flow()
    finally:
        provider.settings(device_interval=1, device_code_ttl=120, device_code_cleanup=0)


def test_no_secret_in_any_output():
    """Every output of this module's runs against every secret known at the end (refresh tokens included)."""
    assert OUTPUTS
    for text in OUTPUTS:
        leaked = [s for s in SECRETS if s and s in text]
        assert not leaked, '%d secret(s) leaked into an ansible output' % len(leaked)
    assert len(SECRETS) > 6
