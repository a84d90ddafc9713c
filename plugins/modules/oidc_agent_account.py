#!/usr/bin/python
# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r'''
module: oidc_agent_account
short_description: Enroll, verify, renew or remove an oidc-agent account with the device flow
version_added: 1.0.0
description:
  - Manages one oidc-agent 4.x account configuration (a I(shortname)) for unattended use, typically inside
    the backup container, where the image's jobs get access tokens from it.
  - Runs an agent for scripts (C(oidc-agent --no-autoload --no-autoreauthenticate)) on a fixed socket,
    C(~/.local/state/oidc-agent/agent.sock) of the user the tools run as, and reuses it on every call.
  - O(state=present) is unchanged when the account exists and a forced token refresh (C(oidc-token -f))
    works; the account is first loaded into the agent with O(password) when needed, for example after the
    agent or the container restarted. Otherwise it starts the OAuth 2.0 device flow (C(oidc-gen --flow=device))
    in the background and returns at once with the code to approve (RV(user_code), RV(verification_uri),
    RV(verification_uri_complete)) and RV(pending=true), or waits for the approval with O(wait=true).
  - A later call finds the same pending flow (it never starts a second one) and, with O(wait=true), polls it
    until the user approved it (changed, the account is saved), denied it (failure with
    RV(error=access_denied)) or let the code expire (failure with RV(error=expired_token)); in both
    failures no account configuration is written. Running out of O(wait_timeout) fails with
    RV(error=wait_timeout) and leaves the flow pending.
  - An existing account whose refresh token no longer works (C(invalid_grant)) gets a re-authentication flow.
  - O(state=renewed) re-authenticates an existing account (C(oidc-gen --reauthenticate)), for a new refresh
    token, with the same pending/wait behaviour; O(renew_within_days) limits that to tokens about to expire.
  - O(state=absent) stops a pending flow and deletes the account with C(oidc-gen -d), which revokes its
    refresh token at the provider first.
  - The expiry of the refresh token is returned, decoded from the token when it is a JWT (INDIGO IAM's are),
    otherwise the approval time recorded by this module plus O(refresh_token_lifetime_days). No token, password
    or client secret is ever returned or logged.
author:
  - INFN Cloud backup contributors (@infn-cloud)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: Predicts without starting the agent, a flow or a refresh; an account already loaded in a running
      agent is checked with a forced refresh, other accounts through their stored refresh token expiry.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  name:
    description:
      - The account short name (C(oidc-gen) I(shortname)), also the name of its configuration file.
    type: str
    required: true
    aliases: [shortname]
  state:
    description:
      - V(present) ensures a working account, starting the device flow when there is none.
      - V(renewed) re-authenticates an existing account (a new refresh token).
      - V(absent) revokes and removes the account and stops any pending flow.
    type: str
    choices: [present, renewed, absent]
    default: present
  issuer:
    description:
      - The OpenID Connect issuer URL (http or https) of a new account. Ignored for existing accounts and for
        O(state=renewed), which keep the issuer of their configuration (a different one only produces a warning).
    type: str
    default: https://iam.cloud.infn.it/
  scopes:
    description:
      - Scopes requested for a new account. C(offline_access) is needed for a refresh token.
      - At least one; each a scope token of RFC 6749 (printable ASCII without spaces, quotes or backslashes).
    type: list
    elements: str
    default: [openid, profile, offline_access]
  client_id:
    description:
      - Client id of a client registered beforehand at the provider (it must allow the device code grant),
        one line.
      - When omitted, C(oidc-gen) registers a client dynamically.
    type: str
  client_secret:
    description:
      - Secret of the client O(client_id), one line. Handed to C(oidc-gen) in a 0600 file (C(oidc-gen --file)),
        never on a command line.
    type: str
  redirect_uri:
    description:
      - Redirect URI registered for the client (C(oidc-gen --redirect-uri)), an absolute URI, for example
        V(http://localhost:4242), which some providers' dynamic registration needs.
    type: str
  audience:
    description:
      - Audience of the access tokens of a new account (C(oidc-gen --aud)), space-separated when several, one line.
    type: str
  ca_file:
    description:
      - CA bundle for TLS to the provider (C(oidc-gen --cp)), for a provider with a private CA.
      - An absolute path as seen by the tools, so inside the container with O(container).
    type: str
  password:
    description:
      - The password encrypting the account configuration. Required with O(state=present) and
        O(state=renewed), and with O(state=absent) when the account exists (to revoke its token).
      - Passed as E(OIDC_ENCRYPTION_PW) (C(--pw-env)) in the environment only.
    type: str
  container:
    description:
      - Run the oidc-agent tools inside this running container (by name or id) through C(docker exec) (the docker
        CLI must be on the target). The password is handed over as a C(-e OIDC_ENCRYPTION_PW) flag without value.
      - The container should run an init that reaps the agent's children (compose C(init) V(true)).
      - When omitted, the tools run directly on the target.
    type: str
  container_user:
    description:
      - The user C(docker exec) runs the tools as (C(-u)), a name or uid with an optional V(:group) or V(:gid);
        default is the container's own user.
    type: str
  timeout:
    description:
      - Seconds after which one call of a tool is terminated (killed 5 seconds later) and the task fails.
      - An agent that does not answer within a third of it (2 to 20 seconds) is taken as hung (oidc-agent's requests
        to a provider have no time limit, and while one waits the agent answers no account); it is restarted with
        the accounts it had loaded and the device flows it was stuck on are ended (RV(agent_restarted)).
    type: int
    default: 60
  wait:
    description:
      - Wait for the approval of a started or pending flow, up to O(wait_timeout) seconds.
    type: bool
    default: false
  wait_timeout:
    description:
      - Seconds to wait with O(wait=true). INDIGO IAM's device codes live 600 seconds.
    type: int
    default: 600
  refresh_token_lifetime_days:
    description:
      - Lifetime of a refresh token that is not a JWT, counted from its approval (INDIGO IAM, 30 days).
    type: int
    default: 30
  renew_within_days:
    description:
      - With O(state=renewed), re-authenticate only when the refresh token expires within this many days;
        otherwise the account is left unchanged (0 or more). Default is to always re-authenticate.
    type: int
notes:
  - Requires oidc-agent 4.x (C(oidc-agent), C(oidc-gen), C(oidc-add), C(oidc-token)), C(sh) and coreutils
    C(timeout) where the tools run; the infn_cloud backup image has them.
  - Files are written under C(umask 077) in 0700 directories, the account configurations in
    E(OIDC_CONFIG_DIR) (default C(~/.config/oidc-agent)), the agent socket, the pending flows and the
    approval records in C(~/.local/state/oidc-agent). Keep the home directory on a persistent volume.
  - Other programs (for example the image's C(check-refresh-token)) reach the same agent with
    E(OIDC_SOCK=~/.local/state/oidc-agent/agent.sock).
requirements:
  - oidc-agent >= 4.2 on the target or in the container
  - the docker CLI on the target when O(container) is set
seealso:
  - name: oidc-agent documentation
    description: oidc-gen, oidc-add, oidc-token and the agent for scripts.
    link: https://indigo-dc.gitbook.io/oidc-agent/
'''

EXAMPLES = r'''
- name: Start the device flow in the backup container (returns at once with the code)
  infn_cloud.backup.oidc_agent_account:
    name: cloud-backup
    password: "{{ vault_oidc_password }}"
    container: cloud-backup
  register: enroll
  no_log: true

- name: Show the code
  ansible.builtin.debug:
    msg: "Approve {{ enroll.user_code }} at {{ enroll.verification_uri_complete }}"
  when: enroll.pending

- name: Wait up to 10 minutes for the approval of the same flow
  infn_cloud.backup.oidc_agent_account:
    name: cloud-backup
    password: "{{ vault_oidc_password }}"
    container: cloud-backup
    wait: true
    wait_timeout: 600
  no_log: true
  when: enroll.pending

- name: A pre-registered client and a private CA
  infn_cloud.backup.oidc_agent_account:
    name: backup
    issuer: https://iam.example.org/
    client_id: backup-client
    client_secret: "{{ vault_client_secret }}"
    audience: minio-af-it
    ca_file: /etc/ssl/private-ca.pem
    password: "{{ vault_oidc_password }}"
    container: cloud-backup
  no_log: true

- name: Re-authenticate when the refresh token expires within 7 days
  infn_cloud.backup.oidc_agent_account:
    name: cloud-backup
    state: renewed
    renew_within_days: 7
    password: "{{ vault_oidc_password }}"
    container: cloud-backup
  no_log: true

- name: Revoke and remove the account
  infn_cloud.backup.oidc_agent_account:
    name: cloud-backup
    state: absent
    password: "{{ vault_oidc_password }}"
    container: cloud-backup
  no_log: true
'''

RETURN = r'''
name:
  description: The account short name.
  returned: always
  type: str
  sample: cloud-backup
pending:
  description: Whether a device flow waits for its approval (started by this call or an earlier one).
    In check mode, whether one would be started.
  returned: always
  type: bool
  sample: true
approved:
  description: Whether this call saw a device flow approved and the account saved.
  returned: always
  type: bool
  sample: false
user_code:
  description: The code to enter at RV(verification_uri). V(null) in check mode.
  returned: when a flow is pending, and on approval or failure of a flow
  type: str
  sample: WDJB-MJHT
verification_uri:
  description: Where to enter RV(user_code) (printed by C(oidc-gen)).
  returned: when a flow is pending, and on approval or failure of a flow
  type: str
  sample: https://iam.cloud.infn.it/device
verification_uri_complete:
  description: RV(verification_uri) with the code as C(user_code) query parameter, one link to open.
  returned: when a flow is pending, and on approval or failure of a flow
  type: str
  sample: https://iam.cloud.infn.it/device?user_code=WDJB-MJHT
flow_started_at:
  description: When the pending flow was started (epoch seconds).
  returned: when a flow is pending or was collected by this call
  type: int
  sample: 1767225600
account_exists:
  description: Whether the account configuration exists after the call.
  returned: always
  type: bool
  sample: true
account_loaded:
  description: Whether this call loaded the account into the agent (C(oidc-add)), for example after a restart.
  returned: always
  type: bool
  sample: false
agent_started:
  description: Whether this call started the agent.
  returned: always
  type: bool
  sample: false
agent_socket:
  description: The socket of the agent (E(OIDC_SOCK) for other programs), as seen where the tools run.
  returned: when the tools could be reached
  type: str
  sample: /home/user/.local/state/oidc-agent/agent.sock
refresh_token_expires_at:
  description: When the refresh token expires.
  returned: when the account exists and works
  type: dict
  contains:
    epoch:
      description: Seconds since the epoch.
      type: int
      sample: 1769817600
    iso:
      description: ISO 8601, UTC.
      type: str
      sample: "2026-01-31T00:00:00Z"
days_left:
  description: Days until RV(refresh_token_expires_at), two decimals (negative when expired).
  returned: when the account exists and works
  type: float
  sample: 29.98
refresh_token_expiry_source:
  description: V(jwt) (the exp claim of the refresh token), V(recorded) (approval time recorded by this module
    plus O(refresh_token_lifetime_days)) or V(account_file) (modification time of the account configuration
    plus O(refresh_token_lifetime_days), for accounts made elsewhere).
  returned: when the account exists and works
  type: str
  sample: jwt
revoked:
  description: Whether the refresh token was revoked at the provider before the account was removed.
  returned: when O(state=absent) removed an account
  type: bool
  sample: true
agent_restarted:
  description: Whether this call found the agent hung (silent for a third of O(timeout), at most 20 s; an issuer that
    accepts connections and never answers holds it) and restarted it, ending the device flows it was stuck on and
    reloading the accounts it had (a warning names them).
  returned: always
  type: bool
  sample: false
error:
  description:
    - Short reason of a failure.
    - V(access_denied) the user declined the device flow; V(expired_token) the device code expired before its
      approval (also when the provider, like INDIGO IAM after its cleanup, answers C(invalid_grant) "Invalid device
      code"); V(wait_timeout) not approved within O(wait_timeout), the flow stays pending.
    - V(wrong_password) the account does not decrypt with O(password); V(invalid_grant) the refresh token was refused;
      V(invalid_client) the client was refused; V(registration_failed) the provider refused the dynamic client
      registration.
    - V(provider_unreachable) the issuer could not be reached (closed port, DNS, TLS); V(provider_timeout) the issuer
      accepts connections and never answers (the message names it and the time waited; the agent was restarted).
    - V(agent_unreachable) no oidc-agent answers; V(account_not_loaded) the account is not loaded in the agent;
      V(flow_failed) the device flow ended without a result; V(flow_running) another device flow of the account runs.
    - V(no_account) no such account (O(state=renewed)); V(account_exists) an account configuration exists already;
      V(no_password) O(password) is missing or empty; V(no_home) E(HOME) is not set where the tools run.
    - V(invalid_name) O(name) is not a plain short name; V(invalid_argument) another option is invalid.
    - V(timeout) a call of a tool ran out of O(timeout); V(exec_failed) C(docker exec) failed; V(not_found) a tool
      (oidc-agent, sh, timeout, docker) is missing; V(error) any other failure of a tool.
  returned: failure
  type: str
  sample: access_denied
'''

import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.infn_cloud.backup.plugins.module_utils._oidc_agent import (
    DEFAULT_ISSUER, DEFAULT_SCOPES, RC_AGENT_HUNG, OidcAgent, OidcAgentError, argument_problems, classify, excerpt, expiry,
    gen_args, normalize_issuer, parse_device_prompt, reauth_args, valid_name)

POLL_SECONDS = 1
CLIENT_FILE = 'client.json'
OUTCOMES = {
    'access_denied': 'the device flow of %s was denied at the provider (access_denied)',
    'expired_token': 'the device code of %s expired before it was approved (expired_token)',
    'provider_unreachable': 'the issuer of %s could not be reached (provider_unreachable)',
}
# What to do after a failed flow, when it is not just "run again for a new code".
NEXT = {
    'provider_unreachable': 'check the issuer URL, the CA (ca_file) and that the provider answers, then run again',
}


class Account:
    """One account: read the state, decide, act unless check mode, one exit."""

    def __init__(self, module):
        self.module, self.p = module, module.params
        self.name = self.p['name']
        self.check = module.check_mode
        p = self.p
        self.agent = OidcAgent(container=p['container'], container_user=p['container_user'], timeout=p['timeout'],
                               password=p['password'], client_secret=p['client_secret'],
                               docker_binary=module.get_bin_path('docker', required=True) if p['container'] else 'docker',
                               check=self.check)
        # the issuer of the account, once known (its record or its configuration), for messages
        self.issuer = None
        self.result = dict(changed=False, name=self.name, pending=False, approved=False, account_exists=False,
                           account_loaded=False, agent_started=False, agent_restarted=False)

    # ------------------------------------------------------------------ exits
    def restarts(self):
        """Warn once about each restart of a hung agent by this call."""
        for restart in self.agent.restarts:
            self.result['agent_restarted'] = self.result['agent_started'] = True
            self.module.warn('oidc-agent did not answer within %d s (an issuer that accepts connections and never '
                             'answers holds it: its requests have no time limit): it was restarted%s%s%s' % (
                                 restart['waited'],
                                 '; device flows ended: %s' % ', '.join(restart['stopped']) if restart['stopped'] else '',
                                 '; accounts reloaded: %s' % ', '.join(restart['reloaded']) if restart['reloaded'] else '',
                                 '; not reloaded (another password; their jobs reload them): %s' % ', '.join(
                                     restart['not_reloaded']) if restart['not_reloaded'] else ''))
        self.agent.restarts = []

    def done(self, **extra):
        self.restarts()
        self.result.update(extra)
        self.module.exit_json(**self.result)

    def fail(self, error, msg, **extra):
        self.restarts()
        self.result.update(extra)
        self.module.fail_json(msg=msg, error=error, **self.result)

    def hung_issuer(self, what):
        """The failure of a call that found the agent silent twice (restarted both times): its own issuer hangs."""
        issuer = self.issuer or self.p['issuer']
        if self.check:
            self.fail('provider_timeout', '%s: oidc-agent did not answer within %d s: the issuer %s (or another '
                                          'account\'s) holds it; check mode does not restart it' % (
                                              what, self.agent.agent_wait, issuer))
        waited = 2 * (self.agent.agent_wait + 2)
        self.fail('provider_timeout', '%s: the issuer %s did not answer within %d s (oidc-agent waited on it twice, '
                                      'its requests have no time limit); oidc-agent was restarted so that the other '
                                      'accounts keep working: check the issuer and run again' % (what, issuer, waited))

    # ------------------------------------------------------------------ facts
    def probe(self):
        facts = self.agent.probe(self.name)
        self.result['agent_socket'] = facts.get('socket')
        self.result['account_exists'] = facts['account']
        self.issuer = self.issuer or facts['record'].get('issuer')
        return facts

    def prompt(self, facts):
        found = parse_device_prompt(facts.get('flow_err', ''))
        if found:
            self.result.update(found)
        return found

    def expiry(self, facts):
        """Expiry of the refresh token: its exp when a JWT, else the recorded approval (or file time) + lifetime."""
        now = facts.get('now') or int(time.time())
        lifetime = self.p['refresh_token_lifetime_days'] * 86400
        exp = issuer = None
        if self.p['password']:
            exp, issuer = self.agent.account_info(self.name)
            self.issuer = issuer or self.issuer
        if issuer and self.p['state'] == 'present' and normalize_issuer(issuer) != normalize_issuer(self.p['issuer']):
            self.module.warn('account %s uses the issuer %s, not %s; it is left as it is (remove it with '
                             'state=absent to enroll it with another issuer)' % (self.name, issuer, self.p['issuer']))
        if exp:
            return expiry(exp, now, 'jwt')
        approved_at = facts['record'].get('approved_at')
        if isinstance(approved_at, int):
            return expiry(approved_at + lifetime, now, 'recorded')
        if facts.get('account_mtime'):
            return expiry(facts['account_mtime'] + lifetime, now, 'account_file')
        return {}

    # ------------------------------------------------------------------ the flow
    def start(self, kind):
        """Start the device flow of a new account (present) or a re-authentication (renewed)."""
        if self.check:
            self.done(changed=True, pending=True, user_code=None, verification_uri=None,
                      verification_uri_complete=None)
        p = self.p
        self.result['agent_started'] = self.agent.ensure_agent() or self.result['agent_started']
        client = None
        if kind == 'present':
            if p['client_id']:
                client = dict(client_id=p['client_id'])
                if p['client_secret']:
                    client['client_secret'] = p['client_secret']
            args = gen_args(self.name, p['issuer'], p['scopes'], ca_file=p['ca_file'], audience=p['audience'],
                            redirect_uri=p['redirect_uri'], client_file=CLIENT_FILE if client else None)
        else:
            args = reauth_args(self.name)
        issuer = p['issuer'] if kind == 'present' else (self.issuer or p['issuer'])
        self.agent.start_flow(self.name, kind, args, client_config=client, issuer=issuer)
        self.result['changed'] = True
        facts = self.agent.wait_prompt(self.name)
        if facts.get('flow') == 'finished':
            self.conclude(facts)
        if not self.prompt(facts):
            self.fail('flow_failed', 'oidc-gen for %s ended without a device code: %s' % (
                self.name, excerpt(facts.get('flow_err', ''), self.agent.secrets) or 'no output'))
        self.result.update(pending=True, flow_started_at=facts.get('flow_started'))
        if p['wait']:
            self.wait()
        self.done()

    def wait(self):
        """Poll the pending flow until it ends or wait_timeout passes."""
        deadline = time.monotonic() + self.p['wait_timeout']
        while True:
            facts = self.probe()
            self.prompt(facts)
            if facts.get('flow') == 'finished':
                self.conclude(facts)
            if facts.get('flow') != 'running':
                self.fail('flow_failed', 'the device flow of %s ended without a result (was the container or the '
                                         'agent restarted?); run again for a new code' % self.name, pending=False)
            if time.monotonic() >= deadline:
                self.fail('wait_timeout', 'the device flow of %s was not approved within %d s; it is still pending: '
                                          'approve it at %s (code %s) and run again to collect it' % (
                                              self.name, self.p['wait_timeout'],
                                              self.result.get('verification_uri_complete'),
                                              self.result.get('user_code')),
                          pending=True, flow_started_at=facts.get('flow_started'))
            time.sleep(POLL_SECONDS)

    def conclude(self, facts):
        """A finished flow: approved (record it, prove the account) or failed (a distinct error)."""
        self.prompt(facts)
        rc, err, kind = facts.get('flow_rc'), facts.get('flow_err', ''), facts.get('flow_kind') or 'present'
        if self.check:
            if rc == 0:
                self.done(changed=True, approved=True, pending=False)
            self.fail(classify(err, device_flow=True), 'the device flow of %s failed: %s' % (
                self.name, excerpt(err, self.agent.secrets)))
        self.agent.end_flow(self.name)
        self.result['pending'] = False
        if facts.get('flow_stopped') and rc != 0:
            # ended with a hung agent (by this call or another): the flow's issuer never answered
            self.fail('provider_timeout', 'the issuer %s did not answer the device flow of %s within %d s (oidc-agent '
                                          'has no time limit on its requests and answered no account meanwhile): the '
                                          'flow was ended and oidc-agent restarted so that the other accounts keep '
                                          'working; no account configuration was written; check the issuer and run '
                                          'again' % (facts.get('flow_issuer') or self.p['issuer'], self.name,
                                                     facts['flow_stopped'] - facts.get('flow_started', 0)))
        if rc != 0:
            error = classify(err, device_flow=True)
            what = OUTCOMES[error] % self.name if error in OUTCOMES else 'the device flow of %s failed' % self.name
            if kind != 'present':
                after = 'the existing account is unchanged'
            elif self.probe()['account']:
                after = 'an account configuration exists anyway'
            else:
                after = 'no account configuration was written'
            self.fail(error if error != 'error' else 'flow_failed', '%s: %s; %s; %s' % (
                what, excerpt(err, self.agent.secrets) or 'rc %s' % rc, after,
                NEXT.get(error, 'run again for a new code')))
        facts = self.probe()
        if not facts['account']:
            self.fail('flow_failed', 'oidc-gen for %s exited 0 but wrote no account configuration: %s' % (
                self.name, excerpt(err, self.agent.secrets) or 'no output'))
        record = dict(approved_at=facts.get('flow_finished') or facts['now'], kind=kind)
        if facts.get('flow_issuer'):
            record['issuer'] = facts['flow_issuer']
        self.agent.write_record(self.name, record)
        facts['record'] = record
        self.result.update(changed=True, approved=True)
        self.verify(facts, after_approval=True)

    # ------------------------------------------------------------------ an existing account
    def verify(self, facts, after_approval=False):
        """Load the account when needed and prove its refresh token with a forced refresh."""
        if self.check:
            if facts['agent_up'] and facts['loaded']:
                try:
                    self.agent.refresh(self.name)
                except OidcAgentError as exc:
                    if exc.error == 'invalid_grant':
                        self.done(changed=True, pending=True, user_code=None)
                    raise
            info = self.expiry(facts)
            if info and info['days_left'] < 0 and info['refresh_token_expiry_source'] == 'jwt':
                self.done(changed=True, pending=True, user_code=None, **info)
            self.done(**info)
        self.result['agent_started'] = self.agent.ensure_agent() or self.result['agent_started']
        if self.result['agent_started'] or not facts['loaded'] or after_approval:
            loaded = self.probe()['loaded']
            if not loaded:
                self.agent.load(self.name)
                self.result['account_loaded'] = True
        try:
            self.agent.refresh(self.name)
        except OidcAgentError as exc:
            if exc.error != 'invalid_grant' or after_approval:
                raise
            self.module.warn('the refresh token of %s no longer works (invalid_grant): re-authentication '
                             'started' % self.name)
            self.start('renewed')
        info = self.expiry(facts)
        self.record_expiry(facts, info)
        self.done(**info)

    def record_expiry(self, facts, info):
        """Keep the expiry of the refresh token in the account's record: the image's check-refresh-token job reads
        it from there (this module is the one place that works it out; the job needs no JWT decoding of its own)."""
        epoch = (info.get('refresh_token_expires_at') or {}).get('epoch')
        record = facts.get('record') or {}
        if self.check or not epoch or (record.get('expires_at'), record.get('expiry_source'), record.get('issuer')) == (
                epoch, info['refresh_token_expiry_source'], self.issuer or record.get('issuer')):
            return
        record = dict(record, expires_at=epoch, expiry_source=info['refresh_token_expiry_source'])
        if self.issuer:
            record['issuer'] = self.issuer
        record.setdefault('approved_at', facts.get('account_mtime') or facts.get('now'))
        self.agent.write_record(self.name, record)
        facts['record'] = record

    # ------------------------------------------------------------------ states
    def pending_flow(self, facts):
        """A flow found running or finished, or a stale one removed. Returns only when there is none."""
        if facts['flow'] == 'finished':
            self.conclude(facts)
        if facts['flow'] == 'running':
            self.prompt(facts)
            self.result.update(pending=True, flow_started_at=facts.get('flow_started'))
            if self.p['wait'] and not self.check:
                self.wait()
            self.done()
        if facts['flow'] == 'stale' and not self.check:
            self.agent.end_flow(self.name)

    def present(self):
        facts = self.probe()
        self.pending_flow(facts)
        if facts['account']:
            self.verify(facts)
        self.start('present')

    def renewed(self):
        facts = self.probe()
        self.pending_flow(facts)
        if not facts['account']:
            self.fail('no_account', 'account %s does not exist: enroll it first (state=present)' % self.name)
        if self.p['renew_within_days'] is not None:
            info = self.expiry(facts)
            if info and info['days_left'] > self.p['renew_within_days']:
                self.record_expiry(facts, info)
                self.done(**info)
        self.start('renewed')

    def absent(self):
        facts = self.probe()
        changed = facts['flow'] != 'none'
        if changed and not self.check:
            self.agent.end_flow(self.name)
        if facts['account']:
            if not self.p['password']:
                self.fail('no_password', 'account %s exists: its password is needed to revoke its refresh token '
                                         'before removing it' % self.name)
            changed = True
            if not self.check:
                self.result['agent_started'] = self.agent.ensure_agent()
                stderr = self.agent.delete(self.name)
                self.result['revoked'] = 'Could not revoke' not in stderr
                if not self.result['revoked']:
                    self.module.warn('account %s removed, but its refresh token could not be revoked at the provider'
                                     ' (%s): revoke it there' % (self.name, excerpt(stderr, self.agent.secrets)))
        if facts['record'] and not self.check:
            self.agent.remove_record(self.name)
            changed = True
        self.result['account_exists'] = bool(facts['account'] and self.check)
        self.done(changed=changed)


def main():
    module = AnsibleModule(
        argument_spec=dict(
            name=dict(type='str', required=True, aliases=['shortname']),
            state=dict(type='str', default='present', choices=['present', 'renewed', 'absent']),
            issuer=dict(type='str', default=DEFAULT_ISSUER),
            scopes=dict(type='list', elements='str', default=list(DEFAULT_SCOPES)),
            client_id=dict(type='str'),
            client_secret=dict(type='str', no_log=True),
            redirect_uri=dict(type='str'),
            audience=dict(type='str'),
            ca_file=dict(type='str'),
            password=dict(type='str', no_log=True),
            container=dict(type='str'),
            container_user=dict(type='str'),
            timeout=dict(type='int', default=60),
            wait=dict(type='bool', default=False),
            wait_timeout=dict(type='int', default=600),
            refresh_token_lifetime_days=dict(type='int', default=30, no_log=False),
            renew_within_days=dict(type='int'),
        ),
        required_if=[('state', 'present', ['password']), ('state', 'renewed', ['password'])],
        required_by=dict(client_secret=['client_id']),
        supports_check_mode=True,
    )
    p = module.params
    if not valid_name(p['name']):
        module.fail_json(msg='name must be a plain account short name (letters, digits, . _ @ + -; up to 64)',
                         error='invalid_name')
    if p['state'] in ('present', 'renewed') and not p['password']:
        module.fail_json(msg='password must not be empty: oidc-gen would start the flow and fail only when saving',
                         error='no_password')
    if p['renew_within_days'] is not None and p['state'] != 'renewed':
        module.fail_json(msg='renew_within_days is only used with state=renewed', error='invalid_argument')
    for key in ('timeout', 'wait_timeout', 'refresh_token_lifetime_days'):
        if p[key] <= 0:
            module.fail_json(msg='%s must be positive' % key, error='invalid_argument')
    p['scopes'] = [scope for item in p['scopes'] for scope in item.split()]
    problems = argument_problems(p)
    if problems:
        module.fail_json(msg='; '.join(problems), error='invalid_argument')
    account = Account(module)
    try:
        getattr(account, p['state'])()
    except OidcAgentError as exc:
        if exc.rc == RC_AGENT_HUNG:
            account.hung_issuer(exc.msg.split(':')[0])
        account.fail(exc.error, exc.msg)


if __name__ == '__main__':
    main()
