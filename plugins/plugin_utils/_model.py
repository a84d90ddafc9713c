# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The model of one backup host: every fact the role, its day-2 entry points and the image need, computed once.

PRIVATE: controller-side code of the collection, not a public API.

``host_model(v, host, groups, host_timezone, now)`` takes the role's variables (``v``: every ``cloud_backup_*``
variable, defaults applied, already validated by ``_validate.problems``) and a few facts of the host, and returns a
plain dict (see ``host_model``'s docstring). Templates only loop over it, tasks only read it, and what the container
needs (the variable holding a job's ping URL, the variable holding a secondary's repository, the paths of the
oidc-agent socket, config and token file) is written by it into ``.env`` or the job's environment: the image never
derives a name by convention.
"""

from __future__ import annotations

import hashlib
import re
from urllib.parse import quote, urlsplit, urlunsplit

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _ofelia

# ------------------------------------------------------------------ the container's layout (the image's contract)
HOME = "/home/user"                      # the image's user (Dockerfile: useradd -d, passed as a build argument)
PATHS = {
    "home": HOME,
    "state_dir": HOME + "/.local/state/cloud-backup",
    "oidc_state_dir": HOME + "/.local/state/oidc-agent",
    "oidc_sock": HOME + "/.local/state/oidc-agent/agent.sock",
    "oidc_config_dir": HOME + "/.config/oidc-agent",
    "token_file": HOME + "/.local/state/cloud-backup/web-identity-token",
    "excludes_dir": "/etc/cloud-backup/excludes",
    "destinations_dir": "/etc/cloud-backup/destinations",
    "backup_root": "/backup",
    "primary_local": "/destination",
    "secondary_local_root": "/destinations",
    "data_volume": "cloud-backup-data",
    # the secrets, one file each, in a directory of the project (0700, owned by the container's user) mounted here
    "secrets_dir": "/run/secrets",
    "secrets_host_dir": "secrets",
}
USER_ID = 1000                           # the image's user (Dockerfile: ARG UID): owner of the secret files
# Job kinds and the seed image's ping variable of each (kept: a seed-style .env still works).
PRIMARY_REMOTE = "dest"
DRILL_JOB = "restore-drill"
CHECK_TAG = "cloud-backup"


# Secrets never go to .env (docker inspect and docker compose config show it): each is a file of the secrets
# directory. A secret whose tool has its own file option is read through it (SECRET_FILE_VARS: the variable
# that names the file); every other one is listed in CLOUD_BACKUP_SECRET_ENV (NAME=FILE pairs), which the image's
# entrypoint reads into its own process's environment when it starts, unless NAME is already set.
SECRET_FILE_VARS = {"RESTIC_PASSWORD": "RESTIC_PASSWORD_FILE", "OIDC_PASSWORD": "OIDC_PASSWORD_FILE"}
SECRET_VARS = ("RESTIC_PASSWORD", "OIDC_PASSWORD", "RESTIC_REST_PASSWORD")
# rclone options that hold a credential (s3 keys, passwords, tokens, keys, service accounts, SAS URLs)
SECRET_OPTION = re.compile(r"(PASS|SECRET|TOKEN|KEY|CREDENTIAL|SAS_URL|PRIVATE)")


def env_name(text):
    """The upper-case environment-variable spelling of a name (`www-data` -> `WWW_DATA`)."""
    return re.sub(r"[^A-Za-z0-9]", "_", str(text)).upper()


# ------------------------------------------------------------------ destinations
def _rest_url(dest):
    """rest: repository URL of a restic REST server, with its credentials (restic masks them in output)."""
    url = urlsplit(str(dest["url"]))
    netloc = url.netloc.rsplit("@", 1)[-1]
    if dest.get("username"):
        netloc = "%s:%s@%s" % (quote(str(dest["username"]), safe=""), quote(str(dest.get("password") or ""), safe=""),
                               netloc)
    path = url.path if url.path.endswith("/") else url.path + "/"
    return "rest:" + urlunsplit((url.scheme, netloc, path, "", ""))


def destination_env(dest, remote, host):
    """The rclone remote REMOTE of one destination (RCLONE_CONFIG_<REMOTE>_*, rclone's own naming), plus the path
    of the repository inside it: (env, path). Type rest has no remote: (env, None) and the URL is the repository."""
    kind = dest.get("type")
    prefix = "RCLONE_CONFIG_%s_" % env_name(remote)
    env, path = {}, None
    if kind in ("s3", "infn"):
        env = {prefix + "TYPE": "s3",
               prefix + "PROVIDER": dest.get("provider") or ("Ceph" if kind == "infn" else "Other"),
               prefix + "ENDPOINT": dest["endpoint"], prefix + "ENV_AUTH": "true" if kind == "infn" else "false"}
        if kind == "s3":
            env[prefix + "ACCESS_KEY_ID"] = dest["access_key_id"]
            env[prefix + "SECRET_ACCESS_KEY"] = dest["secret_access_key"]
        else:
            # Temporary keys from STS AssumeRoleWithWebIdentity on the S3 endpoint itself (rclone's env_auth: the
            # AWS SDK's web-identity provider, refreshed when they expire); the token comes from oidc-agent.
            env[prefix + "STS_ENDPOINT"] = dest.get("sts_endpoint") or dest["endpoint"]
            env.update({"AWS_ROLE_ARN": dest.get("role_arn") or "arn:aws:iam:::role/%s" % dest.get("role_name"),
                        "AWS_ROLE_SESSION_NAME": dest.get("role_session_name") or "cloud-backup-%s" % host,
                        "AWS_WEB_IDENTITY_TOKEN_FILE": dest.get("token_file") or PATHS["token_file"],
                        "INFN_TOKEN_SOURCE": "file" if dest.get("token_file") else "oidc",
                        "OIDC_AUDIENCE": dest.get("audience") or None})
            if is_client_credentials(dest):
                env.update(client_credentials_env(dest, remote))
        env[prefix + "REGION"] = dest.get("region") or ("us-east-1" if kind == "infn" else None)
        path = "%s/%s" % (dest["bucket"], dest.get("path") or host)
    elif kind == "local":
        path = PATHS["primary_local"] if remote == PRIMARY_REMOTE else "%s/%s" % (PATHS["secondary_local_root"], remote)
        env = {prefix + "TYPE": "local"}
    elif kind == "sftp":
        env = {prefix + "TYPE": "sftp", prefix + "HOST": dest["host"], prefix + "PORT": str(dest.get("port") or 22),
               prefix + "USER": dest["user"],
               prefix + "KEY_PEM": str(dest["private_key"]).strip().replace("\r", "").replace("\n", "\\n")}
        if dest.get("known_hosts"):
            env[prefix + "KNOWN_HOSTS_FILE"] = "%s/%s.known_hosts" % (PATHS["destinations_dir"], remote)
        path = dest.get("path") or host
    elif kind == "rclone":
        env = {prefix + env_name(k): v for k, v in (dest.get("options") or {}).items()}
        path = dest.get("path") or ""
    return env, path


# ------------------------------------------------------------------ infn through a client-credentials client
# The client secret is one of the stack's secret files (see SECRET_FILE_VARS): the image reads it from the file
# that OIDC_CC_SECRET_FILE names, at each token request.
CLIENT_SECRET_VAR = "OIDC_CC_CLIENT_SECRET"
SECRET_FILE_VARS[CLIENT_SECRET_VAR] = "OIDC_CC_SECRET_FILE"
CLIENT_PATHS = {
    "ca_file": "/etc/cloud-backup/client-ca.pem",             # the destination's ca_file (a host path), read-only
    "token_record": HOME + "/.local/state/cloud-backup/client-token.json",
}
CLIENT_TOKEN_JOB = "token"


def is_client_credentials(dest):
    """Whether DEST is an infn destination whose web-identity token comes from a client-credentials client."""
    return isinstance(dest, dict) and dest.get("type") == "infn" and dest.get("auth") == "client_credentials"


def client_credentials_env(dest, remote):
    """The container's settings of a client-credentials infn destination, the rclone remote REMOTE (its secret becomes
    a file: see SECRET_FILE_VARS)."""
    return {"INFN_TOKEN_SOURCE": "client", "OIDC_CC_REMOTE": remote,
            "OIDC_CC_CLIENT_ID": dest["client_id"],
            "OIDC_CC_ISSUER": dest.get("issuer") or None,
            "OIDC_CC_TOKEN_ENDPOINT": dest.get("token_endpoint") or None,
            "OIDC_CC_SCOPE": dest.get("scope") or None,
            CLIENT_SECRET_VAR: str(dest["client_secret"]),
            "OIDC_CC_CA_FILE": CLIENT_PATHS["ca_file"] if dest.get("ca_file") else None,
            "OIDC_CC_TOKEN_RECORD": CLIENT_PATHS["token_record"]}


def client_credentials(v, project_dir):
    """The host's client-credentials client (the one infn destination using it, primary or secondary): what the
    role checks before any change (the issuer's discovery document, unless token_endpoint is given); its secret is
    one of the model's secrets. {enabled: False} when there is none."""
    dests = [("cloud_backup_destination", v["cloud_backup_destination"])]
    dests += [("cloud_backup_secondary_destinations[%d]" % i, d)
              for i, d in enumerate(v["cloud_backup_secondary_destinations"] or [])]
    for where, dest in dests:
        if is_client_credentials(dest):
            issuer = dest.get("issuer") or v["cloud_backup_oidc_issuer"]
            return {"enabled": True, "where": where, "client_id": dest["client_id"], "issuer": issuer,
                    "discovery_url": issuer.rstrip("/") + "/.well-known/openid-configuration",
                    "token_endpoint": dest.get("token_endpoint") or "", "scope": dest.get("scope") or "",
                    "ca_file": dest.get("ca_file") or "",
                    "secret_file": "%s/%s" % (PATHS["secrets_dir"], CLIENT_SECRET_VAR), "job": CLIENT_TOKEN_JOB}
    return {"enabled": False}


def auth_mode(dest, v):
    """How a host's primary destination authenticates, for status: client_credentials, oidc_agent, token_file, keys,
    or none."""
    kind = dest.get("type") if isinstance(dest, dict) else None
    if kind == "infn":
        if is_client_credentials(dest):
            return "client_credentials"
        return "token_file" if dest.get("token_file") else "oidc_agent"
    return {"s3": "keys", "sftp": "key", "rest": "password" if dest.get("username") else "none",
            "rclone": "rclone", "local": "none"}.get(kind, "none")


def destination_secrets(env, remote):
    """The entries of a destination's rclone remote REMOTE that hold a credential (paths, *_FILE, are not)."""
    prefix = "RCLONE_CONFIG_%s_" % env_name(remote)
    return set(k for k in env if k.startswith(prefix) and not k.endswith("_FILE") and SECRET_OPTION.search(k[len(prefix):]))


def _secret(key, value):
    """How the container reads the secret KEY: its file (in the secrets directory), the variable that names the
    file for the tool (None: CLOUD_BACKUP_SECRET_ENV) and the file's content."""
    via = SECRET_FILE_VARS.get(key)
    text = str(value)
    if key.endswith("_KEY_PEM"):
        # rclone's sftp key_file: the PEM itself, with its line breaks
        via, text = key[:-len("_PEM")] + "_FILE", text.replace("\\n", "\n") + "\n"
    return {"var": key, "name": key, "file": "%s/%s" % (PATHS["secrets_dir"], key), "via": via, "value": text}


def destination_label(dest, host):
    """Where a host's repository lives, without secrets: s3:<endpoint>/<bucket>/<path>, local:<dir>, ..."""
    if not isinstance(dest, dict):
        return "n/a"
    kind = dest.get("type")
    if kind in ("s3", "infn"):
        return "%s:%s/%s/%s" % (kind, str(dest.get("endpoint", "")).rstrip("/"), dest.get("bucket"), dest.get("path") or host)
    if kind == "local":
        return "local:%s" % dest.get("path")
    if kind == "rclone":
        return "rclone:%s:%s" % ((dest.get("options") or {}).get("type", "?"), dest.get("path") or "")
    if kind == "sftp":
        return "sftp:%s@%s:%s" % (dest.get("user"), dest.get("host"), dest.get("path") or host)
    if kind == "rest":
        return "rest:%s" % re.sub(r"://[^/@]+@", "://", str(dest.get("url") or ""))
    return "n/a"


# Destination types whose repository a one-off container opens with the inventory's values alone (restore and
# decommission of a host whose stack is gone). infn needs the stack's oidc-agent account (its access tokens mint
# the S3 keys) and sftp its known_hosts file: those are read through the host's own stack while it runs.
ONE_OFF_TYPES = ("s3", "local", "rclone", "rest")


def repository_env(dest, password, host):
    """Environment of a one-off restic (rclone backend, no REST server) that opens the primary repository of HOST."""
    env, path = destination_env(dest, PRIMARY_REMOTE, host)
    env = {k: str(val) for k, val in env.items() if val is not None}
    if dest.get("type") == "rest":
        env["RESTIC_REPOSITORY"] = _rest_url(dest)
    elif dest.get("type") == "local":
        env["RESTIC_REPOSITORY"] = PATHS["primary_local"]
    else:
        env["RESTIC_REPOSITORY"] = "rclone:%s:%s" % (PRIMARY_REMOTE, path)
    env["RESTIC_PASSWORD"] = str(password)
    return env


def one_off(dest, password, host):
    """How a one-off restic container opens the primary repository of HOST, its secrets as files of a private
    directory mounted at PATHS["secrets_dir"] and read through the tools' own file options, so that none is in the
    container's environment (docker inspect): {env, files [{name, value}]}. The rclone remote is an rclone config
    file (RCLONE_CONFIG), the password RESTIC_PASSWORD_FILE, a REST URL with credentials RESTIC_REPOSITORY_FILE."""
    full = repository_env(dest, password, host)
    folder = PATHS["secrets_dir"]
    env = {"RESTIC_PASSWORD_FILE": folder + "/restic-password"}
    files = [{"name": "restic-password", "value": full.pop("RESTIC_PASSWORD")}]
    remote = dict((k[len("RCLONE_CONFIG_%s_" % env_name(PRIMARY_REMOTE)):].lower(), v) for k, v in full.items()
                  if k.startswith("RCLONE_CONFIG_%s_" % env_name(PRIMARY_REMOTE)))
    if remote and dest.get("type") != "local":
        lines = ["[%s]" % PRIMARY_REMOTE] + ["%s = %s" % (k, remote[k]) for k in sorted(remote)]
        files.append({"name": "rclone.conf", "value": "\n".join(lines) + "\n"})
        env["RCLONE_CONFIG"] = folder + "/rclone.conf"
    if dest.get("type") == "rest" and dest.get("username"):
        files.append({"name": "restic-repository", "value": full["RESTIC_REPOSITORY"]})
        env["RESTIC_REPOSITORY_FILE"] = folder + "/restic-repository"
    else:
        env["RESTIC_REPOSITORY"] = full["RESTIC_REPOSITORY"]
    return {"env": env, "files": files}


# ------------------------------------------------------------------ jobs
def _retention_args(retention):
    args = []
    for key in sorted(retention):
        values = retention[key] if isinstance(retention[key], list) else [retention[key]]
        for value in values:
            args += ["--" + key.replace("_", "-"), str(value)]
    return args


def _tags(src):
    """The source's restic tags: its name first, then its own tags, each once."""
    tags = []
    for tag in [src["name"]] + [str(t) for t in src.get("tags") or []]:
        if tag not in tags:
            tags.append(tag)
    return tags


def jobs(v):
    """The host's scheduled jobs in order: [{name, schedule, argv}] (run inside the backup container)."""
    sources = v["cloud_backup_sources"] or []
    result = []
    retention, prune = v["cloud_backup_retention"], ["--prune"] if v["cloud_backup_forget_prune"] else []
    for src in sources:
        argv = ["backup"]
        for tag in _tags(src):
            argv += ["--tag", tag]
        argv += ["--exclude-file", "%s/%s" % (PATHS["excludes_dir"], src["name"]),
                 "%s/%s" % (PATHS["backup_root"], src["name"])]
        result.append({"name": "backup-%s" % src["name"], "kind": "backup", "source": src["name"],
                       "schedule": src.get("schedule") or v["cloud_backup_backup_schedule"], "argv": argv})
    if sources:
        result.append({"name": "forget", "kind": "forget", "schedule": v["cloud_backup_forget_schedule"],
                       "argv": ["forget"] + _retention_args(retention) + prune})
    if sources and v["cloud_backup_check_enabled"]:
        argv = ["check"]
        if v["cloud_backup_check_read_data_subset"]:
            argv += ["--read-data-subset", str(v["cloud_backup_check_read_data_subset"])]
        result.append({"name": "check", "kind": "check", "schedule": v["cloud_backup_check_schedule"], "argv": argv})
    for sec in v["cloud_backup_secondary_destinations"] if sources else []:
        result.append({"name": "copy-%s" % sec["name"], "kind": "copy", "destination": sec["name"],
                       "schedule": sec.get("schedule") or v["cloud_backup_copy_schedule"],
                       "argv": ["copy", sec["name"]] + _retention_args(sec.get("retention") or retention) + prune})
    if client_credentials(v, "")["enabled"]:
        # the client can still obtain a token (its own check, <prefix>-token)
        result.append({"name": CLIENT_TOKEN_JOB, "kind": "client-token", "argv": ["check-client-token"],
                       "schedule": v["cloud_backup_client_token_check_schedule"]})
    if v["cloud_backup_oidc_account"]:
        result.append({"name": "check-refresh-token", "kind": "token", "argv": ["check-refresh-token"],
                       "schedule": v["cloud_backup_refresh_token_check_schedule"]})
    return result


# ------------------------------------------------------------------ the image
def image_source(v):
    """Where the backup image comes from: build (on each host), controller (built once, loaded on every host) or pull
    (cloud_backup_image from a registry; also the former cloud_backup_image_build: false)."""
    source = str(v.get("cloud_backup_image_source") or "build")
    return "pull" if source == "build" and not v["cloud_backup_image_build"] else source


def image(v, host, now):
    """The backup image: reference, and for a build its tag and build arguments.

    The tag hashes the build context, the base image and the build arguments, so a new base rebuilds. With
    cloud_backup_image_refresh_days, the refresh generation is a build argument that invalidates the package layer:
    the rebuilt image carries the distribution's current packages (security updates), and within one generation a
    rerun rebuilds nothing. Built on each host, a per-host offset spreads the fleet's rebuilds over the period; built
    on the controller, the generation is the fleet's (one image, one ID, for every host)."""
    source = image_source(v)
    if source == "pull":
        return {"build": False, "source": source, "ref": v["cloud_backup_image"]}
    days = int(v["cloud_backup_image_refresh_days"] or 0)
    generation = "0"
    if days:
        offset = int(hashlib.sha256(host.encode()).hexdigest(), 16) % days if source == "build" else 0
        generation = str((int(now) // 86400 + offset) // days)
    args = {"BASE_IMAGE": v["cloud_backup_image_base"], "HOME_DIR": PATHS["home"], "REFRESH": generation}
    digest = hashlib.sha256()
    for key in sorted(args):
        digest.update(("%s=%s\n" % (key, args[key])).encode())
    digest.update(v["__image_context_digest"].encode())
    tag = digest.hexdigest()[:12]
    ref = "%s:%s" % (v["cloud_backup_image_name"], tag)
    return {"build": True, "source": source, "name": v["cloud_backup_image_name"], "tag": tag, "ref": ref, "args": args,
            # the compressed archive a controller build is shipped as (in cloud_backup_image_cache_dir on the
            # controller, then in the project directory on a host that lacks the image, until it is loaded)
            "archive": "%s-%s.tar.gz" % (v["cloud_backup_image_name"].replace("/", "_"), tag)}


# ------------------------------------------------------------------ the whole host
def host_model(v, host, groups, host_timezone, now, context_digest=""):
    """Everything about one host, computed once.

    Returns a dict with:
      host, project_dir, project_name, container, ofelia_container, scheduler, ofelia_image, rest_port, job_user,
      timezone, paths,
      image {build, ref, name, tag, args},
      jobs [{name, kind, schedule, cron (cron scheduler), argv, command, user, environment, exec_argv,
             ping_var, check}],
      log_cleanup {schedule, cron, command},
      env (the .env entries, none of them secret; None values are left out),
      secrets [{var, name, file, via, value}: each secret of the container, a file of the secrets directory, read
      through the tool's own file variable `via` (RESTIC_PASSWORD_FILE, OIDC_PASSWORD_FILE, rclone's KEY_FILE) or,
      via None, loaded by the entrypoint from CLOUD_BACKUP_SECRET_ENV], user_id (owner of the secret files),
      volumes, local_dirs,
      known_hosts {remote: lines}, excludes {source: [patterns]},
      monitored, checks [the Healthchecks checks of the jobs, each with its state: active, or paused when the
      inventory keeps it paused], check_tags, orphan_tags, drill_check,
      secondaries [{name, type, remote, repository_var}], destination {type, label, one_off},
      one_off_env (the environment of a one-off restic container opening the repository, one-off types only; its
      secret values mask its output), one_off {env, files}: the same with the secrets as files (see one_off),
      oidc {enabled, account, issuer, password_set}, restic_host,
      client_credentials {enabled, where, client_id, issuer, discovery_url, token_endpoint, scope, ca_file, secret_file,
      job} (an infn destination with auth client_credentials; its secret is in secrets).
    """
    v = dict(v, __image_context_digest=context_digest)
    prefix = v["cloud_backup_healthchecks_prefix"]
    zone = v["cloud_backup_timezone"] or host_timezone or "UTC"
    user = v["cloud_backup_job_user"]
    container = v["cloud_backup_container_name"]
    cron = v["cloud_backup_scheduler"] == "cron"
    dest = v["cloud_backup_destination"]
    secondaries = v["cloud_backup_secondary_destinations"] or []
    oidc = bool(v["cloud_backup_oidc_account"])
    client = client_credentials(v, v["cloud_backup_project_dir"])

    job_list = []
    for job in jobs(v):
        ping_var = "HC_PING_%s" % env_name(job["name"])
        job["ping_file"] = "%s/%s" % (PATHS["secrets_dir"], ping_var)
        environment = {"CLOUD_BACKUP_JOB": job["name"], "CLOUD_BACKUP_PING_VAR": ping_var}
        exec_argv = ["docker", "exec", "-u", user]
        for key, value in environment.items():
            exec_argv += ["-e", "%s=%s" % (key, value)]
        job.update({"command": " ".join(job["argv"]), "user": user, "environment": environment,
                    "exec_argv": exec_argv + [container] + job["argv"], "ping_var": ping_var,
                    "check": "%s-%s" % (prefix, job["name"]),
                    "cron": _ofelia.to_cron(job["schedule"]) if cron else None})
        job_list.append(job)
    log_schedule = v["cloud_backup_log_cleanup_schedule"]
    log_days = v["cloud_backup_log_retention_days"]
    log_cleanup = {
        "schedule": log_schedule, "cron": _ofelia.to_cron(log_schedule) if cron else None,
        "command": ("find %s/logs/ -type f -mtime +%d -delete" % (v["cloud_backup_project_dir"], log_days)) if cron
        else "find /var/log/ofelia/ -type f -mtime +%d -print -delete" % log_days,
    }

    check_tags = [CHECK_TAG, "host-%s" % host] + ["group-%s" % g for g in groups] + list(v["cloud_backup_healthchecks_tags"])
    # Each job's check is active (resumed if a past rollout paused it, e.g. a source put back) unless the inventory
    # keeps it paused on purpose: the source's `monitoring: paused`, or the job (or `all`) in
    # cloud_backup_healthchecks_paused.
    kept_paused = set(v["cloud_backup_healthchecks_paused"] or [])
    paused_sources = set(s["name"] for s in v["cloud_backup_sources"] or [] if s.get("monitoring") == "paused")
    checks = []
    for job in job_list:
        check = {"name": job["check"], "tags": list(check_tags), "grace": int(v["cloud_backup_healthchecks_grace"]),
                 "channels": list(v["cloud_backup_healthchecks_channels"]),
                 "desc": "infn_cloud.backup job %s: %s" % (job["name"], job["command"]),
                 "state": "paused" if {"all", job["name"]} & kept_paused or job.get("source") in paused_sources
                 else "active"}
        expect = _ofelia.to_healthchecks(job["schedule"])
        check.update(expect)
        if "schedule" in expect:
            check["tz"] = zone
        checks.append(check)

    env = {"AAI_USER": v["cloud_backup_aai_user"] or None, "OIDC_PASSWORD": v["cloud_backup_oidc_password"] or None,
           "RESTIC_PASSWORD": v["cloud_backup_restic_password"],
           "RESTIC_REST_USERNAME": v["cloud_backup_rest_username"], "RESTIC_REST_PASSWORD": v["cloud_backup_rest_password"],
           "RESTIC_REST_PORT": v["cloud_backup_rest_port"],
           "RESTIC_REPOSITORY": "rest:http://127.0.0.1:%s/" % v["cloud_backup_rest_port"],
           "RESTIC_HOST": v["cloud_backup_restic_host"], "RESTIC_COMPRESSION": v["cloud_backup_restic_compression"],
           "RESTIC_PACK_SIZE": v["cloud_backup_restic_pack_size"] or None,
           "RESTIC_READ_CONCURRENCY": v["cloud_backup_restic_read_concurrency"] or None,
           "CLOUD_BACKUP_JOB_TIMEOUT": str(v["cloud_backup_job_timeout"]),
           "CLOUD_BACKUP_STATE_DIR": PATHS["state_dir"], "TZ": zone}
    if oidc:
        env.update({"OIDC_ACCOUNT": v["cloud_backup_oidc_account"], "OIDC_ISSUER": v["cloud_backup_oidc_issuer"],
                    "OIDC_SOCK": PATHS["oidc_sock"], "OIDC_CONFIG_DIR": PATHS["oidc_config_dir"],
                    "OIDC_STATE_DIR": PATHS["oidc_state_dir"],
                    "OIDC_TOKEN_MIN_DAYS": v["cloud_backup_refresh_token_min_days"]})
    secret_keys = set(SECRET_VARS)
    primary_env, primary_path = destination_env(dest, PRIMARY_REMOTE, host)
    env.update(primary_env)
    secret_keys |= destination_secrets(primary_env, PRIMARY_REMOTE)
    if dest["type"] == "rest":
        env["RESTIC_REPOSITORY"] = _rest_url(dest)
        if dest.get("username"):
            secret_keys.add("RESTIC_REPOSITORY")
    else:
        # the rclone remote that start-server serves, and the repository's path inside it
        env["CLOUD_BACKUP_REMOTE"] = PRIMARY_REMOTE
        env["BACKUP_BUCKET_PATH"] = primary_path
    sec_list = []
    for sec in secondaries:
        sec_env, sec_path = destination_env(sec, sec["name"], host)
        var = "CLOUD_BACKUP_REPOSITORY_%s" % env_name(sec["name"])
        sec_env[var] = _rest_url(sec) if sec["type"] == "rest" else "rclone:%s:%s" % (sec["name"], sec_path)
        env.update(sec_env)
        secret_keys |= destination_secrets(sec_env, sec["name"])
        if sec["type"] == "rest" and sec.get("username"):
            secret_keys.add(var)
        sec_list.append({"name": sec["name"], "type": sec["type"], "remote": sec["name"], "repository_var": var})
    if client["enabled"]:
        env["OIDC_CC_ISSUER"] = client["issuer"]
        secret_keys.add(CLIENT_SECRET_VAR)
    if sec_list:
        # name=VARIABLE pairs: the image finds a secondary's repository here, never by deriving its name
        env["CLOUD_BACKUP_DESTINATIONS"] = " ".join("%s=%s" % (s["name"], s["repository_var"]) for s in sec_list)
    secrets = [_secret(k, env.pop(k)) for k in sorted(secret_keys) if env.get(k) not in (None, "")]
    for secret in secrets:
        env.pop(secret["var"], None)
        if secret["via"]:
            env[secret["via"]] = secret["file"]
    # the rest (and each job's ping URL): read by the entrypoint into its own environment, at exec time
    env["CLOUD_BACKUP_SECRET_ENV"] = " ".join(
        ["%s=%s" % (s["var"], s["file"]) for s in secrets if not s["via"]]
        + ["%s=%s" % (j["ping_var"], j["ping_file"]) for j in job_list]) or None

    sources = v["cloud_backup_sources"] or []
    volumes = ["%s:%s" % (PATHS["data_volume"], PATHS["home"]),
               "./excludes:%s:ro" % PATHS["excludes_dir"], "./destinations:%s:ro" % PATHS["destinations_dir"],
               "./%s:%s:ro" % (PATHS["secrets_host_dir"], PATHS["secrets_dir"])]
    volumes += ["%s:%s/%s:ro" % (s["path"], PATHS["backup_root"], s["name"]) for s in sources]
    local_dirs = []
    if dest["type"] == "local":
        volumes.append("%s:%s" % (dest["path"], PATHS["primary_local"]))
        local_dirs.append({"name": "primary", "path": dest["path"]})
    for sec in secondaries:
        if sec["type"] == "local":
            volumes.append("%s:%s/%s" % (sec["path"], PATHS["secondary_local_root"], sec["name"]))
            local_dirs.append({"name": sec["name"], "path": sec["path"]})
    if client["enabled"]:
        if client["ca_file"]:
            volumes.append("%s:%s:ro" % (client["ca_file"], CLIENT_PATHS["ca_file"]))
    known_hosts = {}
    for remote, d in [(PRIMARY_REMOTE, dest)] + [(s["name"], s) for s in secondaries]:
        if d.get("type") == "sftp" and d.get("known_hosts"):
            known_hosts[remote] = str(d["known_hosts"]).strip() + "\n"

    return {
        "host": host,
        "project_dir": v["cloud_backup_project_dir"],
        "cron_file": v["cloud_backup_cron_file"],
        "project_name": v["cloud_backup_project_name"],
        "container": container,
        "ofelia_container": container + "-ofelia",
        "scheduler": v["cloud_backup_scheduler"],
        "ofelia_image": v["cloud_backup_ofelia_image"],
        "rest_port": int(v["cloud_backup_rest_port"]),
        "job_user": user,
        "timezone": zone,
        "paths": dict(PATHS),
        "image": image(v, host, now),
        "jobs": job_list,
        "log_cleanup": log_cleanup,
        "env": {k: str(val) for k, val in env.items() if val is not None},
        # the secret entries, each a file of the secrets directory (values: no_log)
        "secrets": secrets,
        "user_id": USER_ID,
        "volumes": volumes,
        "local_dirs": local_dirs,
        "known_hosts": known_hosts,
        "excludes": {s["name"]: [str(p) for p in s.get("exclude") or []] for s in sources},
        "monitored": bool(v["cloud_backup_healthchecks_api_url"]),
        "checks": checks,
        "check_tags": check_tags,
        "orphan_tags": [CHECK_TAG, "host-%s" % host],
        "host_tag": "host-%s" % host,
        "drill_check": "%s-%s" % (prefix, DRILL_JOB),
        "check_prefix": prefix,
        "secondaries": sec_list,
        "destination": {"type": dest["type"], "label": destination_label(dest, host),
                        "one_off": dest["type"] in ONE_OFF_TYPES},
        # how the primary authenticates (status): client_credentials, oidc_agent, token_file, keys, ...
        "auth": auth_mode(dest, v),
        # the client-credentials client of an infn destination (its secret is in secrets)
        "client_credentials": client,
        # how a one-off restic container opens this host's repository without its stack (secrets: no_log)
        "one_off_env": repository_env(dest, v["cloud_backup_restic_password"], host) if dest["type"] in ONE_OFF_TYPES else {},
        # the same as files (what a one-off container is given: its environment holds no secret)
        "one_off": one_off(dest, v["cloud_backup_restic_password"], host) if dest["type"] in ONE_OFF_TYPES else {},
        "oidc": {"enabled": oidc, "account": v["cloud_backup_oidc_account"], "issuer": v["cloud_backup_oidc_issuer"]},
        "restic_host": v["cloud_backup_restic_host"],
    }


def secret_files(model, checks=None):
    """The files of the secrets directory: [{name, value, restart}], the model's secrets (the server reads them
    when it starts: restart) and, for each job whose check exists, its ping URL under the job's ping variable
    (checks: {check name: {ping_url}} as healthchecks_checks returns them; read by each job run)."""
    files = [{"name": s["name"], "value": s["value"], "restart": True} for s in model["secrets"]]
    for job in model["jobs"]:
        url = ((checks or {}).get(job["check"]) or {}).get("ping_url")
        if url:
            files.append({"name": job["ping_file"].rsplit("/", 1)[1], "value": url, "restart": False})
    return files


def stack_files(model, checks=None, rendered=None):
    """Every directory and file of the stack on the host, for one stack_files call: {directories, files,
    private_files (the secrets), exclusive, absent}. RENDERED holds the templates rendered on the controller: {compose, scheduler}
    (the scheduler's file: ofelia's config.ini, or the cron file)."""
    root = model["project_dir"]
    secrets_dir = "%s/%s" % (root, PATHS["secrets_host_dir"])
    uid = str(model["user_id"])
    ofelia = model["scheduler"] == "ofelia"
    directories = [{"path": root, "mode": "0750"}, {"path": root + "/excludes", "mode": "0755"},
                   {"path": root + "/logs", "mode": "0750"}, {"path": root + "/destinations", "mode": "0755"},
                   {"path": secrets_dir, "mode": "0700", "owner": uid, "group": uid}]
    if ofelia:
        directories += [{"path": root + "/ofelia", "mode": "0750"}, {"path": root + "/ofelia/logs", "mode": "0750"}]
    directories += [{"path": d["path"], "mode": "0700", "owner": uid, "group": uid} for d in model["local_dirs"]]
    files = [{"path": "%s/destinations/%s.known_hosts" % (root, remote), "content": text, "mode": "0644"}
             for remote, text in sorted(model["known_hosts"].items())]
    files.append({"path": root + "/.env", "mode": "0600",
                  "content": "# Managed by Ansible (infn_cloud.backup): local edits are overwritten.\n" + dotenv(model)})
    files += [{"path": "%s/excludes/%s" % (root, name), "content": "".join("%s\n" % p for p in patterns), "mode": "0644"}
              for name, patterns in sorted(model["excludes"].items())]
    rendered = rendered or {}
    files.append({"path": root + "/compose.yaml", "content": rendered["compose"], "mode": "0644"})
    scheduler_file = root + "/ofelia/config.ini" if ofelia else model["cron_file"]
    files.append({"path": scheduler_file, "content": rendered["scheduler"], "mode": "0600"})
    secrets = secret_files(model, checks)
    secret = [{"path": "%s/%s" % (secrets_dir, f["name"]), "content": f["value"], "mode": "0600", "owner": uid, "group": uid}
              for f in secrets]
    return {"directories": directories, "files": files, "private_files": secret, "exclusive": [secrets_dir],
            "absent": [model["cron_file"] if ofelia else root + "/ofelia/config.ini"],
            "secrets_dir": secrets_dir, "scheduler_file": scheduler_file, "compose_file": root + "/compose.yaml",
            "env_file": root + "/.env"}


def dotenv(model, checks=None):
    """The stack's .env text: the model's entries (none secret: the secrets and ping URLs are files, see
    secret_files). CHECKS is accepted for the callers of the former signature and unused."""
    env = dict(model["env"])
    lines = []
    for key, value in env.items():
        text = str(value)
        if "'" in text or "\n" in text or "\r" in text:
            # refused by the validator before any change; never written half-quoted
            raise ValueError("the value of %s cannot hold a single quote or a line break" % key)
        lines.append("%s='%s'\n" % (key, text))  # single quotes: compose reads the value literally
    return "".join(lines)
