# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the cloud_backup role: the host's jobs as data, its .env, and the checks of its input."""

from __future__ import annotations

import os
import re
import zoneinfo
from urllib.parse import quote, urlsplit, urlunsplit

from ansible.errors import AnsibleFilterError

from ansible_collections.infn_cloud.backup.plugins.module_utils import _ofelia
from ansible_collections.infn_cloud.backup.plugins.module_utils._restic import read_data_subset_ok

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+/[a-z0-9._/-]+)?(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$")
USER_RE = re.compile(r"^([a-z_][a-z0-9_-]*|\d+)(:([a-z_][a-z0-9_-]*|\d+))?$")
CRON_FILE_RE = re.compile(r"^/etc/cron\.d/[A-Za-z0-9_-]+$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
PLACEHOLDERS = {"", "changeme", "change-me", "change_me", "password", "secret", "todo", "xxx", "xxxx",
                "none", "null", "example", "placeholder", "restic", "12345678"}
EXCLUDE_DIR = "/etc/cloud-backup/excludes"
# restic forget options that take a value; the rest of the policy keys are rejected by name.
RETENTION_KEYS = {
    "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within",
    "keep_within_hourly", "keep_within_daily", "keep_within_weekly", "keep_within_monthly",
    "keep_within_yearly", "keep_tag",
}


def _argv_token(value, what):
    text = str(value)
    if not text or any(c.isspace() or c in "\"'\\%;#" for c in text):
        raise AnsibleFilterError("%s %r: blanks, quotes, backslashes, %%, ; and # are not allowed" % (what, text))
    return text


def _retention_args(retention):
    args = []
    for key in sorted(retention):
        values = retention[key] if isinstance(retention[key], list) else [retention[key]]
        for value in values:
            args += ["--" + key.replace("_", "-"), _argv_token(value, "cloud_backup_retention.%s" % key)]
    return args


def cloud_backup_jobs(sources, backup_schedule, forget_schedule, retention, prune, check=None, copies=None,
                      refresh_token_check=None, copy_schedule=None):
    """The host's scheduled jobs: name, schedule and argv (run inside the backup container).

    copies: the secondary destinations ({name, schedule, retention}), each a `copy NAME` job when there are
    sources (on its own schedule, else copy_schedule), which then applies its retention (else the primary's)
    to the copies of this host;
    refresh_token_check: {'enabled', 'schedule'}, the `check-refresh-token` job of an oidc-agent account."""
    jobs = []
    for src in sources:
        argv = ["backup", "--tag", src["name"]]
        for tag in src.get("tags") or []:
            argv += ["--tag", _argv_token(tag, "tag")]
        argv += ["--exclude-file", "%s/%s" % (EXCLUDE_DIR, src["name"]), "/backup/%s" % src["name"]]
        jobs.append({"name": "backup-%s" % src["name"], "schedule": src.get("schedule") or backup_schedule,
                     "argv": argv, "command": " ".join(argv)})
    if sources:
        argv = ["forget"] + _retention_args(retention) + (["--prune"] if prune else [])
        jobs.append({"name": "forget", "schedule": forget_schedule, "argv": argv, "command": " ".join(argv)})
    if sources and check and check.get("enabled", True):
        argv = ["check"]
        if check.get("read_data_subset"):
            subset = str(check["read_data_subset"])
            if not read_data_subset_ok(subset):
                raise AnsibleFilterError("cloud_backup_check_read_data_subset %r is not N%%, N/T or a size" % subset)
            argv += ["--read-data-subset", subset]
        jobs.append({"name": "check", "schedule": check["schedule"], "argv": argv, "command": " ".join(argv)})
    for copy in (copies or []) if sources else []:
        argv = ["copy", copy["name"]] + _retention_args(copy.get("retention") or retention) + (["--prune"] if prune else [])
        jobs.append({"name": "copy-%s" % copy["name"], "schedule": copy.get("schedule") or copy_schedule, "argv": argv,
                     "command": " ".join(argv)})
    if refresh_token_check and refresh_token_check.get("enabled"):
        argv = ["check-refresh-token"]
        jobs.append({"name": "check-refresh-token", "schedule": refresh_token_check["schedule"], "argv": argv,
                     "command": " ".join(argv)})
    return jobs


def cloud_backup_checks(jobs, prefix, tags, grace, tz, channels):
    """The Healthchecks checks of a host: one per job, named <prefix>-<job>, expecting the job's schedule."""
    checks = []
    for job in jobs:
        check = {"name": "%s-%s" % (prefix, job["name"]), "tags": list(tags), "grace": int(grace),
                 "channels": list(channels), "desc": "infn_cloud.backup job %s: %s" % (job["name"], job["command"])}
        try:
            expect = _ofelia.to_healthchecks(job["schedule"])
        except _ofelia.ScheduleError as exc:
            raise AnsibleFilterError("schedule of job %s: %s" % (job["name"], exc))
        check.update(expect)
        if "schedule" in expect:
            check["tz"] = tz
        checks.append(check)
    return checks


def cloud_backup_ping_urls(jobs, prefix, checks):
    """{job name: ping URL} from the checks returned by healthchecks_checks ('' for a check not created yet)."""
    return {job["name"]: (checks.get("%s-%s" % (prefix, job["name"])) or {}).get("ping_url") or "" for job in jobs}


SECONDARY_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
DEST_TYPES = ("s3", "local", "rclone", "sftp", "rest", "infn")
TOKEN_FILE = "/home/user/.local/state/cloud-backup/web-identity-token"
DESTINATION_FILES = "/etc/cloud-backup/destinations"


def _rest_url(dest):
    """rest: repository URL of a restic REST server, with its credentials (restic masks them in output)."""
    url = urlsplit(str(dest["url"]))
    netloc = url.netloc.rsplit("@", 1)[-1]
    if dest.get("username"):
        netloc = "%s:%s@%s" % (quote(str(dest["username"]), safe=""), quote(str(dest.get("password") or ""), safe=""),
                               netloc)
    path = url.path if url.path.endswith("/") else url.path + "/"
    return "rest:" + urlunsplit((url.scheme, netloc, path, "", ""))


def cloud_backup_destination_env(dest, name="dest", hostname=""):
    """The environment of one destination: the rclone remote NAME (RCLONE_CONFIG_<NAME>_*) and, for the
    primary (name dest), BACKUP_BUCKET_PATH served by start-server (or RESTIC_REPOSITORY for type rest);
    for a secondary, CLOUD_BACKUP_REPOSITORY_<NAME> (the repository its copy job writes to)."""
    kind = dest.get("type")
    prefix = "RCLONE_CONFIG_%s_" % name.upper()
    env, path = {}, None
    if kind in ("s3", "infn"):
        env = {prefix + "TYPE": "s3",
               prefix + "PROVIDER": dest.get("provider") or ("Ceph" if kind == "infn" else "Other"),
               prefix + "ENDPOINT": dest["endpoint"], prefix + "ENV_AUTH": "true" if kind == "infn" else "false"}
        if kind == "s3":
            env[prefix + "ACCESS_KEY_ID"] = dest["access_key_id"]
            env[prefix + "SECRET_ACCESS_KEY"] = dest["secret_access_key"]
        else:
            # Temporary keys from STS AssumeRoleWithWebIdentity on the S3 endpoint itself (rclone's env_auth:
            # the AWS SDK's web-identity provider, refreshed when they expire); the token comes from oidc-agent.
            env[prefix + "STS_ENDPOINT"] = dest.get("sts_endpoint") or dest["endpoint"]
            role_arn = dest.get("role_arn") or "arn:aws:iam:::role/%s" % dest.get("role_name")
            env.update({"AWS_ROLE_ARN": role_arn,
                        "AWS_ROLE_SESSION_NAME": dest.get("role_session_name") or "cloud-backup-%s" % hostname,
                        "AWS_WEB_IDENTITY_TOKEN_FILE": dest.get("token_file") or TOKEN_FILE,
                        "INFN_TOKEN_SOURCE": "file" if dest.get("token_file") else "oidc",
                        "OIDC_AUDIENCE": dest.get("audience") or None})
        env[prefix + "REGION"] = dest.get("region") or ("us-east-1" if kind == "infn" else None)
        path = "%s/%s" % (dest["bucket"], dest.get("path") or hostname)
    elif kind == "local":
        path = "/destination" if name == "dest" else "/destinations/%s" % name
        env = {prefix + "TYPE": "local"}
    elif kind == "sftp":
        env = {prefix + "TYPE": "sftp", prefix + "HOST": dest["host"], prefix + "PORT": str(dest.get("port") or 22),
               prefix + "USER": dest["user"],
               prefix + "KEY_PEM": str(dest["private_key"]).strip().replace("\r", "").replace("\n", "\\n")}
        if dest.get("known_hosts"):
            env[prefix + "KNOWN_HOSTS_FILE"] = "%s/%s.known_hosts" % (DESTINATION_FILES, name)
        path = dest.get("path") or hostname
    elif kind == "rclone":
        env = {prefix + str(k).upper(): v for k, v in (dest.get("options") or {}).items()}
        path = dest.get("path") or ""
    if name == "dest":
        if kind == "rest":
            return {"RESTIC_REPOSITORY": _rest_url(dest), "BACKUP_BUCKET_PATH": None}
        env["BACKUP_BUCKET_PATH"] = path
        return env
    env["CLOUD_BACKUP_REPOSITORY_%s" % name.upper()] = (
        _rest_url(dest) if kind == "rest" else "rclone:%s:%s" % (name, path))
    return env


def cloud_backup_destinations_env(primary, secondaries, hostname):
    """The environment of the primary destination and of every secondary one."""
    env = cloud_backup_destination_env(primary, "dest", hostname)
    for dest in secondaries or []:
        env.update(cloud_backup_destination_env(dest, dest["name"], hostname))
    return env


def _dotenv_value(name, value):
    text = "" if value is None else str(value)
    if "'" in text or "\n" in text or "\r" in text:
        raise AnsibleFilterError("the value of %s cannot hold a single quote or a line break" % name)
    return "'%s'" % text  # single quotes: compose reads the value literally (no $ interpolation)


def cloud_backup_dotenv(env):
    """Lines of the stack's .env file from a dict (None values are left out)."""
    return "".join("%s=%s\n" % (k, _dotenv_value(k, v)) for k, v in env.items() if v is not None)


def _is_placeholder(value):
    text = str(value or "").strip().lower()
    return text in PLACEHOLDERS or "changeme" in text.replace("_", "").replace("-", "") or text.startswith("<")


OIDC_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
URL_RE = re.compile(r"^https?://[^/\s]+")


def _destination_problems(dest, where, v):
    """Problems of one destination (primary or secondary), each naming WHERE.KEY."""
    problems = []
    kind = dest.get("type")
    if kind not in DEST_TYPES:
        return ["%s.type %r must be one of %s" % (where, kind, ", ".join(DEST_TYPES))]
    if kind == "local" and not str(dest.get("path") or "").startswith("/"):
        problems.append("%s.path must be an absolute host path for type local" % where)
    if kind in ("s3", "infn"):
        if not URL_RE.match(str(dest.get("endpoint") or "")):
            problems.append("%s.endpoint must be an http(s) URL" % where)
        if not dest.get("bucket"):
            problems.append("%s.bucket is required for type %s" % (where, kind))
    if kind == "s3":
        for key in ("access_key_id", "secret_access_key"):
            if _is_placeholder(dest.get(key)):
                problems.append("%s.%s is empty or a placeholder" % (where, key))
    if kind == "infn":
        if not dest.get("role_arn") and not dest.get("role_name"):
            problems.append("%s.role_arn (or role_name) is required for type infn (the STS role to assume)" % where)
        if dest.get("sts_endpoint") and not URL_RE.match(str(dest["sts_endpoint"])):
            problems.append("%s.sts_endpoint must be an http(s) URL" % where)
        if dest.get("token_file") and not str(dest["token_file"]).startswith("/"):
            problems.append("%s.token_file must be an absolute path inside the container" % where)
        if not dest.get("token_file") and not v.get("cloud_backup_oidc_account"):
            problems.append("%s: type infn needs cloud_backup_oidc_account (the oidc-agent account whose access "
                            "tokens are exchanged for S3 keys)" % where)
    if kind == "rclone" and not (dest.get("options") or {}).get("type"):
        problems.append("%s.options.type is required for type rclone (an rclone backend name)" % where)
    if kind == "sftp":
        for key in ("host", "user"):
            if not dest.get(key):
                problems.append("%s.%s is required for type sftp" % (where, key))
        if "PRIVATE KEY-----" not in str(dest.get("private_key") or ""):
            problems.append("%s.private_key must be a PEM private key (key authentication)" % where)
        if not 1 <= int(dest.get("port") or 22) <= 65535:
            problems.append("%s.port must be a port number (1-65535)" % where)
    if kind == "rest":
        if not URL_RE.match(str(dest.get("url") or "")):
            problems.append("%s.url must be the http(s) URL of a restic REST server" % where)
        if dest.get("username") and _is_placeholder(dest.get("password")):
            problems.append("%s.password is empty or a placeholder" % where)
    values = [(key, value) for key, value in dest.items()
              if key not in ("private_key", "known_hosts", "options", "retention")]
    values += [("options.%s" % key, value) for key, value in (dest.get("options") or {}).items()]
    for key, value in values:
        text = str(value if value is not None else "")
        if "'" in text or "\n" in text or "\r" in text:
            problems.append("%s.%s cannot hold a single quote or a line break (it goes to .env)" % (where, key))
    return problems


def cloud_backup_problems(v):
    """Every problem of a host's input, as messages naming the variable (empty list: all good)."""
    problems = []

    def bad(msg):
        problems.append(msg)

    for var in ("cloud_backup_restic_password", "cloud_backup_rest_password"):
        if _is_placeholder(v.get(var)):
            bad("%s is empty or a placeholder: set a real secret (in a vault)" % var)
    if v.get("cloud_backup_oidc_password") and _is_placeholder(v["cloud_backup_oidc_password"]):
        bad("cloud_backup_oidc_password is a placeholder: set a real secret or leave it empty")
    for var in ("cloud_backup_aai_user", "cloud_backup_oidc_password", "cloud_backup_restic_password",
                "cloud_backup_rest_username", "cloud_backup_rest_password"):
        value = str(v.get(var) or "")
        if "'" in value or "\n" in value:
            bad("%s cannot hold a single quote or a line break (it goes to .env)" % var)
    if not 1 <= int(v.get("cloud_backup_rest_port") or 0) <= 65535:
        bad("cloud_backup_rest_port must be a port number (1-65535)")
    if not NAME_RE.match(str(v.get("cloud_backup_container_name") or "")):
        bad("cloud_backup_container_name must match [a-z0-9][a-z0-9_-]*")
    if not str(v.get("cloud_backup_project_dir") or "").startswith("/"):
        bad("cloud_backup_project_dir must be an absolute path")
    if not v.get("cloud_backup_image_build") and not v.get("cloud_backup_image"):
        bad("cloud_backup_image must name an image to pull when cloud_backup_image_build is false")
    if str(v.get("cloud_backup_ofelia_image", "")).endswith(":latest") and v.get("cloud_backup_scheduler") == "ofelia":
        bad("cloud_backup_ofelia_image must pin a version, not latest")

    if not PROJECT_RE.match(str(v.get("cloud_backup_project_name") or "")):
        bad("cloud_backup_project_name must match [a-z0-9][a-z0-9_-]* (a Compose project name)")
    for var in ("cloud_backup_image_name", "cloud_backup_image_base", "cloud_backup_image", "cloud_backup_ofelia_image"):
        value = str(v.get(var) or "")
        if (value or var != "cloud_backup_image") and not IMAGE_RE.match(value):
            bad("%s %r is not an image reference (lower-case name, optional :tag)" % (var, value))
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", str(v.get("cloud_backup_image_build_network") or "")):
        bad("cloud_backup_image_build_network must be a network name such as default or host")
    if not USER_RE.match(str(v.get("cloud_backup_job_user") or "")):
        bad("cloud_backup_job_user must be a user name or uid (optionally :group)")
    if not CRON_FILE_RE.match(str(v.get("cloud_backup_cron_file") or "")):
        bad("cloud_backup_cron_file must be a file directly in /etc/cron.d whose name has only letters, digits, - and _ "
            "(cron ignores names with a dot)")
    username = str(v.get("cloud_backup_rest_username") or "")
    if not username or ":" in username or any(c.isspace() for c in username):
        bad("cloud_backup_rest_username must be non-empty, without ':' or blanks (HTTP basic authentication)")
    for var in ("cloud_backup_restic_host", "cloud_backup_aai_user"):
        value = str(v.get(var) or "")
        if (value or var == "cloud_backup_restic_host") and (not value or any(c.isspace() for c in value)):
            bad("%s must be a single word (no blanks)" % var)
    if v.get("cloud_backup_docker_install"):
        packages = v.get("cloud_backup_docker_packages") or []
        if not packages or not all(PACKAGE_RE.match(str(p)) for p in packages):
            bad("cloud_backup_docker_packages must list Debian package names when cloud_backup_docker_install is true")

    dest = v.get("cloud_backup_destination") or {}
    for msg in _destination_problems(dest, "cloud_backup_destination", v):
        bad(msg)
    secondaries = v.get("cloud_backup_secondary_destinations") or []
    names = set()
    for i, sec in enumerate(secondaries):
        where = "cloud_backup_secondary_destinations[%d]" % i
        name = str(sec.get("name") or "")
        if not SECONDARY_RE.match(name) or name == "dest":
            bad("%s.name %r must match [a-z][a-z0-9]* (at most 16 characters, not dest)" % (where, name))
        elif name in names:
            bad("%s.name %r is used by two destinations: names must be unique" % (where, name))
        names.add(name)
        for msg in _destination_problems(sec, where, v):
            bad(msg)
        sec_retention = sec.get("retention") or {}
        if not isinstance(sec_retention, dict):
            bad("%s.retention must be a dict of restic forget options" % where)
        else:
            unknown = sorted(set(sec_retention) - RETENTION_KEYS)
            if unknown:
                bad("%s.retention: unknown option(s) %s" % (where, ", ".join(unknown)))
            for key, value in sec_retention.items():
                for item in value if isinstance(value, list) else [value]:
                    if not str(item) or any(c.isspace() or c in "\"'\\%;#" for c in str(item)):
                        bad("%s.retention.%s: %r is not a valid value" % (where, key, item))
        if sec.get("schedule"):
            err = _ofelia.schedule_error(sec["schedule"])
            if err:
                bad("%s.schedule: %s" % (where, err))
            elif v.get("cloud_backup_scheduler") == "cron":
                try:
                    _ofelia.to_cron(sec["schedule"])
                except _ofelia.ScheduleError as exc:
                    bad("%s.schedule (cron scheduler): %s" % (where, exc))
    if sum(1 for d in [dest] + list(secondaries) if d.get("type") == "infn") > 1:
        bad("cloud_backup_secondary_destinations: at most one destination of type infn per host "
            "(the STS role and token are per container)")
    account = str(v.get("cloud_backup_oidc_account") or "")
    if account:
        if not OIDC_ACCOUNT_RE.match(account):
            bad("cloud_backup_oidc_account %r must match [A-Za-z0-9][A-Za-z0-9._@+-]* (an oidc-agent short name)" % account)
        if not v.get("cloud_backup_oidc_password"):
            bad("cloud_backup_oidc_password must be set when cloud_backup_oidc_account is set (it encrypts the account)")
    if not re.match(r"^https://[^/\s]+", str(v.get("cloud_backup_oidc_issuer", "https://iam.cloud.infn.it/") or "")):
        bad("cloud_backup_oidc_issuer must be an https URL such as https://iam.cloud.infn.it/")
    for var, default in (("cloud_backup_refresh_token_min_days", 7), ("cloud_backup_refresh_token_lifetime_days", 30)):
        if int(v.get(var, default) or 0) < 1:
            bad("%s must be at least 1 (days)" % var)
    pack = v.get("cloud_backup_restic_pack_size")
    if pack not in (None, "") and not (str(pack).isdigit() and (int(pack) == 0 or 4 <= int(pack) <= 128)):
        bad("cloud_backup_restic_pack_size must be 0 (restic's default) or 4..128 (MiB)")
    limit = v.get("cloud_backup_job_timeout", "23h")
    if isinstance(limit, bool) or not re.match(r"^[0-9]+[smhd]?$", str(limit if limit is not None else "")):
        bad("cloud_backup_job_timeout %r must be a number of seconds or a number with s, m, h or d (0: no limit)"
            % (limit,))
    conc = v.get("cloud_backup_restic_read_concurrency")
    if conc not in (None, "") and not (str(conc).isdigit() and int(conc) <= 64):
        bad("cloud_backup_restic_read_concurrency must be 0 (restic's default) or 1..64")

    sources = v.get("cloud_backup_sources") or []
    seen = set()
    for i, src in enumerate(sources):
        where = "cloud_backup_sources[%d]" % i
        name = str(src.get("name") or "")
        if not NAME_RE.match(name):
            bad("%s.name %r must match [a-z0-9][a-z0-9_-]* (at most 63 characters)" % (where, name))
        elif name in seen:
            bad("%s.name %r is used by two sources: names must be unique" % (where, name))
        seen.add(name)
        path = str(src.get("path") or "")
        if not path.startswith("/"):
            bad("%s.path %r must be an absolute path" % (where, path))
        for tag in src.get("tags") or []:
            if not TAG_RE.match(str(tag)):
                bad("%s.tags: %r must match [A-Za-z0-9][A-Za-z0-9._:-]*" % (where, tag))
        for pattern in src.get("exclude") or []:
            if "\n" in str(pattern) or not str(pattern).strip():
                bad("%s.exclude: patterns must be non-empty single lines" % where)
        if src.get("schedule"):
            err = _ofelia.schedule_error(src["schedule"])
            if err:
                bad("%s.schedule: %s" % (where, err))

    schedules = ["cloud_backup_backup_schedule", "cloud_backup_forget_schedule", "cloud_backup_log_cleanup_schedule",
                 "cloud_backup_check_schedule"]
    schedules += [var for var in ("cloud_backup_copy_schedule", "cloud_backup_refresh_token_check_schedule")
                  if v.get(var) is not None]
    subset = v.get("cloud_backup_check_read_data_subset")
    if subset and not read_data_subset_ok(subset):
        bad("cloud_backup_check_read_data_subset %r must be a percentage (5%%), a fraction (1/20) or a size (500M)" % subset)
    if v.get("cloud_backup_healthchecks_api_url"):
        if not re.match(r"^https?://[^/\s]+", str(v["cloud_backup_healthchecks_api_url"])):
            bad("cloud_backup_healthchecks_api_url must be an http(s) URL such as https://hc.cloud.infn.it")
        if _is_placeholder(v.get("cloud_backup_healthchecks_api_key")):
            bad("cloud_backup_healthchecks_api_key is empty or a placeholder while cloud_backup_healthchecks_api_url is set")
        for tag in v.get("cloud_backup_healthchecks_tags") or []:
            if not TAG_RE.match(str(tag)):
                bad("cloud_backup_healthchecks_tags: %r must match [A-Za-z0-9][A-Za-z0-9._:-]*" % tag)
        if not 60 <= int(v.get("cloud_backup_healthchecks_grace") or 0) <= 31536000:
            bad("cloud_backup_healthchecks_grace must be 60..31536000 seconds")
        prefix = str(v.get("cloud_backup_healthchecks_prefix") or "")
        if not prefix or len(prefix) > 60:
            bad("cloud_backup_healthchecks_prefix must be 1 to 60 characters (check names are at most 100)")
        tz = str(v.get("cloud_backup_healthchecks_tz") or "")
        try:
            zoneinfo.ZoneInfo(tz)
        except (ValueError, zoneinfo.ZoneInfoNotFoundError):
            bad("cloud_backup_healthchecks_tz %r is not an IANA time zone such as UTC or Europe/Rome" % tz)
        for channel in v.get("cloud_backup_healthchecks_channels") or []:
            if not str(channel).strip() or "," in str(channel):
                bad("cloud_backup_healthchecks_channels: %r must be one channel name or UUID" % channel)
        ca_path = v.get("cloud_backup_healthchecks_ca_path")
        if ca_path and not os.path.isfile(str(ca_path)):
            bad("cloud_backup_healthchecks_ca_path %r is not a file on the controller" % ca_path)
    for var in schedules:
        err = _ofelia.schedule_error(v.get(var))
        if err:
            bad("%s: %s" % (var, err))
    if v.get("cloud_backup_scheduler") == "cron":
        for var in schedules:
            if not _ofelia.schedule_error(v.get(var)):
                try:
                    _ofelia.to_cron(v[var])
                except _ofelia.ScheduleError as exc:
                    bad("%s (cron scheduler): %s" % (var, exc))
        for i, src in enumerate(sources):
            if src.get("schedule") and not _ofelia.schedule_error(src["schedule"]):
                try:
                    _ofelia.to_cron(src["schedule"])
                except _ofelia.ScheduleError as exc:
                    bad("cloud_backup_sources[%d].schedule (cron scheduler): %s" % (i, exc))

    retention = v.get("cloud_backup_retention") or {}
    unknown = sorted(set(retention) - RETENTION_KEYS)
    if unknown:
        bad("cloud_backup_retention: unknown option(s) %s (known: %s)" % (", ".join(unknown), ", ".join(sorted(RETENTION_KEYS))))
    if sources and not retention:
        bad("cloud_backup_retention is empty: forget would keep nothing; give at least one keep_* option")
    for key, value in retention.items():
        for item in value if isinstance(value, list) else [value]:
            if not str(item) or any(c.isspace() or c in "\"'\\%;#" for c in str(item)):
                bad("cloud_backup_retention.%s: %r is not a valid value" % (key, item))
    if int(v.get("cloud_backup_repository_timeout") or 0) < 5:
        bad("cloud_backup_repository_timeout must be at least 5 (seconds)")
    if int(v.get("cloud_backup_log_retention_days") or 0) < 1:
        bad("cloud_backup_log_retention_days must be at least 1")
    return problems


class FilterModule:
    def filters(self):
        return {
            "cloud_backup_jobs": cloud_backup_jobs,
            "cloud_backup_checks": cloud_backup_checks,
            "cloud_backup_ping_urls": cloud_backup_ping_urls,
            "cloud_backup_dotenv": cloud_backup_dotenv,
            "cloud_backup_destinations_env": cloud_backup_destinations_env,
            "cloud_backup_problems": cloud_backup_problems,
        }
