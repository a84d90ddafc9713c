"""The bad-input matrix of the modules: every option of every module in plugins/modules (and every
suboption of healthchecks_checks' checks[]) with at least one bad value.

Each case runs the real module file with an args file, as Ansible runs it on a target (`python -m
ansible_collections.infn_cloud.backup.plugins.modules.X args.json`), with a good set of options that points
at things this test controls: the fake Healthchecks server in this process, a restic repository path under
tmp_path, and fake `docker` and `restic` commands that record every call. Only the one option is bad. The
module must fail with a message that names the option, before it calls anything: no request to the API,
no docker or restic command, no repository. Secret values never appear in the output.

`python tests/integration/test_module_bad_input_matrix.py` rewrites the "Module options" section of
docs/bad-input.md from this table; a test fails when the two differ.
"""
from __future__ import annotations

import importlib
import importlib.util
import json
import os
import re
import subprocess
import sys
from unittest import mock

import pytest
import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
COLLECTIONS = os.path.join(REPO, ".cache", "collections")
if COLLECTIONS not in sys.path:  # run as a script, without tests/conftest.py
    sys.path.insert(0, COLLECTIONS)
sys.path.insert(0, os.path.join(REPO, "tests", "fakes"))
sys.path.insert(0, os.path.join(REPO, "tests", "unit"))
from healthchecks_fake import FakeHealthchecks  # noqa: E402
from test_bad_input_matrix import DOC, MODULES_MARKER, module_part, role_part  # noqa: E402

PACKAGE = "ansible_collections.infn_cloud.backup.plugins.modules."
# Modules that call nothing outside themselves: their text is printed by the controller (an action plugin).
PRINT_ONLY = ("show_text",)
MODULES = sorted(f[:-3] for f in os.listdir(os.path.join(REPO, "plugins", "modules")) if f.endswith(".py"))
_spec = importlib.util.spec_from_file_location("docs_generate", os.path.join(REPO, "docs", "generate.py"))
docs_generate = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(docs_generate)

# The bad values. A case is (bad value, message excerpt) or (bad value, message excerpt, other options of
# that case); "checks[].x" puts the bad value into the second entry of checks.
NOT_BOOL = "argument '%s' is of type str and we were unable to convert to bool"
NOT_INT = "argument '%s' is of type str and we were unable to convert to int"
ENTRY = "checks[1] (web01-backup-etc): "
MATRIX = {
    "healthchecks_check": {
        "api_url": [("hc.cloud.infn.it", "api_url must be an http(s) URL such as https://hc.cloud.infn.it")],
        "api_key": [("", "api_key is required (or set HEALTHCHECKS_API_KEY)"),
                    ("hcw-Leak4711\nX-Leak: Leak4712", "api_key must be one word, without spaces or control characters"),
                    ("hcw_Leak4713", "api_key must be a Healthchecks project API key of 32 characters")],
        "validate_certs": [("dunno", NOT_BOOL % "validate_certs")],
        "ca_path": [("/nonexistent/ca.pem", "ca_path '/nonexistent/ca.pem' is not a readable file")],
        "api_timeout": [(0, "api_timeout must be a positive number of seconds, got 0"), ("soon", NOT_INT % "api_timeout")],
        "api_retries": [(11, "api_retries must be between 0 and 10, got 11")],
        "key": [("uuid", "value of key must be one of: name, slug, got: uuid")],
        "state": [("gone", "value of state must be one of: present, absent, paused, active, got: gone")],
        "name": [("x" * 101, "name is longer than 100 characters")],
        "slug": [("Web 01", "slug 'Web 01' may only contain a-z, 0-9, '-' and '_'")],
        "tags": [(["two words"], "tags must be non-empty and without spaces, got 'two words'")],
        "desc": [("nightly\x00backup", "desc must not contain a NUL character")],
        "timeout": [(30, "timeout must be an integer from 60 to 31536000 seconds, got 30")],
        "grace": [(30, "grace must be an integer from 60 to 31536000 seconds, got 30"), ("1h", NOT_INT % "grace")],
        "schedule": [("0 30 2 * * *", "schedule '0 30 2 * * *' has 6 fields")],
        "tz": [("Mars/Olympus", "tz 'Mars/Olympus' is not an IANA time zone"),
               ("Europe/ Rome", "tz 'Europe/ Rome' is not an IANA time zone"),
               ("Factory", "tz 'Factory' is not a time zone Healthchecks accepts")],
        "channels": [(["a,b"], "channels: channel names and UUIDs must be non-empty and without commas"),
                     (["*", "ops-email"], "channels '*' (all) cannot be combined with other channels")],
        "methods": [("GET", "value of methods must be one of: , POST, got: GET")],
        "manual_resume": [("dunno", NOT_BOOL % "manual_resume")],
        "start_kw": [("x" * 201, "start_kw is longer than 200 characters")],
        "success_kw": [("x" * 201, "success_kw is longer than 200 characters")],
        "failure_kw": [("x" * 201, "failure_kw is longer than 200 characters")],
        "filter_subject": [("dunno", NOT_BOOL % "filter_subject")],
        "filter_body": [("dunno", NOT_BOOL % "filter_body")],
    },
    "healthchecks_checks": {
        "api_url": [("hc.cloud.infn.it", "api_url must be an http(s) URL such as https://hc.cloud.infn.it")],
        "api_key": [("", "api_key is required (or set HEALTHCHECKS_API_KEY)"),
                    ("hcw-Leak4721\r\nLeak4722", "api_key must be one word, without spaces or control characters"),
                    ("hcw_Leak4723" + "4" * 21, "api_key must be a Healthchecks project API key of 32 characters")],
        "validate_certs": [("dunno", NOT_BOOL % "validate_certs")],
        "ca_path": [("/nonexistent/ca.pem", "ca_path '/nonexistent/ca.pem' is not a readable file")],
        "api_timeout": [(-1, "api_timeout must be a positive number of seconds, got -1")],
        "api_retries": [(-1, "api_retries must be between 0 and 10, got -1")],
        "checks": [({"name": "web01-backup-home"}, "argument 'checks' is of type dict and we were unable to convert to list"),
                   ([{"name": "a", "grace": 3600, "retries": 3}], "Unsupported parameters for (basic.py) module: checks.retries")],
        "checks[].state": [("gone", "value of state must be one of: present, absent, paused, active, got: gone found in checks")],
        "checks[].name": [("x" * 101, "name is longer than 100 characters"),
                          ("web01-backup-home", "name 'web01-backup-home' is listed more than once in checks")],
        "checks[].slug": [("Web 01", ENTRY + "slug 'Web 01' may only contain a-z, 0-9, '-' and '_'")],
        "checks[].tags": [(["two words"], ENTRY + "tags must be non-empty and without spaces, got 'two words'")],
        "checks[].desc": [("nightly\x00backup", ENTRY + "desc must not contain a NUL character")],
        "checks[].timeout": [(30, ENTRY + "timeout must be an integer from 60 to 31536000 seconds, got 30")],
        "checks[].grace": [(30, ENTRY + "grace must be an integer from 60 to 31536000 seconds, got 30"),
                           ("1h", "argument 'grace' is of type str found in 'checks'. and we were unable to convert to int")],
        "checks[].schedule": [("0 30 2 * * *", ENTRY + "schedule '0 30 2 * * *' has 6 fields")],
        "checks[].tz": [("Mars/Olympus", ENTRY + "tz 'Mars/Olympus' is not an IANA time zone"),
                        ("localtime", ENTRY + "tz 'localtime' is not a time zone Healthchecks accepts")],
        "checks[].channels": [(["a,b"], ENTRY + "channels: channel names and UUIDs must be non-empty and without commas")],
        "checks[].methods": [("GET", "value of methods must be one of: , POST, got: GET found in checks")],
        "checks[].manual_resume": [("dunno", "argument 'manual_resume' is of type str found in 'checks'. and we were unable to convert to bool")],
        "checks[].start_kw": [("x" * 201, ENTRY + "start_kw is longer than 200 characters")],
        "checks[].success_kw": [("x" * 201, ENTRY + "success_kw is longer than 200 characters")],
        "checks[].failure_kw": [("x" * 201, ENTRY + "failure_kw is longer than 200 characters")],
        "checks[].filter_subject": [("dunno", "argument 'filter_subject' is of type str found in 'checks'. and we were unable to convert to bool")],
        "checks[].filter_body": [("dunno", "argument 'filter_body' is of type str found in 'checks'. and we were unable to convert to bool")],
        "key": [("uuid", "value of key must be one of: name, slug, got: uuid")],
        "orphan_tags": [([], "orphan_tags must name at least one tag when orphan_state is paused"),
                        (["web01 infn-backup"], "orphan_tags must be non-empty and without spaces, got 'web01 infn-backup'")],
        "orphan_state": [("deleted", "value of orphan_state must be one of: keep, paused, absent, got: deleted")],
    },
    "healthchecks_check_info": {
        "api_url": [("ftp://hc.cloud.infn.it", "api_url must be an http(s) URL such as https://hc.cloud.infn.it")],
        "api_key": [("", "api_key is required (or set HEALTHCHECKS_API_KEY)"),
                    ("hcr-Leak4731 Leak4732", "api_key must be one word, without spaces or control characters"),
                    ("hcr_Leak4733", "api_key must be a Healthchecks project API key of 32 characters")],
        "validate_certs": [("dunno", NOT_BOOL % "validate_certs")],
        "ca_path": [("/nonexistent/ca.pem", "ca_path '/nonexistent/ca.pem' is not a readable file")],
        "api_timeout": [(0, "api_timeout must be a positive number of seconds, got 0")],
        "api_retries": [(100, "api_retries must be between 0 and 10, got 100")],
        "name": [("x" * 101, "name is longer than 100 characters")],
        "slug": [("Web 01", "slug 'Web 01' may only contain a-z, 0-9, '-' and '_'")],
        "tags": [(["web01 infn-backup"], "tags must be non-empty and without spaces, got 'web01 infn-backup'")],
    },
    "restic_repository": {
        "repository": [("", "repository must not be empty")],
        "password": [("", "password must not be empty"), ("Leak4741\x00Leak4742", "password must not contain a NUL character")],
        "password_file": [("restic.pw", "password_file must be an absolute path", {"password": None}),
                          ("/nonexistent/restic.pw", "password_file '/nonexistent/restic.pw' is not a readable file",
                           {"password": None}),
                          ("/run/secrets/restic.pw", "parameters are mutually exclusive: password|password_file")],
        "container": [("Cloud Backup", "container 'Cloud Backup' is not a container name or id")],
        "container_user": [("backup user", "container_user 'backup user' must be a user or uid, optionally :group or :gid")],
        "environment": [({"AWS SECRET": "Leak4743"}, "invalid environment variable name(s): AWS SECRET"),
                        ("AWS_SECRET_ACCESS_KEY", "argument 'environment' is of type str and we were unable to convert to dict")],
        "timeout": [(0, "timeout must be a positive number of seconds, got 0")],
        "restic_binary": [("", "restic_binary must not be empty")],
        "state": [("initialised", "value of state must be one of: present, checked, got: initialised")],
        "repository_version": [("3", "value of repository_version must be one of: 1, 2, stable, latest, got: 3")],
        "read_data_subset": [("lots", "read_data_subset 'lots' must be n/t (1 <= n <= t), a percentage (above 0% and at "
                                      "most 100%) or a size such as 500M"),
                             ("3/2", "read_data_subset '3/2' must be n/t (1 <= n <= t)"),
                             ("0%", "read_data_subset '0%' must be n/t (1 <= n <= t), a percentage (above 0%")],
    },
    "restic_snapshots_info": {
        "repository": [("", "repository must not be empty")],
        "password": [("", "password must not be empty"), ("Leak4751\x00Leak4752", "password must not contain a NUL character")],
        "password_file": [("restic.pw", "password_file must be an absolute path", {"password": None})],
        "container": [("-it", "container '-it' is not a container name or id")],
        "container_user": [("root user", "container_user 'root user' must be a user or uid, optionally :group or :gid")],
        "environment": [({"1PASSWORD": "Leak4753"}, "invalid environment variable name(s): 1PASSWORD")],
        "timeout": [(-5, "timeout must be a positive number of seconds, got -5")],
        "restic_binary": [("", "restic_binary must not be empty")],
        "host": [("web 01", "host 'web 01' must be a single word")],
        "tags": [(["daily,weekly"], "tags: 'daily,weekly' must be one tag, without commas")],
        "paths": [(["home"], "paths: 'home' must be an absolute path")],
    },
    "stack_files": {
        "directories": [([5], "Value '5' in the sub parameter field 'directories' must be a list, not 'int'")],
        "directories[].path": [("stack/logs", "directories[1].path 'stack/logs' must be an absolute path")],
        "directories[].mode": [("rwx", "directories[1].mode 'rwx' is not an octal mode")],
        "directories[].owner": [("no-such-user-4781", "directories[1].owner 'no-such-user-4781' is not a user on the host")],
        "directories[].group": [("no-such-group-4782", "directories[1].group 'no-such-group-4782' is not a group on the host")],
        "files": [([5], "Value '5' in the sub parameter field 'files' must be a list, not 'int'")],
        "files[].path": [("compose.yaml", "files[1].path 'compose.yaml' must be an absolute path")],
        "files[].content": [("A='1'\x00", "files[1].content must not contain a NUL character")],
        "files[].mode": [("0999", "files[1].mode '0999' is not an octal mode")],
        "files[].owner": [("no such user", "files[1].owner 'no such user' is not a user on the host")],
        "files[].group": [("nogroup-4783", "files[1].group 'nogroup-4783' is not a group on the host")],
        "private_files": [([5], "Value '5' in the sub parameter field 'private_files' must be a list, not 'int'")],
        "private_files[].path": [("secrets/PASSWORD", "private_files[1].path 'secrets/PASSWORD' must be an absolute path")],
        "private_files[].content": [("Leak4787\x00Leak4788", "private_files[1].content must not contain a NUL character")],
        "private_files[].mode": [("u=rw", "private_files[1].mode 'u=rw' is not an octal mode")],
        "private_files[].owner": [("no-such-user-4785", "private_files[1].owner 'no-such-user-4785' is not a user on the host")],
        "private_files[].group": [("no-such-group-4786", "private_files[1].group 'no-such-group-4786' is not a group on the host")],
        "exclusive": [(["secrets"], "exclusive: 'secrets' must be an absolute path")],
        "absent": [(["old.ini"], "absent: 'old.ini' must be an absolute path")],
    },
    "show_text": {
        "lines": [({"HOST": "web01"}, "argument 'lines' is of type dict and we were unable to convert to list"),
                  (None, "missing required arguments: lines")],
    },
    "oidc_agent_account": {
        "name": [("my account", "name must be a plain account short name")],
        "state": [("enrolled", "value of state must be one of: present, renewed, absent, got: enrolled")],
        "issuer": [("iam.cloud.infn.it", "issuer 'iam.cloud.infn.it' must be an http(s) URL")],
        "scopes": [([], "scopes must name at least one scope"),
                   (["openid", 'offline"access'], "scopes: 'offline\"access' is not a valid scope")],
        "client_id": [("backup-client\n", "client_id must be one line, without control characters")],
        "client_secret": [("Leak4761\n", "client_secret must be one line, without control characters"),
                          ("Leak4762", "missing parameter(s) required by 'client_secret': client_id", {"client_id": None})],
        "redirect_uri": [("/callback", "redirect_uri '/callback' must be an absolute URI")],
        "audience": [("minio\n", "audience must be one line, without control characters")],
        "ca_file": [("ca.pem", "ca_file 'ca.pem' must be an absolute path")],
        "password": [("", "password must not be empty"), ("Leak4763\x00Leak4764", "password must not contain a NUL character")],
        "container": [("Cloud Backup", "container 'Cloud Backup' is not a container name or id")],
        "container_user": [("backup user", "container_user 'backup user' must be a user or uid, optionally :group or :gid")],
        "timeout": [(0, "timeout must be positive")],
        "wait": [("dunno", NOT_BOOL % "wait")],
        "wait_timeout": [(0, "wait_timeout must be positive")],
        "refresh_token_lifetime_days": [(0, "refresh_token_lifetime_days must be positive")],
        "renew_within_days": [(7, "renew_within_days is only used with state=renewed"),
                              (-1, "renew_within_days must be 0 or more", {"state": "renewed"})],
    },
}


# ---- the good options, and the sandbox they point at --------------------------------------------

FAKE_TOOL = r'''#!%(python)s
"""Fake %(name)s: records its argv, answers like the real tool would for the calls the modules make."""
import json, sys
with open(%(calls)r, "a") as log:
    log.write(json.dumps(sys.argv) + "\n")
args = sys.argv[1:]
if "cat" in args and "config" in args:
    print(json.dumps({"version": 2, "id": "c0ffee" * 10 + "beef", "chunker_polynomial": "25b468838dcb75"}))
elif "check" in args:
    print(json.dumps({"message_type": "summary", "num_errors": 0}))
elif "snapshots" in args:
    print("[]")
elif "oidc-agent-account" in args:  # the probe of oidc_agent_account: no agent, no account, no flow
    print("now=1767225600\nhome=/home/user\nsocket=/home/user/.local/state/oidc-agent/agent.sock\n"
          "config_dir=/home/user/.config/oidc-agent\nagent=down\nloaded=0\naccount=0\nflow=none")
'''


class Sandbox:
    """What the modules may touch: the fake server, the fake docker and restic, the repository path."""

    def __init__(self, tmp_path, hc):
        self.tmp, self.hc = tmp_path, hc
        self.bin, self.calls, self.repository = tmp_path / "bin", tmp_path / "calls.log", tmp_path / "repo"
        self.bin.mkdir()
        for name in ("docker", "restic"):
            tool = self.bin / name
            tool.write_text(FAKE_TOOL % dict(python=sys.executable, name=name, calls=str(self.calls)))
            tool.chmod(0o755)
        self.password_file = tmp_path / "restic.pw"
        self.password_file.write_text("restic-pw-good\n")

    def base(self, module):
        """Good options of MODULE: it would run and reach the server or the tools with them."""
        hc = dict(api_url=self.hc.url, api_key=self.hc.api_key, validate_certs=True, api_timeout=5, api_retries=0)
        restic = dict(repository=str(self.repository), password="restic-pw-good", environment={"RESTIC_CACHE_DIR": "/tmp"},
                      timeout=10, restic_binary=str(self.bin / "restic"))
        home = dict(name="web01-backup-home", tags=["web01", "infn-backup"], desc="restic backup of /home",
                    schedule="30 2 * * *", tz="Europe/Rome", grace=3600, channels=["ops-email"], methods="",
                    manual_resume=False, start_kw="start", success_kw="success", failure_kw="fail",
                    filter_subject=False, filter_body=False, state="present")
        etc = dict(home, name="web01-backup-etc", slug="web01-backup-etc", desc="restic backup of /etc",
                   schedule="40 2 * * *")
        if module == "healthchecks_check":
            return dict(hc, key="name", **home)
        if module == "healthchecks_checks":
            return dict(hc, key="name", checks=[home, etc], orphan_tags=["web01", "infn-backup"], orphan_state="paused")
        if module == "healthchecks_check_info":
            return dict(hc, name="web01-backup-home", slug="web01-backup-home", tags=["web01"])
        if module == "restic_repository":
            return dict(restic, state="checked", repository_version="2", read_data_subset="5%")
        if module == "restic_snapshots_info":
            return dict(restic, host="web01", tags=["daily"], paths=["/home"])
        if module == "show_text":
            return dict(lines=["HOST   VERDICT", "web01  ok"])
        if module == "stack_files":
            root = str(self.tmp / "stack")
            return dict(directories=[dict(path=root, mode="0750"), dict(path=root + "/secrets", mode="0700", owner="1000", group="1000")],
                        files=[dict(path=root + "/.env", content="A='1'\n", mode="0600"),
                               dict(path=root + "/compose.yaml", content="services: {}\n", mode="0644", owner="root", group="root")],
                        private_files=[dict(path=root + "/secrets/PASSWORD", content="stack-secret-good", mode="0600"),
                                       dict(path=root + "/secrets/TOKEN", content="stack-token-good", mode="0600",
                                            owner="1000", group="1000")],
                        exclusive=[root + "/secrets"], absent=[root + "/old.ini"])
        return dict(name="cloud-backup", state="present", issuer="https://iam.example.org/",
                    scopes=["openid", "offline_access"], client_id="backup-client", client_secret="client-secret-good",
                    redirect_uri="http://localhost:4242", audience="minio", ca_file="/etc/ssl/certs/ca.pem",
                    password="oidc-pw-good", container="cloud-backup", container_user="user", timeout=5, wait=False,
                    wait_timeout=600, refresh_token_lifetime_days=30)

    def run(self, module, args, check_mode=False):
        """Run the module file as Ansible does on a target; return (result, everything it printed)."""
        path = self.tmp / "args.json"
        args = {k: v for k, v in args.items() if v is not None}
        path.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": dict(args, _ansible_check_mode=check_mode)}))
        env = {k: v for k, v in os.environ.items() if not k.startswith(("HEALTHCHECKS_", "RESTIC_", "OIDC_"))}
        env.update(PYTHONPATH=COLLECTIONS, PATH=str(self.bin) + os.pathsep + os.environ["PATH"])
        proc = subprocess.run([sys.executable, "-m", PACKAGE + module, str(path)], cwd=self.tmp, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        output = proc.stdout + proc.stderr
        try:
            result = json.loads(proc.stdout)
        except ValueError:
            result = {}
        return result, output

    def touched(self):
        """Everything the module did outside itself: API requests, tool calls, a repository."""
        done = ["%s %s" % (r["method"], r["path"]) for r in self.hc.requests(prefix="/")]
        if self.calls.exists():
            done += ["ran " + " ".join(json.loads(line)[:3]) for line in self.calls.read_text().splitlines()]
        if self.repository.exists():
            done.append("created " + str(self.repository))
        if (self.tmp / "stack").exists():  # stack_files: what it would write
            done.append("created " + str(self.tmp / "stack"))
        return done


@pytest.fixture
def sandbox(tmp_path):
    with FakeHealthchecks() as hc:
        yield Sandbox(tmp_path, hc)


# ---- the options the modules have -----------------------------------------------------------------

def argument_spec(module):
    """The argument spec MODULE hands to AnsibleModule (main() is stopped right there)."""
    code = importlib.import_module(PACKAGE + module)
    seen = {}

    class Stop(Exception):
        pass

    def capture(argument_spec, **kwargs):
        seen.update(argument_spec)
        raise Stop()

    with mock.patch.object(code, "AnsibleModule", capture), pytest.raises(Stop):
        code.main()
    return seen


def documented_options(module):
    strings = docs_generate.literal_strings(os.path.join(REPO, "plugins", "modules", module + ".py"))
    return docs_generate.merge_fragments(yaml.safe_load(strings["DOCUMENTATION"]))["options"]


def option_names(options, prefix=""):
    names = []
    for name, spec in options.items():
        names.append(prefix + name)
        subs = (spec or {}).get("options") or (spec or {}).get("suboptions")
        if subs:
            names += option_names(subs, prefix + name + ("[]." if spec.get("type") == "list" else "."))
    return sorted(names)


def cases():
    for module in sorted(MATRIX):
        for option in sorted(MATRIX[module]):
            for index, case in enumerate(MATRIX[module][option]):
                yield pytest.param(module, option, case, id="%s-%s-%d" % (module, option, index))


def test_every_module_is_in_the_matrix():
    assert MODULES and sorted(MATRIX) == MODULES


@pytest.mark.parametrize("module", MODULES)
def test_every_option_is_in_the_matrix(module):
    spec = argument_spec(module)
    assert option_names(spec) == option_names(documented_options(module)), "argument spec and DOCUMENTATION differ"
    assert sorted(MATRIX[module]) == option_names(spec)


@pytest.mark.parametrize("module", MODULES)
def test_the_good_options_reach_the_server_or_the_tools(sandbox, module):
    """The control: with the base options alone the module runs and calls out, so "nothing touched" means
    that the bad value stopped it."""
    result, output = sandbox.run(module, sandbox.base(module), check_mode=module == "oidc_agent_account")
    assert result and not result.get("failed"), output
    if module in PRINT_ONLY:  # it calls nothing by design (the controller prints its text): its bad values fail
        return
    assert sandbox.touched(), "the module called nothing: the matrix would prove nothing"
    if module.startswith("restic_"):  # with a password file, and through docker exec
        for other, called in ((dict(password=None, password_file=str(sandbox.password_file)), sandbox.bin / "restic"),
                              (dict(container="cloud-backup", container_user="user"), sandbox.bin / "docker")):
            sandbox.calls.unlink()
            result, output = sandbox.run(module, dict(sandbox.base(module), **other))
            assert result and not result.get("failed"), output
            assert sandbox.touched() and {line.split()[1] for line in sandbox.touched()} == {str(called)}


def secret_parts(value):
    """The pieces of a secret value that must not be printed (split at control characters)."""
    if isinstance(value, dict):
        return [p for v in value.values() for p in secret_parts(v)]
    if isinstance(value, list):
        return [p for v in value for p in secret_parts(v)]
    return [p for p in re.split(r"[\x00-\x1f]", str(value)) if len(p) >= 4]


def mentions(message, name):
    return re.search(r"(?<![\w-])%s(?![\w-])" % re.escape(name), message) is not None


@pytest.mark.parametrize("module, option, case", list(cases()))
def test_bad_value_fails_naming_the_option_before_any_call(sandbox, module, option, case):
    bad, excerpt, others = case if len(case) == 3 else case + ({},)
    args = dict(sandbox.base(module), **others)
    parent, dummy, leaf = option.rpartition("[].")
    if parent:
        args[parent][1][leaf] = bad
    else:
        args[option] = bad
    result, output = sandbox.run(module, args)
    assert result.get("failed") is True and not result.get("changed"), output
    assert excerpt in result["msg"], result["msg"]
    assert mentions(result["msg"], leaf or option) and (not parent or mentions(result["msg"], parent)), result["msg"]
    assert sandbox.touched() == []
    spec = argument_spec(module)
    if (spec[parent]["options"][leaf] if parent else spec[option]).get("no_log"):
        leaked = [part for part in secret_parts(bad) if part in output or json.dumps(part)[1:-1] in output]
        assert not leaked, output


def test_every_secret_option_has_a_printable_bad_value():
    """So that the check above, that a secret is not printed, is never vacuous."""
    for module in MODULES:
        spec = argument_spec(module)
        for option, details in spec.items():
            if details.get("no_log"):
                assert any(secret_parts(case[0]) for case in MATRIX[module][option]), (module, option)


# ---- docs/bad-input.md -----------------------------------------------------------------------------

def shown(value):
    if isinstance(value, str) and len(value) > 40 and len(set(value)) == 1:
        return "`'%s' * %d`" % (value[0], len(value))
    if isinstance(value, str) and re.search(r"[\x00-\x1f]", value):
        return "`%s`" % json.dumps(value)
    return "`%s`" % yaml.safe_dump(value, default_flow_style=True, width=1000).strip().replace("\n...", "")


def render():
    lines = ["", MODULES_MARKER, "", "## Module options", "",
             "Generated by `python tests/integration/test_module_bad_input_matrix.py` from the table its tests check.",
             "Each row runs the real module (its file with an args file, as Ansible runs it on a target) with good",
             "options pointing at a fake Healthchecks server, a repository path and fake `docker` and `restic`",
             "commands, the one option set to the bad value. The module fails with a message naming the option",
             "before it calls anything: no API request, no docker, restic or oidc-agent command, no repository.",
             "Secret values are never printed. `checks[].x` is the option `x` of an entry of `checks`."]
    for module in sorted(MATRIX):
        lines += ["", "### infn_cloud.backup.%s" % module, "", "| option | bad value | message (excerpt) |", "|---|---|---|"]
        for option in sorted(MATRIX[module]):
            for case in MATRIX[module][option]:
                value = shown(case[0])
                if len(case) == 3:
                    value += ", " + ", ".join("without `%s`" % k if v is None else "with `%s: %s`" % (k, v)
                                              for k, v in sorted(case[2].items()))
                lines.append("| `%s` | %s | %s |" % (option, value.replace("|", "\\|"), case[1].replace("|", "\\|")))
    return "\n".join(lines) + "\n"


def test_docs_table_is_current():
    assert os.path.exists(DOC) and module_part(open(DOC).read()) == render(), \
        "run: python tests/integration/test_module_bad_input_matrix.py"


if __name__ == "__main__":
    with open(DOC) as handle:
        before = role_part(handle.read())
    with open(DOC, "w") as handle:
        handle.write(before + render())
