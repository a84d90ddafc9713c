"""Destinations of the cloud_backup role (primary and secondaries), their environment, the copy and
check-refresh-token jobs, and every bad destination value named by its variable."""

import copy
import os
import sys

import pytest

sys.path.insert(0, os.path.dirname(__file__))
from test_cloud_backup_filters import GOOD  # noqa: E402

from ansible_collections.infn_cloud.backup.plugins.filter import cloud_backup as f  # noqa: E402

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----\n"
SFTP = {"name": "offsite", "type": "sftp", "host": "sftp.example.org", "user": "backup", "path": "/srv/r",
        "private_key": KEY}
REST = {"name": "rest", "type": "rest", "url": "https://rest.example.org:8000/vm1", "username": "u", "password": "p@ss/w"}
INFN = {"type": "infn", "endpoint": "https://s3.cloud.infn.it", "bucket": "alice", "role_name": "S3AccessRole",
        "audience": "minio-af-it"}


def with_(**changes):
    v = copy.deepcopy(GOOD)
    v.update(changes)
    return v


def test_s3_primary_env_is_unchanged():
    env = f.cloud_backup_destinations_env(GOOD["cloud_backup_destination"], [], "vm1")
    assert env == {"RCLONE_CONFIG_DEST_TYPE": "s3", "RCLONE_CONFIG_DEST_PROVIDER": "Other",
                   "RCLONE_CONFIG_DEST_ENDPOINT": "https://s3.example.org", "RCLONE_CONFIG_DEST_ENV_AUTH": "false",
                   "RCLONE_CONFIG_DEST_ACCESS_KEY_ID": "AKIAREAL", "RCLONE_CONFIG_DEST_SECRET_ACCESS_KEY": "s3-secret-real",
                   "RCLONE_CONFIG_DEST_REGION": None, "BACKUP_BUCKET_PATH": "b/vm1"}


def test_infn_primary_uses_web_identity_from_the_oidc_account():
    env = f.cloud_backup_destinations_env(INFN, [], "vm1")
    assert env["RCLONE_CONFIG_DEST_ENV_AUTH"] == "true"
    assert env["RCLONE_CONFIG_DEST_STS_ENDPOINT"] == "https://s3.cloud.infn.it"
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam:::role/S3AccessRole"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == f.TOKEN_FILE and env["INFN_TOKEN_SOURCE"] == "oidc"
    assert env["OIDC_AUDIENCE"] == "minio-af-it" and env["BACKUP_BUCKET_PATH"] == "alice/vm1"
    assert "RCLONE_CONFIG_DEST_ACCESS_KEY_ID" not in env


def test_secondaries_get_their_own_remote_and_repository():
    local = {"name": "usb", "type": "local", "path": "/mnt/usb"}
    env = f.cloud_backup_destinations_env(GOOD["cloud_backup_destination"], [SFTP, REST, local], "vm1")
    assert env["RCLONE_CONFIG_OFFSITE_TYPE"] == "sftp" and env["RCLONE_CONFIG_OFFSITE_PORT"] == "22"
    # one line in .env: rclone reads \n in key_pem as line breaks
    assert "\n" not in env["RCLONE_CONFIG_OFFSITE_KEY_PEM"] and "\\nAAAA\\n" in env["RCLONE_CONFIG_OFFSITE_KEY_PEM"]
    assert env["CLOUD_BACKUP_REPOSITORY_OFFSITE"] == "rclone:offsite:/srv/r"
    assert env["CLOUD_BACKUP_REPOSITORY_REST"] == "rest:https://u:p%40ss%2Fw@rest.example.org:8000/vm1/"
    assert env["CLOUD_BACKUP_REPOSITORY_USB"] == "rclone:usb:/destinations/usb"
    assert env["BACKUP_BUCKET_PATH"] == "b/vm1"
    assert f.cloud_backup_dotenv(env)  # every value fits on one .env line


def test_rest_primary_is_the_repository_itself():
    env = f.cloud_backup_destinations_env(dict(REST, name=None), [], "vm1")
    assert env == {"RESTIC_REPOSITORY": "rest:https://u:p%40ss%2Fw@rest.example.org:8000/vm1/", "BACKUP_BUCKET_PATH": None}


def test_copy_and_refresh_token_jobs():
    jobs = f.cloud_backup_jobs(GOOD["cloud_backup_sources"], "@daily", "@daily", {"keep_last": 1}, True, None,
                               [SFTP, dict(REST, schedule="0 0 7 * * *", retention={"keep_daily": 7})],
                               {"enabled": True, "schedule": "0 0 1 * * *"},
                               "0 0 6 * * *")
    by_name = {j["name"]: j for j in jobs}
    # each copy then applies the destination's retention (else the primary's) to the copies of this host
    assert by_name["copy-offsite"]["argv"] == ["copy", "offsite", "--keep-last", "1", "--prune"]
    assert by_name["copy-offsite"]["schedule"] == "0 0 6 * * *"
    assert by_name["copy-rest"]["schedule"] == "0 0 7 * * *"
    assert by_name["copy-rest"]["command"] == "copy rest --keep-daily 7 --prune"
    assert by_name["check-refresh-token"]["command"] == "check-refresh-token"
    checks = f.cloud_backup_checks(jobs, "vm1", [], 3600, "UTC", [])
    assert {"vm1-copy-offsite", "vm1-copy-rest", "vm1-check-refresh-token"} <= {c["name"] for c in checks}
    # no sources: nothing to copy, but the token is still checked
    jobs = f.cloud_backup_jobs([], "@daily", "@daily", {}, True, None, [SFTP], {"enabled": True, "schedule": "@daily"})
    assert [j["name"] for j in jobs] == ["check-refresh-token"]


def test_good_secondaries_and_infn_pass():
    v = with_(cloud_backup_destination=INFN, cloud_backup_oidc_account="cloud-backup",
              cloud_backup_oidc_password="a real oidc password", cloud_backup_secondary_destinations=[SFTP, REST],
              cloud_backup_restic_pack_size=64, cloud_backup_restic_read_concurrency=4)
    assert f.cloud_backup_problems(v) == []


@pytest.mark.parametrize("change, message", [
    ({"cloud_backup_destination": dict(INFN)}, "cloud_backup_destination: type infn needs cloud_backup_oidc_account"),
    ({"cloud_backup_destination": dict(INFN, role_name=None)}, "cloud_backup_destination.role_arn (or role_name) is required"),
    ({"cloud_backup_destination": dict(INFN, token_file="tok")}, "cloud_backup_destination.token_file must be an absolute path"),
    ({"cloud_backup_destination": dict(INFN, endpoint="s3.cloud.infn.it")}, "cloud_backup_destination.endpoint must be an http(s) URL"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, private_key="not a key")]},
     "cloud_backup_secondary_destinations[0].private_key must be a PEM private key"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, host="")]}, "cloud_backup_secondary_destinations[0].host is required"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, port=70000)]}, "cloud_backup_secondary_destinations[0].port must be a port"),
    ({"cloud_backup_secondary_destinations": [dict(REST, url="rest.example.org")]},
     "cloud_backup_secondary_destinations[0].url must be the http(s) URL"),
    ({"cloud_backup_secondary_destinations": [dict(REST, password="changeme")]},
     "cloud_backup_secondary_destinations[0].password is empty or a placeholder"),
    ({"cloud_backup_secondary_destinations": [SFTP, dict(REST, name="offsite")]},
     "cloud_backup_secondary_destinations[1].name 'offsite' is used by two destinations"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, name="dest")]}, "cloud_backup_secondary_destinations[0].name 'dest' must match"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, schedule="0 2 * * *")]},
     "cloud_backup_secondary_destinations[0].schedule: '0 2 * * *' has 5 fields"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, type="ftp")]}, "cloud_backup_secondary_destinations[0].type 'ftp' must be one of"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, user="it's")]},
     "cloud_backup_secondary_destinations[0].user cannot hold a single quote"),
    ({"cloud_backup_secondary_destinations": [dict(INFN, name="infn")], "cloud_backup_oidc_account": "a",
      "cloud_backup_oidc_password": "real pw", "cloud_backup_destination": dict(INFN)},
     "at most one destination of type infn"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, retention={"keep_forever": 1})]},
     "cloud_backup_secondary_destinations[0].retention: unknown option(s) keep_forever"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, retention={"keep_last": "1;rm"})]},
     "cloud_backup_secondary_destinations[0].retention.keep_last: '1;rm' is not a valid value"),
    ({"cloud_backup_oidc_account": "cloud-backup"}, "cloud_backup_oidc_password must be set when cloud_backup_oidc_account"),
    ({"cloud_backup_restic_pack_size": 2}, "cloud_backup_restic_pack_size must be 0"),
])
def test_bad_destination_values_are_named(change, message):
    problems = f.cloud_backup_problems(with_(**change))
    assert any(message in p for p in problems), problems
