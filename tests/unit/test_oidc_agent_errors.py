"""Error codes of oidc_agent_account as documented (issue 13, point 5): oidc-gen's real messages for a closed port at
the issuer and for a device code the provider forgot after its deadline (INDIGO IAM: invalid_grant "Invalid device
code"), and every `error` value the module can return listed in its RETURN documentation."""
from __future__ import annotations

import ast
import os
import re

import pytest
import yaml

from ansible_collections.infn_cloud.backup.plugins.module_utils import _oidc_agent as oa
from ansible_collections.infn_cloud.backup.plugins.modules import oidc_agent_account as module

HERE = os.path.dirname(os.path.abspath(__file__))
REPO = os.path.dirname(os.path.dirname(HERE))
MODULE = os.path.join(REPO, 'plugins', 'modules', 'oidc_agent_account.py')
UTILS = os.path.join(REPO, 'plugins', 'module_utils', '_oidc_agent.py')

# oidc-agent 4.2.6, `oidc-gen --iss=https://127.0.0.1:<closed port>/ --flow=device ...` in the backup image (stderr).
CLOSED_PORT = ('The following error occurred during dynamic client registration:\n'
               'Could not get token endpoint from the configuration endpoint. This could be because of a network '
               'issue. But it\'s more likely that your issuer is not correct.\n'
               'Dynamic client registration not successful for this issuer and could not find a public client for '
               'this issuer.\n')
PROMPT = ('\nUsing a browser on any device, visit:\nhttps://iam.cloud.infn.it/device\n\n'
          'And enter the code: WDJB-MJHT\n')


def test_a_closed_port_is_provider_unreachable_not_a_registration_failure():
    assert oa.classify(CLOSED_PORT) == 'provider_unreachable'
    assert oa.classify(CLOSED_PORT, device_flow=True) == 'provider_unreachable'


def test_a_registration_refused_by_a_reachable_provider_stays_registration_failed():
    refused = ('The following error occurred during dynamic client registration:\n'
               'invalid_redirect_uri: redirect_uris must only contain web uris\n'
               'Dynamic client registration not successful for this issuer and could not find a public client for '
               'this issuer.\n')
    assert oa.classify(refused) == 'registration_failed'


@pytest.mark.parametrize('stderr', [
    PROMPT + 'Error: invalid_grant: Invalid device code\n',
    PROMPT + 'Error: invalid_grant: Invalid device code. Run oidc-gen cloud-backup --reauthenticate\n',
])
def test_a_forgotten_device_code_is_expired_token_in_a_device_flow(stderr):
    assert oa.classify(stderr, device_flow=True) == 'expired_token'
    # Outside a device flow an invalid_grant is the refresh token's.
    assert oa.classify('Error: invalid_grant: grant request is invalid\n', device_flow=True) == 'invalid_grant'


def test_a_silent_agent_is_its_own_code():
    agent = oa.OidcAgent(timeout=30)
    assert agent.agent_wait == 10 and oa.agent_wait(60) == 20 and oa.agent_wait(600) == 20 and oa.agent_wait(3) == 2
    error = agent.error(oa.RC_AGENT_HUNG, 'oidc-agent did not answer within 10 s\n', 'oidc-token -f x')
    assert error.error == 'provider_timeout' and '10 s' in error.msg


# ------------------------------------------------------------------ every error value is documented
def _literals_after(source, pattern):
    return set(re.findall(pattern, source))


def returned_errors():
    """Every `error` value the module can return, read from the code."""
    found = {'error'}  # classify()'s fallback, returned as is by main()
    found |= set(oa.RC_ERRORS.values())
    found |= {code for code, dummy in oa.ERRORS}
    for path in (MODULE, UTILS):
        with open(path) as f:
            source = f.read()
        tree = ast.parse(source)
        for node in ast.walk(tree):
            if not isinstance(node, ast.Call):
                continue
            name = node.func.attr if isinstance(node.func, ast.Attribute) else getattr(node.func, 'id', '')
            # self.fail('code', ...), OidcAgentError('code', ...)
            if name in ('fail', 'OidcAgentError') and node.args and isinstance(node.args[0], ast.Constant) \
                    and isinstance(node.args[0].value, str):
                found.add(node.args[0].value)
            # fail_json(..., error='code'), self.done/fail(..., error='code')
            for keyword in node.keywords:
                if keyword.arg == 'error' and isinstance(keyword.value, ast.Constant):
                    found.add(keyword.value.value)
        # error if error != 'error' else 'flow_failed', classify's own 'expired_token'
        found |= _literals_after(source, r"else '([a-z_]+)'\)?, '%s")
    return found


def documented_errors():
    doc = yaml.safe_load(module.RETURN)['error']['description']
    text = ' '.join(doc) if isinstance(doc, list) else doc
    return set(re.findall(r'V\(([a-z_]+)\)', text))


def test_every_returned_error_is_listed_in_return():
    returned, documented = returned_errors(), documented_errors()
    assert {'provider_unreachable', 'provider_timeout', 'expired_token', 'flow_failed', 'invalid_argument',
            'invalid_name', 'no_home', 'not_found'} <= returned
    missing = sorted(returned - documented)
    assert not missing, 'error values the module returns but RETURN does not list: %s' % missing
