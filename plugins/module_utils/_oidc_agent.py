# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one runner for oidc-agent's tools (oidc-agent 4.2.6: oidc-agent, oidc-gen, oidc-add, oidc-token).

They run on the target or inside a container (the backup container) through the docker CLI. Every call
is a small POSIX shell script given as ``sh -c SCRIPT`` with the non-secret values as positional
arguments. The encryption password travels only as ``OIDC_ENCRYPTION_PW`` in the environment (for
``docker exec`` as a bare ``-e OIDC_ENCRYPTION_PW`` whose value lives in the docker client's own
environment), and a client secret only on stdin into a 0600 file that ``oidc-gen -f`` reads: never on an
argv, never in results or messages. Every file is written under ``umask 077`` in 0700 directories.

Layout inside the container (``$HOME`` of the user the tools run as). The container's own environment decides
where it is when it sets ``OIDC_STATE_DIR``, ``OIDC_SOCK`` and ``OIDC_CONFIG_DIR`` (the cloud_backup role's stack
does, from its host model); the paths below are the defaults for any other container:

- ``$OIDC_CONFIG_DIR`` (default ``~/.config/oidc-agent``): oidc-agent's own account files. Given
  explicitly because oidc-agent otherwise falls back to ``~/.oidc-agent`` when ``~/.config`` is missing.
- ``~/.local/state/oidc-agent/agent.sock``: the socket of the agent for scripts (fixed, so every later
  call, and the image's own jobs, reuse the same agent).
- ``~/.local/state/oidc-agent/flows/<name>/``: one device flow of ``oidc-gen`` running detached
  (``pid``, ``kind``, ``started``, its ``out`` and ``err``; ``rc`` and ``finished`` when it ended).
- ``~/.local/state/oidc-agent/accounts/<name>.json``: the approval time of the account (non-secret),
  for refresh tokens that are not JWTs.
- ``~/.local/state/oidc-agent/loaded``: the accounts the agent had loaded when it last answered, so that a hung
  agent can be restarted with them.

A hung issuer: oidc-agent's HTTP calls have no time limit, and the agent answers nothing else while one waits, so
an issuer that accepts connections and never answers holds the one agent of the user, for every account. Every
call that needs the agent is therefore bounded by ``agent_wait`` seconds (``bounded`` below): past it the agent is
taken as hung, and ENSURE_AGENT ends the stuck flows and the agent, starts a new one and reloads the accounts it
had (the image's token refresher and ``check-refresh-token`` do the same, under the same lock).
"""

from __future__ import annotations

import base64
import binascii
import json
import os
import re
import subprocess
import time
from datetime import datetime, timezone

from ansible_collections.infn_cloud.backup.plugins.module_utils._process import (
    KILL_AFTER, CONTROL, container_problems, run_bounded)

try:
    from urllib.parse import quote
except ImportError:  # pragma: no cover - Python 2 is not supported by this collection
    from urllib import quote

PASSWORD_ENV = 'OIDC_ENCRYPTION_PW'
DEFAULT_ISSUER = 'https://iam.cloud.infn.it/'
DEFAULT_SCOPES = ['openid', 'profile', 'offline_access']
SHORTNAME = re.compile(r'^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$')
# The checks of the options, before any tool runs (container and user: the same rules as the restic modules).
HTTP_URL = re.compile(r'^https?://[^/\s]+(/\S*)?$')
ABSOLUTE_URI = re.compile(r'^[A-Za-z][A-Za-z0-9+.-]*:\S+$')
SCOPE_TOKEN = re.compile(r'^[\x21\x23-\x5b\x5d-\x7e]+$')  # RFC 6749 scope-token
RESERVED_NAMES = ('issuer.config',)
ESC = '\x1b'
QR_LINE = re.compile('^[\\s\u2580-\u259f]*$')
ANSI = re.compile(r'\x1b\[[0-9;?]*[ -/]*[@-~]')
VISIT = 'Using a browser on any device, visit:'
USER_CODE = re.compile(r'^\s*And enter the code:\s*(\S+)\s*$')
# Anything that looks like a JWT or a long opaque token: masked in every excerpt.
JWT_LIKE = re.compile(r'[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]{6,}\.[A-Za-z0-9_-]*')
QUOTED_LONG = re.compile(r"""(['"])[A-Za-z0-9_\-.~+/=]{20,}\1""")

# Exit codes of the helper scripts (beside the tools' own 0/1).
RC_NO_HOME = 90
RC_NO_PASSWORD = 91
RC_ACCOUNT_EXISTS = 92
RC_NO_ACCOUNT = 93
RC_FLOW_RUNNING = 94
RC_NO_TOOLS = 95
RC_AGENT_HUNG = 96
MEANINGS = {
    RC_NO_HOME: 'HOME is not set for the user running oidc-agent',
    RC_NO_PASSWORD: 'the encryption password is empty',
    RC_ACCOUNT_EXISTS: 'an account configuration with this name exists already',
    RC_NO_ACCOUNT: 'no account configuration with this name exists',
    RC_FLOW_RUNNING: 'a device flow for this account is already running',
    RC_NO_TOOLS: 'oidc-agent is not installed (oidc-gen not found on PATH)',
    RC_AGENT_HUNG: 'oidc-agent did not answer in time',
    125: 'docker exec failed (container missing or not running?)',
    126: 'command not executable (unknown container_user?)',
    127: 'command not found (sh, timeout or the docker CLI)',
}
RC_ERRORS = {RC_NO_HOME: 'no_home', RC_NO_PASSWORD: 'no_password', RC_ACCOUNT_EXISTS: 'account_exists',
             RC_NO_ACCOUNT: 'no_account', RC_FLOW_RUNNING: 'flow_running', RC_NO_TOOLS: 'not_found',
             RC_AGENT_HUNG: 'provider_timeout',
             125: 'exec_failed', 126: 'exec_failed', 127: 'not_found'}
DOCKER_ERRORS = ('Error response from daemon', 'Cannot connect to the Docker daemon', 'No such container')

# --------------------------------------------------------------------------------------- the scripts
# Each runs as `sh -c SCRIPT oidc-agent-account ARGS...`; PRELUDE is prepended.
PRELUDE = r'''
umask 077
[ -n "${HOME:-}" ] || { echo "HOME is not set" >&2; exit 90; }
command -v oidc-gen >/dev/null 2>&1 || { echo "oidc-gen not found on PATH" >&2; exit 95; }
state="${OIDC_STATE_DIR:-$HOME/.local/state/oidc-agent}"
export OIDC_SOCK="${OIDC_SOCK:-$state/agent.sock}"
export OIDC_CONFIG_DIR="${OIDC_CONFIG_DIR:-$HOME/.config/oidc-agent}"
agent_wait="${agent_wait:-10}"
bounded() {
  # A call that needs the agent, within agent_wait s: past it the agent is hung (exit 96).
  timeout -k 2 "$agent_wait" "$@"
  brc=$?
  case "$brc" in 124|137) echo "oidc-agent did not answer within $agent_wait s" >&2; exit 96 ;; esac
  return "$brc"
}
keep_loaded() {
  # $1 = the output of oidc-add -a: the names it lists, kept for a restart of a hung agent
  [ -d "$state" ] || return 0
  printf '%s\n' "$1" | grep -v ' ' | grep . >"$state/loaded.tmp"
  mv -f "$state/loaded.tmp" "$state/loaded"
}
flow_alive() {
  # $1 = flow directory: the shell running the flow (it writes rc before it exits) or its oidc-gen still
  # runs; a recycled pid is not ours (its command line is checked).
  [ -f "$1/rc" ] && return 1
  for f in runner pid; do
    pid="$(cat "$1/$f" 2>/dev/null)" || continue
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null \
      && tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -Eq 'oidc-gen|oidc-agent-account' && return 0
  done
  return 1
}'''

# Read-only: what exists (key=value lines; file contents base64-encoded). Used in check mode too.
PROBE = r'''
name="$1"; flow="$state/flows/$name"
echo "now=$(date +%s)"
echo "home=$HOME"
echo "socket=$OIDC_SOCK"
echo "config_dir=$OIDC_CONFIG_DIR"
loaded="$(timeout -k 2 "$agent_wait" oidc-add -a 2>/dev/null)"
case $? in
  0) echo agent=up; keep_loaded "$loaded"
     printf '%s\n' "$loaded" | grep -qxF "$name" && echo loaded=1 || echo loaded=0 ;;
  124|137) echo agent=hung; echo loaded=0 ;;
  *) echo agent=down; echo loaded=0 ;;
esac
if [ -f "$OIDC_CONFIG_DIR/$name" ]; then
  echo account=1; echo "account_mtime=$(stat -c %Y "$OIDC_CONFIG_DIR/$name")"
else
  echo account=0
fi
[ -f "$state/accounts/$name.json" ] && echo "record=$(base64 -w0 <"$state/accounts/$name.json")"
if [ -d "$flow" ]; then
  echo "flow_kind=$(cat "$flow/kind" 2>/dev/null)"
  echo "flow_started=$(cat "$flow/started" 2>/dev/null)"
  echo "flow_issuer=$(cat "$flow/issuer" 2>/dev/null)"
  [ -f "$flow/stopped" ] && echo "flow_stopped=$(cat "$flow/stopped")"
  # rc is read after the liveness check: the runner writes rc and only then exits, so a flow found not alive
  # either has its rc by now or died without one (stale).
  if flow_alive "$flow"; then
    echo flow=running
  elif [ -f "$flow/rc" ]; then
    echo flow=finished; echo "flow_rc=$(cat "$flow/rc")"; echo "flow_finished=$(cat "$flow/finished" 2>/dev/null)"
  elif [ ! -f "$flow/runner" ] && [ $(( $(date +%s) - $(cat "$flow/started" 2>/dev/null || echo 0) )) -lt 20 ]; then
    echo flow=running
  else
    echo flow=stale
  fi
  [ -f "$flow/err" ] && echo "flow_err=$(base64 -w0 <"$flow/err")"
else
  echo flow=none
fi
exit 0
'''

# The agent for scripts: reuse the one answering on the fixed socket, else start one. $1: seconds to wait for an
# answer (default agent_wait). An agent that does not answer in time is hung (an issuer that accepts connections and
# never answers holds it: its HTTP calls have no time limit): the running flows are marked stopped (with the time)
# and ended with it, and the new agent gets the accounts the old one had (reloaded with OIDC_ENCRYPTION_PW, else the
# container's own OIDC_PASSWORD or OIDC_PASSWORD_FILE). Under the lock the image's agent start takes too.
ENSURE_AGENT = r"""
mkdir -p "$state/flows" "$state/accounts" "$OIDC_CONFIG_DIR"
chmod 0700 "$state" "$state/flows" "$state/accounts" "$OIDC_CONFIG_DIR"
exec 9>"$state/agent.lock"
command -v flock >/dev/null 2>&1 && flock -w 30 9
loaded="$(timeout -k 2 "${1:-$agent_wait}" oidc-add -a 2>/dev/null)"
arc=$?
if [ "$arc" -eq 0 ]; then keep_loaded "$loaded"; echo agent=up; exit 0; fi
new="$OIDC_SOCK.new"
# the agents of this socket (a replacement keeps the command line of its temporary socket)
agent_pids() { pgrep -u "$(id -u)" -f -- "-a $OIDC_SOCK(\.new)?\$" 2>/dev/null; }
start_agent() {
  # $1 = its socket: 0 once it answers there
  rm -f "$1"
  oidc-agent --json --no-autoload --no-autoreauthenticate -a "$1" >"$state/agent.json" 2>"$state/agent.err" 9>&- \
    || { cat "$state/agent.err" >&2; return 1; }
  i=0
  until OIDC_SOCK="$1" timeout 2 oidc-add -a >/dev/null 2>&1; do
    i=$((i + 1))
    [ "$i" -ge 50 ] && { echo "oidc-agent started but does not answer on $1" >&2; return 1; }
    sleep 0.1
  done
}
reload_one() {
  # $1 = account, $2 = socket: oidc-add with the module's password, else the container's own (124: the agent hung)
  [ -n "${OIDC_PASSWORD:-}" ] || { [ -r "${OIDC_PASSWORD_FILE:-}" ] && OIDC_PASSWORD="$(cat "$OIDC_PASSWORD_FILE")"; }
  r=1
  if [ -n "${OIDC_ENCRYPTION_PW:-}" ]; then
    OIDC_SOCK="$2" timeout -k 2 "$agent_wait" oidc-add --pw-env "$1" </dev/null >/dev/null 2>&1
    r=$?
    case "$r" in 0|124|137) return "$r" ;; esac
  fi
  if [ -n "${OIDC_PASSWORD:-}" ]; then
    OIDC_ENCRYPTION_PW="$OIDC_PASSWORD" OIDC_SOCK="$2" timeout -k 2 "$agent_wait" oidc-add --pw-env "$1" </dev/null \
      >/dev/null 2>&1
    r=$?
  fi
  return "$r"
}
if [ "$arc" -eq 124 ] || [ "$arc" -eq 137 ]; then
  # Hung. The replacement starts on a temporary socket and gets the accounts first; then the hung agent and the
  # flows stuck on it are ended and the replacement's socket renamed into place: clients never find no agent.
  echo agent=hung
  reload="$(cat "$state/loaded" 2>/dev/null)"
  old="$(agent_pids)"
  start_agent "$new" || exit 1
  kept=""
  for acct in $reload; do
    [ -f "$OIDC_CONFIG_DIR/$acct" ] || continue
    reload_one "$acct" "$new"
    case $? in
      0) echo "reloaded=$acct"; kept="$kept $acct" ;;
      124|137)
        # its own issuer hangs too and holds the replacement: start it again without this account
        echo "not_reloaded=$acct"
        pids="$(pgrep -u "$(id -u)" -f -- "-a $new\$")" && kill -9 $pids 2>/dev/null
        start_agent "$new" || exit 1
        for k in $kept; do reload_one "$k" "$new"; done ;;
      *) echo "not_reloaded=$acct" ;;
    esac
  done
  now="$(date +%s)"
  for flow in "$state"/flows/*; do
    [ -d "$flow" ] || continue
    if flow_alive "$flow"; then
      echo "$now" >"$flow/stopped"
      echo "stopped=${flow##*/}"
      kill "$(cat "$flow/pid" 2>/dev/null)" 2>/dev/null
    fi
  done
  [ -n "$old" ] && kill -9 $old 2>/dev/null
  mv -f "$new" "$OIDC_SOCK"
  keep_loaded "$(printf '%s\n' $kept)"
  echo agent=started
  exit 0
fi
# An agent of this socket that does not answer is stopping (it removes its socket when it exits) or broken:
# give it 2 s, then end it, so that it cannot remove the socket of the new one.
i=0
while pids="$(agent_pids)" && [ -n "$pids" ]; do
  timeout 2 oidc-add -a >/dev/null 2>&1 && { echo agent=up; exit 0; }
  i=$((i + 1))
  [ "$i" -eq 20 ] && kill $pids 2>/dev/null
  [ "$i" -ge 40 ] && { kill -9 $pids 2>/dev/null; sleep 0.2; break; }
  sleep 0.1
done
start_agent "$OIDC_SOCK" || exit 1
echo agent=started
"""

# Prepare the directory of a new flow (synchronously, so that every refusal is reported).
PREPARE_FLOW = r'''
name="$1"; kind="$2"; with_client="$3"; issuer="$4"; flow="$state/flows/$name"
if [ "$kind" = present ] && [ -e "$OIDC_CONFIG_DIR/$name" ]; then
  echo "account configuration $OIDC_CONFIG_DIR/$name exists already" >&2; exit 92
fi
if [ "$kind" = renewed ] && [ ! -f "$OIDC_CONFIG_DIR/$name" ]; then
  echo "no account configuration $OIDC_CONFIG_DIR/$name" >&2; exit 93
fi
if flow_alive "$flow"; then echo "a device flow for $name is running (pid $pid)" >&2; exit 94; fi
rm -rf "$flow"
mkdir -p "$flow"
chmod 0700 "$flow"
date +%s >"$flow/started"
printf '%s\n' "$kind" >"$flow/kind"
printf '%s\n' "$issuer" >"$flow/issuer"
if [ "$with_client" = 1 ]; then cat >"$flow/client.json"; fi
'''

# The flow itself, detached: oidc-gen in the background, its exit status recorded at the end.
RUN_FLOW = r'''
name="$1"; shift; flow="$state/flows/$name"
cd "$flow" || exit 1
echo "$$" >runner
if [ -z "${OIDC_ENCRYPTION_PW:-}" ]; then
  echo "Error: the encryption password is empty" >err; date +%s >finished; echo 91 >rc; exit 91
fi
oidc-gen "$@" </dev/null >out 2>err &
gen=$!
echo "$gen" >pid
wait "$gen"
rc=$?
rm -f client.json
date +%s >finished
echo "$rc" >rc.tmp && mv rc.tmp rc
'''

END_FLOW = r'''
flow="$state/flows/$1"
if flow_alive "$flow"; then
  # oidc-gen first (the runner would record its exit), then the runner
  kill "$(cat "$flow/pid" 2>/dev/null)" "$(cat "$flow/runner" 2>/dev/null)" 2>/dev/null; echo killed=1
fi
rm -rf "$flow"
'''

WRITE_RECORD = r'''
mkdir -p "$state/accounts"; chmod 0700 "$state" "$state/accounts"
cat >"$state/accounts/$1.json.tmp" && mv "$state/accounts/$1.json.tmp" "$state/accounts/$1.json"
'''

REMOVE_RECORD = r'''
rm -f "$state/accounts/$1.json"
'''

LOAD = r'''
bounded oidc-add --pw-env "$1" </dev/null || exit
[ -d "$state" ] && { grep -sxvF "$1" "$state/loaded"; echo "$1"; } >"$state/loaded.tmp" && mv -f "$state/loaded.tmp" "$state/loaded"
exit 0
'''

# -f forces a new access token: the only proof that the refresh token still works. -e prints only the
# expiry of the new access token, so the token itself never leaves the container.
REFRESH = r'''
bounded oidc-token -f -e "$1" </dev/null
'''

PRINT = r'''
bounded oidc-gen -p "$1" --pw-env </dev/null
'''

DELETE = r'''
bounded oidc-gen -d "$1" --confirm-yes --pw-env </dev/null
rc=$?
if [ -f "$state/loaded" ]; then grep -sxvF "$1" "$state/loaded" >"$state/loaded.tmp"; mv -f "$state/loaded.tmp" "$state/loaded"; fi
if [ -e "$OIDC_CONFIG_DIR/$1" ]; then echo "account file kept: $OIDC_CONFIG_DIR/$1" >&2; exit 1; fi
exit "$rc"
'''


# --------------------------------------------------------------------------------------- parsing
def text_lines(text):
    """Lines of a tool's output with ANSI sequences removed and the QR code (lines of coloured blanks or
    block characters) dropped."""
    out = []
    for line in (text or '').splitlines():
        plain = ANSI.sub('', line).replace(ESC, '')
        if not QR_LINE.match(plain):
            out.append(plain.strip())
    return out


def parse_device_prompt(stderr):
    """The device-flow prompt of oidc-gen (stderr): {'verification_uri', 'user_code',
    'verification_uri_complete'} or None while it has not been printed (complete)."""
    lines = text_lines(stderr)
    uri = code = None
    for index, line in enumerate(lines):
        if line == VISIT:
            following = [candidate for candidate in lines[index + 1:] if candidate]
            if following and re.match(r'^https?://\S+$', following[0]):
                uri = following[0]
        match = USER_CODE.match(line)
        if match:
            code = match.group(1)
    if not uri or not code:
        return None
    return dict(verification_uri=uri, user_code=code, verification_uri_complete=complete_uri(uri, code))


def complete_uri(uri, code):
    """verification_uri_complete: oidc-gen does not print it; IAM accepts <uri>?user_code=<code>."""
    return '%s%suser_code=%s' % (uri, '&' if '?' in uri else '?', quote(code, safe=''))


# The outcome of a finished flow or a failed call, from oidc-agent's messages, in order of precedence (checked
# against every line): the agent before the network, the network before the registration (a registration that
# failed because the issuer could not be reached says both, and is provider_unreachable).
ERRORS = (
    ('access_denied', re.compile(r'access_denied', re.I)),
    ('expired_token', re.compile(r'expired_token|Device code is not valid any more', re.I)),
    ('wrong_password', re.compile(r'reached maximum number of tries|wrong password|could not decrypt', re.I)),
    ('invalid_grant', re.compile(r'invalid_grant', re.I)),
    ('invalid_client', re.compile(r'invalid_client', re.I)),
    ('agent_unreachable', re.compile(r'Could not connect to oidc-agent|No agent running', re.I)),
    ('provider_unreachable', re.compile(r'Could not get token endpoint|Could not connect|couldn\'t connect|'
                                        r'Could not resolve|SSL|certificate|curl', re.I)),
    ('registration_failed', re.compile(r'Dynamic client registration not successful|registration', re.I)),
    ('account_not_loaded', re.compile(r'account not loaded', re.I)),
)
# IAM forgets a device code once its cleanup ran after the code's deadline, and answers its later polls with
# invalid_grant "Invalid device code": in a device flow that is an expired code, not a broken refresh token.
FORGOTTEN_DEVICE_CODE = re.compile(r'invalid_grant.*device.?code|device.?code.*invalid_grant|Invalid device code', re.I)


def classify(text, device_flow=False):
    """A short error code for oidc-agent's message (see ERRORS), or 'error'. device_flow: the message ended a
    device flow (an invalid_grant about the device code is then expired_token)."""
    lines = clean_lines(text)
    errors = [line for line in lines if line.lower().startswith('error')] or lines
    if device_flow and any(FORGOTTEN_DEVICE_CODE.search(line) for line in lines):
        return 'expired_token'
    for code, pattern in ERRORS:
        if any(pattern.search(line) for line in errors):
            return code
    return 'error'


def clean_lines(text):
    """Lines of oidc-agent output without ANSI/QR lines and without the JSON blocks oidc-gen may dump
    (a failed save prints the whole client configuration, secrets included)."""
    out, depth = [], 0
    for stripped in text_lines(text):
        if depth or stripped.startswith('{'):
            depth += stripped.count('{') - stripped.count('}')
            depth = max(depth, 0)
            continue
        if stripped:
            out.append(stripped)
    return out


def scrub(text, secrets=()):
    """Mask token-like strings and the given secret values."""
    for secret in sorted((s for s in secrets if s), key=len, reverse=True):
        text = text.replace(secret, '********')
    text = JWT_LIKE.sub('<token>', text)
    return QUOTED_LONG.sub(r'\1<token>\1', text)


def excerpt(text, secrets=(), lines=4):
    """The last error lines of oidc-agent output (or its last lines), safe to show."""
    cleaned = [line for line in clean_lines(text) if not line.startswith(('Alternatively', 'And enter the code',
                                                                          VISIT, 'http'))]
    errors = [line for line in cleaned if line.lower().startswith('error')]
    return scrub(' | '.join((errors or cleaned)[-lines:]), secrets)


def jwt_exp(token):
    """The exp claim of a JWT (signed or unsigned, like INDIGO IAM's refresh tokens), or None."""
    parts = token.split('.') if isinstance(token, str) else []
    if len(parts) != 3:
        return None
    payload = parts[1] + '=' * (-len(parts[1]) % 4)
    try:
        claims = json.loads(base64.urlsafe_b64decode(payload.encode('ascii')).decode('utf-8'))
    except (ValueError, binascii.Error, UnicodeError):
        return None
    exp = claims.get('exp') if isinstance(claims, dict) else None
    if isinstance(exp, bool) or not isinstance(exp, (int, float)):
        return None
    return int(exp)


def refresh_token_exp(account_json):
    """exp of the refresh token in the output of `oidc-gen -p` (None: opaque token or no token).
    The token itself is dropped here and never returned."""
    start, end = account_json.find('{'), account_json.rfind('}')
    try:
        doc = json.loads(account_json[start:end + 1]) if start >= 0 else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        return None, None
    return jwt_exp(doc.get('refresh_token') or ''), doc.get('issuer_url')


def parse_probe(stdout):
    facts = {}
    for line in stdout.splitlines():
        key, sep, value = line.partition('=')
        if sep:
            facts[key.strip()] = value.strip()
    for key in ('record', 'flow_err'):
        if key in facts:
            try:
                facts[key] = base64.b64decode(facts[key]).decode('utf-8', 'replace')
            except (ValueError, binascii.Error):
                facts[key] = ''
    for key in ('now', 'account_mtime', 'flow_started', 'flow_finished', 'flow_rc', 'flow_stopped'):
        if facts.get(key, '').lstrip('-').isdigit():
            facts[key] = int(facts[key])
        else:
            facts.pop(key, None)
    for key in ('account', 'loaded'):
        facts[key] = facts.get(key) == '1'
    facts['agent_up'] = facts.get('agent') == 'up'
    try:
        facts['record'] = json.loads(facts['record']) if facts.get('record') else {}
    except ValueError:
        facts['record'] = {}
    if not isinstance(facts['record'], dict):
        facts['record'] = {}
    return facts


def iso(epoch):
    return datetime.fromtimestamp(epoch, timezone.utc).strftime('%Y-%m-%dT%H:%M:%SZ')


def expiry(exp, now, source):
    return dict(refresh_token_expires_at=dict(epoch=int(exp), iso=iso(exp)),
                days_left=round((exp - now) / 86400.0, 2), refresh_token_expiry_source=source)


def normalize_issuer(url):
    return (url or '').rstrip('/') + '/'


def agent_wait(timeout):
    """Seconds after which a silent agent is taken as hung: a third of the call's time limit, 2 to 20."""
    return max(2, min(20, int(timeout) // 3))


def parse_restart(stdout):
    """What ENSURE_AGENT did to a hung agent: {'stopped': [flows], 'reloaded': [...], 'not_reloaded': [...]}."""
    out = dict(stopped=[], reloaded=[], not_reloaded=[])
    for line in stdout.splitlines():
        key, sep, value = line.partition('=')
        if sep and key in out and value:
            out[key].append(value.strip())
    return out


# --------------------------------------------------------------------------------------- the runner
class OidcAgentError(Exception):
    """A failed call: a short error code, a message safe to show, the exit code."""

    def __init__(self, error, msg, rc=None):
        self.error, self.msg, self.rc = error, msg, rc
        super().__init__(msg)


class OidcAgent:
    def __init__(self, container=None, container_user=None, timeout=60, password=None, client_secret=None,
                 docker_binary='docker', check=False):
        self.container, self.container_user = container, container_user
        self.timeout, self.docker_binary = timeout, docker_binary
        self.password = password
        self.secrets = tuple(s for s in (password, client_secret) if s)
        # An agent silent for agent_wait s is hung: a third of the call's time limit, so that a call that finds it
        # hung can restart it and still do its own work within the limit.
        self.agent_wait = agent_wait(timeout)
        # check mode: a hung agent is reported, never restarted
        self.check = check
        # what each restart of a hung agent did: {'waited', 'stopped': [flows], 'reloaded', 'not_reloaded'}
        self.restarts = []

    # ------------------------------------------------------------------ argv and environment
    def command(self, script, args=(), secret=False, detach=False, stdin=False):
        """argv and environment of one call. Only names go on the argv; the password (when secret) is in
        the returned environment as OIDC_ENCRYPTION_PW, handed to docker exec as a bare `-e NAME`."""
        shell = ['sh', '-c', 'agent_wait=%d' % self.agent_wait + PRELUDE + script, 'oidc-agent-account'] + [
            str(a) for a in args]
        if not detach:
            shell = ['timeout', '--kill-after=%d' % KILL_AFTER, str(self.timeout)] + shell
        env = dict(os.environ)
        env.pop(PASSWORD_ENV, None)
        if secret:
            env[PASSWORD_ENV] = self.password or ''
        if not self.container:
            return shell, env
        argv = [self.docker_binary, 'exec']
        if detach:
            argv.append('-d')
        elif stdin:
            argv.append('-i')
        if self.container_user:
            argv += ['-u', self.container_user]
        if secret:
            argv += ['-e', PASSWORD_ENV]
        return argv + [self.container] + shell, env

    def error(self, rc, stderr, what):
        """The OidcAgentError of a failed call: our own exit codes, docker's, timeouts, else oidc-agent's message."""
        detail = excerpt(stderr, self.secrets)
        if self.container and rc in (1, 125) and any(e in stderr for e in DOCKER_ERRORS):
            rc = 125
        if rc in (124, 137):
            return OidcAgentError('timeout', '%s: timed out after %d s%s' % (
                what, self.timeout, ' (killed)' if rc == 137 else ''), rc)
        if rc == RC_AGENT_HUNG:
            return OidcAgentError('provider_timeout', '%s: oidc-agent did not answer within %d s' % (
                what, self.agent_wait), rc)
        if rc in RC_ERRORS:
            return OidcAgentError(RC_ERRORS[rc], '%s: %s (rc %d)%s' % (
                what, MEANINGS[rc], rc, ': ' + detail if detail else ''), rc)
        return OidcAgentError(classify(stderr), '%s failed (rc %s): %s' % (what, rc, detail or 'no message'), rc)

    def run(self, script, args=(), secret=False, stdin=None, accept=(0,), what='oidc-agent'):
        """Run one script; return (rc, stdout, stderr) or raise OidcAgentError if rc not in accept."""
        argv, env = self.command(script, args, secret=secret, stdin=stdin is not None)
        limit = self.timeout + 2 * KILL_AFTER
        try:
            rc, stdout, stderr = run_bounded(argv, env, limit, stdin=stdin, kill_after=KILL_AFTER)
        except OSError as exc:
            raise OidcAgentError('not_found', '%s: %s: %s' % (what, argv[0], exc.strerror), 127)
        if rc not in accept:
            raise self.error(rc, stderr, what)
        return rc, stdout, stderr

    def spawn(self, script, args=(), secret=False):
        """Start a script detached (docker exec -d, or a new session on the target); do not wait for it."""
        argv, env = self.command(script, args, secret=secret, detach=True)
        if self.container:
            try:
                proc = subprocess.run(argv, env=env, stdin=subprocess.DEVNULL, capture_output=True, check=False,
                                      encoding='utf-8', errors='replace', timeout=self.timeout + KILL_AFTER)
            except subprocess.TimeoutExpired:
                raise OidcAgentError('timeout', 'docker exec -d did not return within %d s' % self.timeout, 124)
            except OSError as exc:
                raise OidcAgentError('not_found', '%s: %s' % (argv[0], exc.strerror), 127)
            if proc.returncode:
                raise OidcAgentError('exec_failed', 'could not start oidc-gen in the container: %s' % excerpt(
                    proc.stderr, self.secrets), proc.returncode)
            return
        try:
            subprocess.Popen(argv, env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                             stderr=subprocess.DEVNULL, close_fds=True, start_new_session=True)
        except OSError as exc:
            raise OidcAgentError('not_found', '%s: %s' % (argv[0], exc.strerror), 127)

    # ------------------------------------------------------------------ operations
    def probe(self, name):
        """What exists; an agent found hung is restarted first (not in check mode) and the probe made again."""
        dummy, stdout, dummy = self.run(PROBE, [name], what='probing oidc-agent')
        facts = parse_probe(stdout)
        if facts.get('agent') == 'hung' and not self.check:
            self.restart()
            dummy, stdout, dummy = self.run(PROBE, [name], what='probing oidc-agent')
            facts = parse_probe(stdout)
        return facts

    def ensure_agent(self, wait=None):
        """Start the agent for scripts unless one answers on the socket within `wait` s (default agent_wait); a
        hung one is ended with its stuck flows and replaced, with the accounts it had. True when it was started."""
        dummy, stdout, dummy = self.run(ENSURE_AGENT, [wait or self.agent_wait], secret=bool(self.password),
                                        what='starting oidc-agent')
        if 'agent=hung' in stdout.splitlines():
            self.restarts.append(dict(parse_restart(stdout), waited=wait or self.agent_wait))
        return 'agent=started' in stdout

    def restart(self):
        """After a call found the agent silent for agent_wait s: a last short look, then ensure_agent replaces it."""
        started = self.ensure_agent(wait=2)
        if self.restarts and started:
            self.restarts[-1]['waited'] = self.agent_wait + 2
        return started

    def agent_run(self, script, args, what, secret=False):
        """run() of a call that needs the agent: when the agent did not answer (hung by an issuer that never
        answers, its own or another account's), it is restarted and the call made once more; a second silence
        restarts it again and raises provider_timeout (rc RC_AGENT_HUNG: then the call's own issuer hangs)."""
        try:
            return self.run(script, args, secret=secret, what=what)
        except OidcAgentError as exc:
            if exc.rc != RC_AGENT_HUNG or self.check:
                raise
        self.restart()
        try:
            return self.run(script, args, secret=secret, what=what)
        except OidcAgentError as exc:
            if exc.rc == RC_AGENT_HUNG:
                self.restart()
            raise

    def load(self, name):
        try:
            self.agent_run(LOAD, [name], secret=True, what='oidc-add %s' % name)
        except OidcAgentError as exc:
            if exc.error == 'wrong_password':
                exc.msg = ('oidc-add %s: wrong password: the account configuration does not decrypt with it '
                           '(oidc-agent: reached maximum number of tries)' % name)
            raise

    def refresh(self, name):
        """Force a new access token (proves the refresh token works); returns its expiry (epoch)."""
        dummy, stdout, dummy = self.agent_run(REFRESH, [name], what='oidc-token -f %s' % name)
        value = stdout.strip().splitlines()[-1] if stdout.strip() else ''
        return int(value) if value.isdigit() else None

    def account_info(self, name):
        """(exp of the refresh token if it is a JWT, issuer URL) from `oidc-gen -p`; the token is dropped."""
        try:
            dummy, stdout, dummy = self.agent_run(PRINT, [name], secret=True, what='oidc-gen -p %s' % name)
        except OidcAgentError as exc:
            if exc.error == 'wrong_password':
                exc.msg = ('oidc-gen -p %s: wrong password: the account configuration does not decrypt with it'
                           % name)
            raise
        return refresh_token_exp(stdout)

    def start_flow(self, name, kind, gen_args, client_config=None, issuer=''):
        """Prepare the flow directory (with the issuer, for messages), then run oidc-gen detached in it."""
        payload = json.dumps(client_config) if client_config else None
        self.run(PREPARE_FLOW, [name, kind, '1' if payload else '0', issuer or ''], stdin=payload,
                 what='device flow for %s not started' % name)
        self.spawn(RUN_FLOW, [name] + list(gen_args), secret=True)

    def wait_prompt(self, name):
        """Wait (up to timeout) until the started flow printed its prompt or ended; return the probe."""
        deadline = time.monotonic() + self.timeout
        while True:
            facts = self.probe(name)
            if facts.get('flow') in ('finished', 'stale', 'none') or parse_device_prompt(facts.get('flow_err', '')):
                return facts
            if time.monotonic() > deadline:
                raise OidcAgentError('timeout', 'oidc-gen printed no device code within %d s: %s' % (
                    self.timeout, excerpt(facts.get('flow_err', ''), self.secrets) or 'no output'), 124)
            time.sleep(0.3)

    def end_flow(self, name):
        dummy, stdout, dummy = self.run(END_FLOW, [name], what='removing the device flow')
        return 'killed=1' in stdout

    def write_record(self, name, record):
        self.run(WRITE_RECORD, [name], stdin=json.dumps(record, sort_keys=True), what='recording the approval')

    def remove_record(self, name):
        self.run(REMOVE_RECORD, [name], what='removing the approval record')

    def delete(self, name):
        """Revoke and delete; returns stderr (it says when the revocation failed but the file went anyway)."""
        dummy, dummy, stderr = self.agent_run(DELETE, [name], secret=True, what='oidc-gen -d %s' % name)
        return stderr


def gen_args(name, issuer, scopes, ca_file=None, audience=None, client_id=None, redirect_uri=None,
             client_file=None):
    # client_file is relative to the flow directory (RUN_FLOW runs oidc-gen there).
    """oidc-gen arguments of a new account with the device flow (no secret among them)."""
    args = [name, '--iss=%s' % issuer, '--flow=device', '--scope=%s' % ' '.join(scopes), '--pw-env',
            '--prompt=none', '--confirm-default', '--no-url-call']
    if client_file:
        args.append('--file=%s' % client_file)
    elif client_id:
        args.append('--client-id=%s' % client_id)
    if redirect_uri:
        args.append('--redirect-uri=%s' % redirect_uri)
    if audience:
        args.append('--aud=%s' % audience)
    if ca_file:
        args.append('--cp=%s' % ca_file)
    return args


def reauth_args(name):
    return [name, '--reauthenticate', '--flow=device', '--pw-env', '--prompt=none', '--confirm-default',
            '--no-url-call']


def valid_name(name):
    return bool(SHORTNAME.match(name or '')) and name not in RESERVED_NAMES


def argument_problems(p):
    """What is wrong with the options that go to the tools (never showing a secret); p['scopes'] already split."""
    problems = ['%s must be one line, without control characters' % key
                for key in ('client_id', 'client_secret', 'audience') if p[key] and CONTROL.search(p[key])]
    if p['password'] and '\x00' in p['password']:
        problems.append('password must not contain a NUL character')
    if not HTTP_URL.match(p['issuer']) or CONTROL.search(p['issuer']):
        problems.append('issuer %r must be an http(s) URL such as %s' % (p['issuer'], DEFAULT_ISSUER))
    if not p['scopes']:
        problems.append('scopes must name at least one scope, for example openid and offline_access')
    problems += ['scopes: %r is not a valid scope (printable ASCII without spaces, quotes or backslashes)' % scope
                 for scope in p['scopes'] if not SCOPE_TOKEN.match(scope)]
    if p['redirect_uri'] and (not ABSOLUTE_URI.match(p['redirect_uri']) or CONTROL.search(p['redirect_uri'])):
        problems.append('redirect_uri %r must be an absolute URI such as http://localhost:4242' % p['redirect_uri'])
    if p['ca_file'] and (not p['ca_file'].startswith('/') or CONTROL.search(p['ca_file'])):
        problems.append('ca_file %r must be an absolute path (where the tools run)' % p['ca_file'])
    problems += container_problems(p['container'], p['container_user'])
    if p['renew_within_days'] is not None and p['renew_within_days'] < 0:
        problems.append('renew_within_days must be 0 or more')
    return problems
