"""The oidc-agent runner without a container: parsing of oidc-gen's output (the device prompt on stderr,
ANSI QR code lines, error lines, the JSON dumps it may print), JWT exp decoding, and the argv/environment of
every kind of call (the password and the client secret never on an argv).

The sample outputs are oidc-agent 4.2.6's, as printed in the backup image (the QR block shortened)."""
from __future__ import annotations

import base64
import json
import os

import pytest

from ansible_collections.infn_cloud.backup.plugins.module_utils import _oidc_agent as oa

PASSWORD = 'pw-unit-9f2c1e'
CLIENT_SECRET = 'client-secret-unit-77aa'

QR = (
    '\x1b[48;5;231m                                                                  \x1b[0m\n'
    '\x1b[48;5;231m    \x1b[48;5;16m              \x1b[48;5;231m    \x1b[48;5;16m  \x1b[48;5;231m    '
    '\x1b[48;5;16m  \x1b[48;5;231m                  \x1b[48;5;16m              \x1b[48;5;231m    \x1b[0m\n'
    '\x1b[48;5;231m    \x1b[48;5;16m  \x1b[48;5;231m          \x1b[48;5;16m  \x1b[48;5;231m  '
    '\x1b[48;5;16m  \x1b[48;5;231m    \x1b[48;5;16m      \x1b[48;5;231m  \x1b[0m\n'
)
PROMPT = ('\nUsing a browser on any device, visit:\nhttps://iam.cloud.infn.it/device\n\n'
          'And enter the code: WDJB-MJHT\n'
          'Alternatively you can use the following QR code to visit the above listed URL.\n\n' + QR + '\n')


def b64url(doc):
    return base64.urlsafe_b64encode(json.dumps(doc).encode()).decode().rstrip('=')


IAM_RT = '%s.%s.' % (b64url({'alg': 'none'}), b64url({'jti': 'a5b1c2', 'exp': 1769817600, 'iat': 1767225600}))
SIGNED_JWT = '%s.%s.%s' % (b64url({'alg': 'RS256', 'kid': 'k'}), b64url({'sub': 'x', 'exp': 1700000000}),
                           'c2lnbmF0dXJlLWJ5dGVz')


# ------------------------------------------------------------------ the device prompt
def test_prompt_parsed_from_stderr_with_qr_code():
    found = oa.parse_device_prompt(PROMPT)
    assert found == dict(verification_uri='https://iam.cloud.infn.it/device', user_code='WDJB-MJHT',
                         verification_uri_complete='https://iam.cloud.infn.it/device?user_code=WDJB-MJHT')


def test_prompt_incomplete_while_oidc_gen_is_still_registering():
    assert oa.parse_device_prompt('Registering Client ...\n') is None
    assert oa.parse_device_prompt('\nUsing a browser on any device, visit:\nhttps://iam.cloud.infn.it/device\n') is None
    assert oa.parse_device_prompt('') is None
    assert oa.parse_device_prompt(None) is None


def test_prompt_with_query_in_uri_and_coloured_code_line():
    text = ('Using a browser on any device, visit:\n\x1b[1mhttps://op.example.org/device?lang=it\x1b[0m\n'
            'And enter the code: \x1b[32mAB12-CD34\x1b[0m\n' + QR)
    found = oa.parse_device_prompt(text)
    assert found['verification_uri'] == 'https://op.example.org/device?lang=it'
    assert found['user_code'] == 'AB12-CD34'
    assert found['verification_uri_complete'] == 'https://op.example.org/device?lang=it&user_code=AB12-CD34'


def test_qr_lines_are_dropped_even_when_drawn_with_block_characters():
    lines = oa.text_lines(PROMPT + '\u2588\u2588  \u2580\u2584\u2588\n' + QR)
    assert lines == ['Using a browser on any device, visit:', 'https://iam.cloud.infn.it/device',
                     'And enter the code: WDJB-MJHT',
                     'Alternatively you can use the following QR code to visit the above listed URL.']
    assert not any('\x1b' in line for line in lines)


def test_code_is_url_encoded_in_the_complete_uri():
    assert oa.complete_uri('https://x/device', 'A B&C') == 'https://x/device?user_code=A%20B%26C'


# ------------------------------------------------------------------ outcomes and errors
@pytest.mark.parametrize('stderr, error', [
    (PROMPT + 'Error: access_denied: End-User denied the authorization request\n', 'access_denied'),
    (PROMPT + 'Error: expired_token: device code is expired\n', 'expired_token'),
    (PROMPT + 'Error: Device code is not valid any more!\n', 'expired_token'),
    ('Error: reached maximum number of tries\n', 'wrong_password'),
    ('Error: invalid_grant: grant request is invalid. Run oidc-gen cloud-backup --reauthenticate\n', 'invalid_grant'),
    ('Could not get token endpoint from https://iam.example.org/\n', 'provider_unreachable'),
    ('The following error occurred during dynamic client registration:\n'
     'invalid_redirect_uri: redirect_uris must only contain web uris\n'
     'Dynamic client registration not successful for this issuer and could not find a public client for this '
     'issuer.\n', 'registration_failed'),
    ('Error: invalid_client: client authentication failed\n', 'invalid_client'),
    ('something else went wrong\n', 'error'),
])
def test_classify_distinguishes_the_outcomes(stderr, error):
    assert oa.classify(stderr) == error


def test_excerpt_keeps_the_error_and_drops_prompt_and_qr():
    text = PROMPT + 'Error: access_denied: End-User denied the authorization request\n'
    assert oa.excerpt(text) == 'Error: access_denied: End-User denied the authorization request'


def test_excerpt_drops_the_client_configuration_dump_of_a_failed_save():
    # oidc-gen --reauthenticate printed this (secrets included) after "Error: Unknown cJSON Type".
    dump = json.dumps({'client_id': 'cid', 'client_secret': CLIENT_SECRET,
                       'registration_access_token': 'T5L2CBKIyceXkrEwClggzdRFA59UMjclYVldha-CS6e',
                       'redirect_uris': ['http://localhost:4242']}, indent='\t')
    text = ('Generating account configuration ...\nError: Unknown cJSON Type\nOnly saving the account configuration. '
            'You might want to save the following content to another location.\n\n' + dump + '\n')
    out = oa.excerpt(text)
    assert CLIENT_SECRET not in out and 'T5L2CBKI' not in out and 'client_id' not in out
    assert 'Unknown cJSON Type' in out


def test_excerpt_masks_a_refresh_token_printed_by_oidc_gen_delete():
    text = ("Error: Could not revoke token: unsupported_token_type: Structured JWT Tokens cannot be revoked\n"
            "Please revoke the refresh token '%s' manually!\n" % IAM_RT)
    out = oa.excerpt(text, lines=4)
    assert IAM_RT not in out and IAM_RT.split('.')[1] not in out
    opaque = "Please revoke the refresh token 'n1iF_oH-YMlk48y89viRFZ0eRMxraHbwK5DdSX9xjcA' manually!"
    assert 'n1iF_oH' not in oa.excerpt(opaque)


def test_scrub_masks_given_secrets():
    assert oa.scrub('a %s b %s' % (PASSWORD, CLIENT_SECRET), (PASSWORD, CLIENT_SECRET)) == 'a ******** b ********'


# ------------------------------------------------------------------ JWT exp
def test_iam_like_unsigned_jwt_exp():
    assert oa.jwt_exp(IAM_RT) == 1769817600


def test_signed_jwt_exp():
    assert oa.jwt_exp(SIGNED_JWT) == 1700000000


@pytest.mark.parametrize('token', [
    'n1iF_oH-YMlk48y89viRFZ0eRMxraHbwK5DdSX9xjcA',        # opaque (oidc-provider)
    '', None, 'a.b', 'a.b.c.d',
    '%s.%s.' % (b64url({'alg': 'none'}), 'not-base64-json!'),
    '%s.%s.' % (b64url({'alg': 'none'}), b64url({'jti': 'x'})),                 # no exp
    '%s.%s.' % (b64url({'alg': 'none'}), b64url({'exp': 'tomorrow'})),          # exp not a number
    '%s.%s.' % (b64url({'alg': 'none'}), b64url({'exp': True})),                # bool is not a number
    '%s.%s.' % (b64url({'alg': 'none'}), b64url(['exp', 1])),                   # not an object
])
def test_no_exp_for_opaque_or_malformed_tokens(token):
    assert oa.jwt_exp(token) is None


def test_refresh_token_exp_from_oidc_gen_print():
    account = {'name': 'cloud-backup', 'issuer_url': 'https://iam.cloud.infn.it/', 'client_id': 'cid',
               'client_secret': CLIENT_SECRET, 'refresh_token': IAM_RT, 'scope': 'openid profile offline_access'}
    assert oa.refresh_token_exp(json.dumps(account, indent='\t') + '\n') == (1769817600, 'https://iam.cloud.infn.it/')
    account['refresh_token'] = 'opaque-value-without-dots'
    assert oa.refresh_token_exp(json.dumps(account)) == (None, 'https://iam.cloud.infn.it/')
    assert oa.refresh_token_exp('Error: reached maximum number of tries') == (None, None)


def test_expiry_fields():
    info = oa.expiry(1769817600, 1769817600 - 86400 * 3 - 43200, 'jwt')
    assert info == dict(refresh_token_expires_at=dict(epoch=1769817600, iso='2026-01-31T00:00:00Z'),
                        days_left=3.5, refresh_token_expiry_source='jwt')
    assert oa.expiry(100, 100 + 86400, 'recorded')['days_left'] == -1.0


# ------------------------------------------------------------------ probe output
def test_parse_probe():
    err = PROMPT.encode()
    record = json.dumps({'approved_at': 1767225600, 'kind': 'present'}).encode()
    out = '\n'.join([
        'now=1767225700', 'home=/home/user', 'socket=/home/user/.local/state/oidc-agent/agent.sock',
        'config_dir=/home/user/.config/oidc-agent', 'agent=up', 'loaded=1', 'account=1', 'account_mtime=1767225600',
        'record=' + base64.b64encode(record).decode(), 'flow_kind=present', 'flow_started=1767225650',
        'flow=running', 'flow_err=' + base64.b64encode(err).decode(), ''])
    facts = oa.parse_probe(out)
    assert facts['agent_up'] and facts['loaded'] and facts['account']
    assert facts['now'] == 1767225700 and facts['account_mtime'] == 1767225600
    assert facts['record'] == {'approved_at': 1767225600, 'kind': 'present'}
    assert facts['flow'] == 'running' and facts['flow_started'] == 1767225650
    assert oa.parse_device_prompt(facts['flow_err'])['user_code'] == 'WDJB-MJHT'
    empty = oa.parse_probe('now=5\nagent=down\nloaded=0\naccount=0\nflow=none\n')
    assert not empty['agent_up'] and not empty['account'] and empty['record'] == {} and empty['flow'] == 'none'


# ------------------------------------------------------------------ argv: no secret, ever
def all_calls(agent):
    """argv/env of every kind of call the runner makes."""
    calls = []
    for script, secret in ((oa.PROBE, False), (oa.ENSURE_AGENT, False), (oa.LOAD, True), (oa.REFRESH, False),
                           (oa.PRINT, True), (oa.DELETE, True), (oa.END_FLOW, False), (oa.WRITE_RECORD, False)):
        calls.append(agent.command(script, ['cloud-backup'], secret=secret) + (secret,))
    prepare = agent.command(oa.PREPARE_FLOW, ['cloud-backup', 'present', '1'], stdin=True)
    calls.append(prepare + (False,))
    args = oa.gen_args('cloud-backup', 'https://iam.cloud.infn.it/', ['openid', 'profile', 'offline_access'],
                       ca_file='/etc/ca.pem', audience='minio-af-it', client_id='cid', redirect_uri='http://localhost:4242',
                       client_file='client.json')
    calls.append(agent.command(oa.RUN_FLOW, ['cloud-backup'] + args, secret=True, detach=True) + (True,))
    calls.append(agent.command(oa.RUN_FLOW, ['cloud-backup'] + oa.reauth_args('cloud-backup'), secret=True,
                               detach=True) + (True,))
    return calls


@pytest.mark.parametrize('container', ['cloud-backup', None])
def test_argv_never_holds_the_password_or_the_client_secret(container, monkeypatch):
    monkeypatch.setenv('OIDC_ENCRYPTION_PW', 'inherited-from-the-controller')
    agent = oa.OidcAgent(container=container, container_user='user', password=PASSWORD, client_secret=CLIENT_SECRET)
    for argv, env, secret in all_calls(agent):
        joined = '\0'.join(argv)
        assert PASSWORD not in joined and CLIENT_SECRET not in joined
        assert 'inherited-from-the-controller' not in joined
        if secret:
            # The value only in the docker client's (or the tool's) environment.
            assert env['OIDC_ENCRYPTION_PW'] == PASSWORD
            if container:
                assert argv[argv.index('-e') + 1] == 'OIDC_ENCRYPTION_PW'
                assert not any(a.startswith('OIDC_ENCRYPTION_PW=') for a in argv)
        else:
            # Calls that need no password do not get one (nor the controller's own).
            assert 'OIDC_ENCRYPTION_PW' not in env
            assert '-e' not in argv
        assert CLIENT_SECRET not in ''.join('%s=%s' % kv for kv in env.items())


def test_docker_exec_shape():
    agent = oa.OidcAgent(container='cloud-backup', container_user='user', password=PASSWORD, timeout=42)
    argv, env = agent.command(oa.LOAD, ['cloud-backup'], secret=True)
    assert argv[:6] == ['docker', 'exec', '-u', 'user', '-e', 'OIDC_ENCRYPTION_PW']
    assert argv[6:10] == ['cloud-backup', 'timeout', '--kill-after=5', '42']
    assert argv[10:12] == ['sh', '-c'] and argv[-2:] == ['oidc-agent-account', 'cloud-backup']
    detached, dummy = agent.command(oa.RUN_FLOW, ['cloud-backup'], secret=True, detach=True)
    assert detached[:3] == ['docker', 'exec', '-d'] and 'timeout' not in detached
    stdin, dummy = agent.command(oa.PREPARE_FLOW, ['cloud-backup', 'present', '1'], stdin=True)
    assert stdin[:3] == ['docker', 'exec', '-i']
    host, dummy = oa.OidcAgent(timeout=7).command(oa.PROBE, ['x'])
    assert host[:4] == ['timeout', '--kill-after=5', '7', 'sh']


def test_gen_args():
    args = oa.gen_args('cloud-backup', 'https://iam.cloud.infn.it/', ['openid', 'profile', 'offline_access'])
    assert args == ['cloud-backup', '--iss=https://iam.cloud.infn.it/', '--flow=device',
                    '--scope=openid profile offline_access', '--pw-env', '--prompt=none', '--confirm-default',
                    '--no-url-call']
    pre = oa.gen_args('b', 'https://x/', ['openid'], client_id='cid', client_file='client.json', ca_file='/ca.pem',
                      audience='aud1 aud2', redirect_uri='http://localhost:4242')
    assert '--file=client.json' in pre and not any(a.startswith('--client-id') for a in pre)
    assert {'--cp=/ca.pem', '--aud=aud1 aud2', '--redirect-uri=http://localhost:4242'} <= set(pre)
    public = oa.gen_args('b', 'https://x/', ['openid'], client_id='public-client')
    assert '--client-id=public-client' in public
    assert oa.reauth_args('b') == ['b', '--reauthenticate', '--flow=device', '--pw-env', '--prompt=none',
                                   '--confirm-default', '--no-url-call']


@pytest.mark.parametrize('name, ok', [('cloud-backup', True), ('a.b_c@d+e', True), ('../x', False), ('a/b', False),
                                      ('', False), ('-x', False), ('issuer.config', False), ('x' * 65, False),
                                      ('a b', False)])
def test_valid_name(name, ok):
    assert oa.valid_name(name) is ok


def test_missing_docker_binary_is_a_clear_error():
    agent = oa.OidcAgent(container='c', docker_binary=os.path.join(os.sep, 'nonexistent', 'docker'))
    with pytest.raises(oa.OidcAgentError) as exc:
        agent.probe('cloud-backup')
    assert exc.value.error == 'not_found' and 'nonexistent' in exc.value.msg


# ---------------------------------------------------------------- the flow's liveness (the real PROBE script)
# oidc-gen ends a moment before the runner records its exit status: a probe in between must not call the flow
# stale ("ended without a result"); that window widened under load and made enrollment fail intermittently.
def _probe_in(tmp_path, monkeypatch):
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    for tool in ("oidc-gen", "oidc-add"):  # the PRELUDE needs oidc-gen on PATH; oidc-add -a: no agent
        (bin_dir / tool).write_text("#!/bin/sh\nexit 1\n")
        (bin_dir / tool).chmod(0o755)
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("PATH", "%s:%s" % (bin_dir, os.environ["PATH"]))
    flow = tmp_path / ".local/state/oidc-agent/flows/acct"
    flow.mkdir(parents=True)
    (flow / "started").write_text("%d\n" % 1)
    (flow / "kind").write_text("present\n")
    (flow / "err").write_text("")
    return flow, lambda: oa.OidcAgent(timeout=10).probe("acct")


def test_probe_flow_running_while_the_runner_lives_after_oidc_gen_ended(tmp_path, monkeypatch):
    import subprocess
    flow, probe = _probe_in(tmp_path, monkeypatch)
    gen = subprocess.Popen(["sh", "-c", "exit 0"])
    gen.wait()
    runner = subprocess.Popen(["sh", "-c", "sleep 30", "oidc-agent-account", "acct"])
    try:
        (flow / "pid").write_text("%d\n" % gen.pid)  # oidc-gen is gone
        (flow / "runner").write_text("%d\n" % runner.pid)  # its runner has not written rc yet
        assert probe()["flow"] == "running"
        (flow / "finished").write_text("100\n")
        (flow / "rc").write_text("0\n")
        facts = probe()
        assert facts["flow"] == "finished" and facts["flow_rc"] == 0
    finally:
        runner.kill()
        runner.wait()


def test_probe_flow_stale_when_runner_died_without_rc(tmp_path, monkeypatch):
    import subprocess
    flow, probe = _probe_in(tmp_path, monkeypatch)
    dead = subprocess.Popen(["sh", "-c", "exit 0"])
    dead.wait()
    (flow / "pid").write_text("%d\n" % dead.pid)
    (flow / "runner").write_text("%d\n" % dead.pid)
    assert probe()["flow"] == "stale"


def test_probe_ignores_a_recycled_pid(tmp_path, monkeypatch):
    import subprocess
    flow, probe = _probe_in(tmp_path, monkeypatch)
    other = subprocess.Popen(["sleep", "30"])  # alive, but not a flow's process
    try:
        (flow / "pid").write_text("%d\n" % other.pid)
        (flow / "runner").write_text("%d\n" % other.pid)
        assert probe()["flow"] == "stale"
    finally:
        other.kill()
        other.wait()


def test_probe_of_a_flow_without_output_yet(tmp_path, monkeypatch):
    flow, probe = _probe_in(tmp_path, monkeypatch)
    (flow / "err").unlink()  # prepared, the runner not started yet: running for 20 s, not an error
    (flow / "started").write_text("%d\n" % __import__("time").time())
    assert probe()["flow"] == "running"
