# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""What meta/argument_specs.yml cannot express about the cloud_backup role's input, checked once.

PRIVATE: controller-side code of the collection, not a public API.

argument_specs checks types, choices, required variables and the keys each destination type requires; this module
checks the rest (formats, ranges, cross-field rules, placeholders, names that would collide once turned into
variable names, check names or paths) and reports every problem at once, each naming its variable. Its input is
the role's variables with the defaults applied (``problems(v)``); it repeats no default and no argument_specs check.
``host_problems`` adds the rules that need a fact of the host (its time zone).
"""

from __future__ import annotations

import os
import re
import zoneinfo

from ansible_collections.infn_cloud.backup.plugins.module_utils._restic import read_data_subset_ok
from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model, _ofelia

NAME_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,62}$")
PROJECT_RE = re.compile(r"^[a-z0-9][a-z0-9_-]*$")
IMAGE_RE = re.compile(r"^[a-z0-9][a-z0-9._/-]*(:[0-9]+/[a-z0-9._/-]+)?(:[A-Za-z0-9_][A-Za-z0-9._-]{0,127})?(@sha256:[a-f0-9]{64})?$")
USER_RE = re.compile(r"^([a-z_][a-z0-9_-]*|\d+)(:([a-z_][a-z0-9_-]*|\d+))?$")
CRON_FILE_RE = re.compile(r"^/etc/cron\.d/[A-Za-z0-9_-]+$")
PACKAGE_RE = re.compile(r"^[a-z0-9][a-z0-9+.-]+$")
TAG_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:-]*$")
SECONDARY_RE = re.compile(r"^[a-z][a-z0-9]{0,15}$")
OIDC_ACCOUNT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+-]{0,63}$")
URL_RE = re.compile(r"^https?://[^/\s]+")
PLACEHOLDERS = {"", "changeme", "change-me", "change_me", "password", "secret", "todo", "xxx", "xxxx",
                "none", "null", "example", "placeholder", "restic", "12345678"}
# a whole placeholder such as <password> or <the PEM key, from a vault>: angle brackets around the whole value
WHOLE_PLACEHOLDER_RE = re.compile(r"^<[^<>]*>$")
UNSAFE_ARG = set("\"'\\%;#")
UTC_NAMES = {"UTC", "Etc/UTC", "Etc/Universal", "Universal", "Etc/Zulu", "Zulu", "Etc/UCT", "UCT"}
RETENTION_KEYS = {
    "keep_last", "keep_hourly", "keep_daily", "keep_weekly", "keep_monthly", "keep_yearly", "keep_within",
    "keep_within_hourly", "keep_within_daily", "keep_within_weekly", "keep_within_monthly",
    "keep_within_yearly", "keep_tag",
}
# Variables of earlier versions: refused with what replaces them, never silently ignored.
RENAMED = {
    "cloud_backup_healthchecks_tz": "cloud_backup_timezone (one zone for the scheduler and the checks)",
}


def is_placeholder(value):
    text = str(value or "").strip().lower()
    return (text in PLACEHOLDERS or "changeme" in text.replace("_", "").replace("-", "")
            or bool(WHOLE_PLACEHOLDER_RE.match(text)))


def _dotenv_safe(value):
    text = str(value if value is not None else "")
    return "'" not in text and "\n" not in text and "\r" not in text


def _argv_safe(value):
    text = str(value)
    return bool(text) and not any(c.isspace() or c in UNSAFE_ARG for c in text)


def zone_error(zone):
    try:
        zoneinfo.ZoneInfo(str(zone))
    except (ValueError, zoneinfo.ZoneInfoNotFoundError):
        return "%r is not an IANA time zone such as UTC or Europe/Rome" % (zone,)
    return ""


# ------------------------------------------------------------------ by concern
def secrets(v):
    bad = []
    for var in ("cloud_backup_restic_password", "cloud_backup_rest_password"):
        if is_placeholder(v[var]):
            bad.append("%s is empty or a placeholder: set a real secret (in a vault)" % var)
    if v["cloud_backup_oidc_password"] and is_placeholder(v["cloud_backup_oidc_password"]):
        bad.append("cloud_backup_oidc_password is a placeholder: set a real secret or leave it empty")
    for var in ("cloud_backup_aai_user", "cloud_backup_oidc_password", "cloud_backup_restic_password",
                "cloud_backup_rest_username", "cloud_backup_rest_password"):
        if not _dotenv_safe(v[var]):
            bad.append("%s cannot hold a single quote or a line break (it goes to .env)" % var)
    username = str(v["cloud_backup_rest_username"] or "")
    if not username or ":" in username or any(c.isspace() for c in username):
        bad.append("cloud_backup_rest_username must be non-empty, without ':' or blanks (HTTP basic authentication)")
    return bad


def stack(v):
    bad = []
    if not 1 <= int(v["cloud_backup_rest_port"]) <= 65535:
        bad.append("cloud_backup_rest_port must be a port number (1-65535)")
    if not NAME_RE.match(str(v["cloud_backup_container_name"] or "")):
        bad.append("cloud_backup_container_name must match [a-z0-9][a-z0-9_-]*")
    if not str(v["cloud_backup_project_dir"] or "").startswith("/"):
        bad.append("cloud_backup_project_dir must be an absolute path")
    if not PROJECT_RE.match(str(v["cloud_backup_project_name"] or "")):
        bad.append("cloud_backup_project_name must match [a-z0-9][a-z0-9_-]* (a Compose project name)")
    source = str(v.get("cloud_backup_image_source") or "build")
    if source not in IMAGE_SOURCES:
        bad.append("cloud_backup_image_source must be one of %s, not %r" % (", ".join(IMAGE_SOURCES), source))
    elif (source == "pull" or not v["cloud_backup_image_build"]) and not v["cloud_backup_image"]:
        bad.append("cloud_backup_image must name an image to pull when cloud_backup_image_source is pull"
                   " (or cloud_backup_image_build is false)")
    for var in ("cloud_backup_image_name", "cloud_backup_image_base", "cloud_backup_image", "cloud_backup_ofelia_image"):
        value = str(v[var] or "")
        if (value or var != "cloud_backup_image") and not IMAGE_RE.match(value):
            bad.append("%s %r is not an image reference (lower-case name, optional :tag)" % (var, value))
    if v["cloud_backup_scheduler"] == "ofelia":
        ofelia = str(v["cloud_backup_ofelia_image"])
        if not re.search(r"(:[A-Za-z0-9_][A-Za-z0-9._-]*|@sha256:[a-f0-9]{64})$", ofelia.rsplit("/", 1)[-1]) \
                or ofelia.endswith(":latest"):
            bad.append("cloud_backup_ofelia_image must pin a version (e.g. mcuadros/ofelia:0.3.21), not latest or no tag")
    cache = str(v.get("cloud_backup_image_cache_dir") or "")
    if source == "controller" and not (cache.startswith("/") or cache.startswith("~")):
        bad.append("cloud_backup_image_cache_dir %r must be an absolute path (or start with ~) on the controller" % cache)
    if int(v["cloud_backup_image_refresh_days"]) < 0:
        bad.append("cloud_backup_image_refresh_days must be 0 (never) or a number of days")
    if not re.match(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$", str(v["cloud_backup_image_build_network"] or "")):
        bad.append("cloud_backup_image_build_network must be a network name such as default or host")
    if not USER_RE.match(str(v["cloud_backup_job_user"] or "")):
        bad.append("cloud_backup_job_user must be a user name or uid (optionally :group)")
    if not CRON_FILE_RE.match(str(v["cloud_backup_cron_file"] or "")):
        bad.append("cloud_backup_cron_file must be a file directly in /etc/cron.d whose name has only letters, digits, "
                   "- and _ (cron ignores names with a dot)")
    for var in ("cloud_backup_restic_host", "cloud_backup_aai_user"):
        value = str(v[var] or "")
        if (value or var == "cloud_backup_restic_host") and (not value or any(c.isspace() for c in value)):
            bad.append("%s must be a single word (no blanks)" % var)
    if v["cloud_backup_docker_install"]:
        packages = v["cloud_backup_docker_packages"] or []
        if not packages or not all(PACKAGE_RE.match(str(p)) for p in packages):
            bad.append("cloud_backup_docker_packages must list Debian package names when cloud_backup_docker_install is true")
    pack = v["cloud_backup_restic_pack_size"]
    if not (int(pack) == 0 or 4 <= int(pack) <= 128):
        bad.append("cloud_backup_restic_pack_size must be 0 (restic's default) or 4..128 (MiB)")
    if not 0 <= int(v["cloud_backup_restic_read_concurrency"]) <= 64:
        bad.append("cloud_backup_restic_read_concurrency must be 0 (restic's default) or 1..64")
    limit = v["cloud_backup_job_timeout"]
    if isinstance(limit, bool) or not re.match(r"^[0-9]+[smhd]?$", str(limit if limit is not None else "")):
        bad.append("cloud_backup_job_timeout %r must be a number of seconds or a number with s, m, h or d (0: no limit)"
                   % (limit,))
    if int(v["cloud_backup_repository_timeout"]) < 5:
        bad.append("cloud_backup_repository_timeout must be at least 5 (seconds)")
    if int(v["cloud_backup_log_retention_days"]) < 1:
        bad.append("cloud_backup_log_retention_days must be at least 1")
    return bad


def _destination(dest, where, v):
    """Problems of one destination (primary or secondary), each naming WHERE.KEY (argument_specs checked the
    type and that the keys its type requires are given)."""
    bad = []
    kind = dest.get("type")
    if kind == "local" and not str(dest.get("path") or "").startswith("/"):
        bad.append("%s.path must be an absolute host path for type local" % where)
    if kind in ("s3", "infn"):
        if not URL_RE.match(str(dest.get("endpoint") or "")):
            bad.append("%s.endpoint must be an http(s) URL" % where)
        if not dest.get("bucket"):
            bad.append("%s.bucket must not be empty" % where)
    if kind == "s3":
        for key in ("access_key_id", "secret_access_key"):
            if is_placeholder(dest.get(key)):
                bad.append("%s.%s is empty or a placeholder" % (where, key))
    if kind == "infn":
        if not dest.get("role_arn") and not dest.get("role_name"):
            bad.append("%s.role_arn (or role_name) is required for type infn (the STS role to assume)" % where)
        if dest.get("sts_endpoint") and not URL_RE.match(str(dest["sts_endpoint"])):
            bad.append("%s.sts_endpoint must be an http(s) URL" % where)
        if dest.get("token_file") and not str(dest["token_file"]).startswith("/"):
            bad.append("%s.token_file must be an absolute path inside the container" % where)
        if dest.get("auth") == "client_credentials":
            bad += _client_credentials(dest, where, v)
        elif not dest.get("token_file") and not v["cloud_backup_oidc_account"]:
            bad.append("%s: type infn needs cloud_backup_oidc_account (the oidc-agent account whose access "
                       "tokens are exchanged for S3 keys)" % where)
    if kind == "rclone" and not (dest.get("options") or {}).get("type"):
        bad.append("%s.options.type is required for type rclone (an rclone backend name)" % where)
    if kind == "sftp":
        for key in ("host", "user"):
            if not dest.get(key):
                bad.append("%s.%s must not be empty for type sftp" % (where, key))
        if "PRIVATE KEY-----" not in str(dest.get("private_key") or ""):
            bad.append("%s.private_key must be a PEM private key (key authentication)" % where)
        if not 1 <= int(dest.get("port") or 22) <= 65535:
            bad.append("%s.port must be a port number (1-65535)" % where)
    if kind == "rest":
        if not URL_RE.match(str(dest.get("url") or "")):
            bad.append("%s.url must be the http(s) URL of a restic REST server" % where)
        if dest.get("username") and is_placeholder(dest.get("password")):
            bad.append("%s.password is empty or a placeholder" % where)
    values = [(key, value) for key, value in dest.items()
              if key not in ("private_key", "known_hosts", "options", "retention", "client_secret")]
    values += [("options.%s" % key, value) for key, value in (dest.get("options") or {}).items()]
    for key, value in values:
        if not _dotenv_safe(value):
            bad.append("%s.%s cannot hold a single quote or a line break (it goes to .env)" % (where, key))
    return bad


CLIENT_KEYS = ("client_id", "client_secret", "issuer", "token_endpoint", "scope", "ca_file")
SCOPE_RE = re.compile(r"^[\x21\x23-\x5b\x5d-\x7e]+( [\x21\x23-\x5b\x5d-\x7e]+)*$")  # RFC 6749 scope-tokens


def _client_credentials(dest, where, v):
    """An infn destination whose token comes from a client-credentials client (auth: client_credentials)."""
    bad = []
    if not str(dest.get("client_id") or "").strip():
        bad.append("%s.client_id is required with auth client_credentials (the client registered at the issuer)" % where)
    if is_placeholder(dest.get("client_secret")):
        bad.append("%s.client_secret is empty or a placeholder: set the client's secret (in a vault)" % where)
    elif "\n" in str(dest["client_secret"]) or "\r" in str(dest["client_secret"]):
        bad.append("%s.client_secret cannot hold a line break" % where)
    if v["cloud_backup_oidc_account"]:
        bad.append("%s: auth client_credentials and cloud_backup_oidc_account cannot both give the token of the same "
                   "destination: leave cloud_backup_oidc_account empty for a service account, or drop auth" % where)
    if dest.get("token_file"):
        bad.append("%s.token_file cannot be set with auth client_credentials (the container keeps its own token file)"
                   % where)
    if dest.get("issuer") and not re.match(r"^https://[^/\s]+", str(dest["issuer"])):
        bad.append("%s.issuer must be an https URL such as https://iam.cloud.infn.it/" % where)
    if dest.get("token_endpoint") and not re.match(r"^https://[^/\s]+", str(dest["token_endpoint"])):
        bad.append("%s.token_endpoint must be an https URL (the issuer's token endpoint)" % where)
    if dest.get("scope") and not SCOPE_RE.match(str(dest["scope"])):
        bad.append("%s.scope must be scope names separated by single spaces" % where)
    if dest.get("ca_file") and not str(dest["ca_file"]).startswith("/"):
        bad.append("%s.ca_file must be an absolute path on the host" % where)
    return bad


def _client_keys_without_auth(dest, where):
    """Client keys on a destination that does not use them would be silently ignored: refused."""
    if dest.get("auth") == "client_credentials" and dest.get("type") != "infn":
        return ["%s.auth client_credentials is for destinations of type infn only" % where]
    if dest.get("auth") == "client_credentials":
        return []
    given = [key for key in CLIENT_KEYS if dest.get(key)]
    return ["%s.%s is only used with auth: client_credentials (type infn)" % (where, key) for key in given]


def _retention(retention, where):
    if not isinstance(retention, dict):
        return ["%s must be a dict of restic forget options" % where]
    bad = []
    unknown = sorted(set(retention) - RETENTION_KEYS)
    if unknown:
        bad.append("%s: unknown option(s) %s (known: %s)" % (where, ", ".join(unknown), ", ".join(sorted(RETENTION_KEYS))))
    for key, value in retention.items():
        for item in value if isinstance(value, list) else [value]:
            if not _argv_safe(item):
                bad.append("%s.%s: %r is not a valid value" % (where, key, item))
    return bad


def destinations(v):
    dest = v["cloud_backup_destination"]
    bad = _destination(dest, "cloud_backup_destination", v)
    bad += _client_keys_without_auth(dest, "cloud_backup_destination")
    names = {}
    for i, sec in enumerate(v["cloud_backup_secondary_destinations"]):
        where = "cloud_backup_secondary_destinations[%d]" % i
        name = str(sec.get("name") or "")
        if not SECONDARY_RE.match(name) or name == _model.PRIMARY_REMOTE:
            bad.append("%s.name %r must match [a-z][a-z0-9]* (at most 16 characters, not %s)"
                       % (where, name, _model.PRIMARY_REMOTE))
        elif name in names:
            bad.append("%s.name %r is used by two destinations (%s and %s): names must be unique"
                       % (where, name, names[name], where))
        names.setdefault(name, where)
        bad += _destination(sec, where, v)
        bad += _client_keys_without_auth(sec, where)
        if sec.get("retention") is not None:
            bad += _retention(sec["retention"], where + ".retention")
    if sum(1 for d in [dest] + list(v["cloud_backup_secondary_destinations"]) if d.get("type") == "infn") > 1:
        bad.append("cloud_backup_secondary_destinations: at most one destination of type infn per host "
                   "(the STS role and token are per container)")
    return bad


def sources(v):
    bad = []
    seen = {}
    for i, src in enumerate(v["cloud_backup_sources"]):
        where = "cloud_backup_sources[%d]" % i
        name = str(src.get("name") or "")
        if not NAME_RE.match(name):
            bad.append("%s.name %r must match [a-z0-9][a-z0-9_-]* (at most 63 characters)" % (where, name))
        else:
            # one name, one job, one check, one ping variable, one mount point: names that differ only in - and _
            # would share the ping variable (HC_PING_BACKUP_WWW_DATA for www-data and www_data)
            key = _model.env_name(name)
            if key in seen:
                other_where, other = seen[key]
                bad.append("%s.name %r and %s.name %r %s: give them distinct names"
                           % (other_where, other, where, name,
                              "are the same name" if other == name else
                              "collide once turned into variable names (both HC_PING_BACKUP_%s)" % key))
            seen.setdefault(key, (where, name))
        if not str(src.get("path") or "").startswith("/"):
            bad.append("%s.path %r must be an absolute path" % (where, src.get("path")))
        for tag in src.get("tags") or []:
            if not TAG_RE.match(str(tag)):
                bad.append("%s.tags: %r must match [A-Za-z0-9][A-Za-z0-9._:-]*" % (where, tag))
        for pattern in src.get("exclude") or []:
            if "\n" in str(pattern) or not str(pattern).strip():
                bad.append("%s.exclude: patterns must be non-empty single lines" % where)
    return bad


def _schedule_problems(var, spec, cron):
    err = _ofelia.schedule_error(spec)
    if err:
        return ["%s: %s" % (var, err)]
    if cron:
        try:
            _ofelia.to_cron(spec)
        except _ofelia.ScheduleError as exc:
            return ["%s (cron scheduler): %s" % (var, exc)]
    return []


def schedules(v):
    cron = v["cloud_backup_scheduler"] == "cron"
    bad = []
    for var in ("cloud_backup_backup_schedule", "cloud_backup_forget_schedule", "cloud_backup_log_cleanup_schedule",
                "cloud_backup_check_schedule", "cloud_backup_copy_schedule", "cloud_backup_refresh_token_check_schedule",
                "cloud_backup_client_token_check_schedule"):
        bad += _schedule_problems(var, v[var], cron)
    for what, items in (("cloud_backup_sources", v["cloud_backup_sources"]),
                        ("cloud_backup_secondary_destinations", v["cloud_backup_secondary_destinations"])):
        for i, item in enumerate(items):
            if item.get("schedule"):
                bad += _schedule_problems("%s[%d].schedule" % (what, i), item["schedule"], cron)
    if v["cloud_backup_timezone"]:
        err = zone_error(v["cloud_backup_timezone"])
        if err:
            bad.append("cloud_backup_timezone %s" % err)
    return bad


def retention(v):
    bad = _retention(v["cloud_backup_retention"], "cloud_backup_retention")
    if v["cloud_backup_sources"] and not v["cloud_backup_retention"]:
        bad.append("cloud_backup_retention is empty: forget would keep nothing; give at least one keep_* option")
    subset = v["cloud_backup_check_read_data_subset"]
    if subset and not read_data_subset_ok(subset):
        bad.append("cloud_backup_check_read_data_subset %r must be a percentage (5%%), a fraction (1/20) or a size (500M)"
                   % subset)
    return bad


def oidc(v):
    bad = []
    account = str(v["cloud_backup_oidc_account"] or "")
    if account:
        if not OIDC_ACCOUNT_RE.match(account):
            bad.append("cloud_backup_oidc_account %r must match [A-Za-z0-9][A-Za-z0-9._@+-]* (an oidc-agent short name)"
                       % account)
        if not v["cloud_backup_oidc_password"]:
            bad.append("cloud_backup_oidc_password must be set when cloud_backup_oidc_account is set (it encrypts the account)")
    if not re.match(r"^https://[^/\s]+", str(v["cloud_backup_oidc_issuer"] or "")):
        bad.append("cloud_backup_oidc_issuer must be an https URL such as https://iam.cloud.infn.it/")
    for var in ("cloud_backup_refresh_token_min_days", "cloud_backup_refresh_token_lifetime_days"):
        if int(v[var]) < 1:
            bad.append("%s must be at least 1 (days)" % var)
    return bad


def monitoring(v):
    bad = []
    # the jobs whose checks are kept paused must be jobs of the host: a typo would resume the check meant to stay paused
    try:
        jobs = [job["name"] for job in _model.jobs(v)]
    except (AttributeError, KeyError, TypeError, ValueError):
        jobs = None  # input the other concerns refuse: the job names are not known yet
    for name in v["cloud_backup_healthchecks_paused"] or [] if jobs is not None else []:
        if name != "all" and name not in jobs:
            bad.append("cloud_backup_healthchecks_paused: %r is not a job of this host (its jobs: %s; or all)"
                       % (name, ", ".join(jobs) or "none"))
    if not v["cloud_backup_healthchecks_api_url"]:
        return bad
    if not URL_RE.match(str(v["cloud_backup_healthchecks_api_url"])):
        bad.append("cloud_backup_healthchecks_api_url must be an http(s) URL such as https://hc.cloud.infn.it")
    if is_placeholder(v["cloud_backup_healthchecks_api_key"]):
        bad.append("cloud_backup_healthchecks_api_key is empty or a placeholder while cloud_backup_healthchecks_api_url is set")
    for tag in v["cloud_backup_healthchecks_tags"]:
        if not TAG_RE.match(str(tag)):
            bad.append("cloud_backup_healthchecks_tags: %r must match [A-Za-z0-9][A-Za-z0-9._:-]*" % tag)
    if not 60 <= int(v["cloud_backup_healthchecks_grace"]) <= 31536000:
        bad.append("cloud_backup_healthchecks_grace must be 60..31536000 seconds")
    prefix = str(v["cloud_backup_healthchecks_prefix"] or "")
    if not prefix or len(prefix) > 60:
        bad.append("cloud_backup_healthchecks_prefix must be 1 to 60 characters (check names are at most 100)")
    for channel in v["cloud_backup_healthchecks_channels"]:
        if not str(channel).strip() or "," in str(channel):
            bad.append("cloud_backup_healthchecks_channels: %r must be one channel name or UUID" % channel)
    ca_path = v["cloud_backup_healthchecks_ca_path"]
    if ca_path and not os.path.isfile(str(ca_path)):
        bad.append("cloud_backup_healthchecks_ca_path %r is not a file on the controller" % ca_path)
    return bad


def renamed(v):
    return ["%s is no longer used: set %s" % (old, new) for old, new in sorted(RENAMED.items()) if old in v]


CONCERNS = (renamed, secrets, stack, destinations, sources, schedules, retention, oidc, monitoring)


IMAGE_SOURCES = ("build", "controller", "pull")


def problems(v):
    """Every problem of a host's input (argument_specs already passed), as messages naming the variable."""
    result = []
    for concern in CONCERNS:
        result += concern(v)
    return result


def host_problems(v, host_timezone):
    """Rules that need a fact of the host: with the cron scheduler the host's cron daemon reads the schedules in
    the host's own zone, so cloud_backup_timezone cannot be another one."""
    zone = v["cloud_backup_timezone"]
    same = zone == host_timezone or (zone in UTC_NAMES and host_timezone in UTC_NAMES)
    if v["cloud_backup_scheduler"] == "cron" and zone and host_timezone and not same:
        return ["cloud_backup_timezone %s differs from the host's zone %s: with cloud_backup_scheduler cron the host's "
                "cron reads the schedules in the host's zone; leave cloud_backup_timezone empty, set it to %s, or use "
                "the ofelia scheduler" % (zone, host_timezone, host_timezone)]
    return []
