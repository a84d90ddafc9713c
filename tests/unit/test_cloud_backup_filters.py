"""The role's filters: the jobs as data, the .env, and the checks of a host's input."""

import copy

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.infn_cloud.backup.plugins.filter import cloud_backup as f

GOOD = {
    "cloud_backup_project_name": "cloud-backup",
    "cloud_backup_image_name": "infn-cloud/cloud-backup",
    "cloud_backup_image_base": "debian:trixie-slim",
    "cloud_backup_image_build_network": "default",
    "cloud_backup_job_user": "user",
    "cloud_backup_cron_file": "/etc/cron.d/cloud-backup",
    "cloud_backup_restic_host": "vm1",
    "cloud_backup_aai_user": "",
    "cloud_backup_docker_install": False,
    "cloud_backup_docker_packages": ["docker.io", "docker-compose"],
    "cloud_backup_healthchecks_api_url": "https://hc.example.org",
    "cloud_backup_healthchecks_api_key": "hcw_0123456789abcdef0123456789abcd",
    "cloud_backup_healthchecks_prefix": "vm1",
    "cloud_backup_healthchecks_tz": "Europe/Rome",
    "cloud_backup_healthchecks_grace": 3600,
    "cloud_backup_healthchecks_tags": ["prod"],
    "cloud_backup_healthchecks_channels": ["ops-email"],
    "cloud_backup_healthchecks_ca_path": "",
    "cloud_backup_restic_password": "a long real secret",
    "cloud_backup_rest_password": "another-real-secret",
    "cloud_backup_rest_username": "restic",
    "cloud_backup_rest_port": 8089,
    "cloud_backup_container_name": "cloud-backup",
    "cloud_backup_project_dir": "/opt/cloud-backup",
    "cloud_backup_image_build": True,
    "cloud_backup_image": "",
    "cloud_backup_scheduler": "ofelia",
    "cloud_backup_ofelia_image": "mcuadros/ofelia:0.3.21",
    "cloud_backup_destination": {"type": "s3", "endpoint": "https://s3.example.org", "bucket": "b",
                                 "access_key_id": "AKIAREAL", "secret_access_key": "s3-secret-real"},
    "cloud_backup_sources": [{"name": "www", "path": "/srv/www", "tags": ["web"], "exclude": ["*.tmp"]}],
    "cloud_backup_backup_schedule": "0 12 2 * * *",
    "cloud_backup_forget_schedule": "0 12 3 * * *",
    "cloud_backup_log_cleanup_schedule": "@daily",
    "cloud_backup_check_schedule": "0 30 5 * * 0",
    "cloud_backup_check_read_data_subset": "5%",
    "cloud_backup_retention": {"keep_within": "1m"},
    "cloud_backup_log_retention_days": 30,
    "cloud_backup_repository_timeout": 120,
}


def with_(**changes):
    v = copy.deepcopy(GOOD)
    v.update(changes)
    return v


def test_good_input_has_no_problem():
    assert f.cloud_backup_problems(GOOD) == []


@pytest.mark.parametrize("changes, message", [
    ({"cloud_backup_restic_password": ""}, "cloud_backup_restic_password is empty or a placeholder"),
    ({"cloud_backup_restic_password": "CHANGE_ME"}, "cloud_backup_restic_password is empty or a placeholder"),
    ({"cloud_backup_rest_password": "changeme"}, "cloud_backup_rest_password is empty or a placeholder"),
    ({"cloud_backup_restic_password": "it's"}, "cloud_backup_restic_password cannot hold a single quote"),
    ({"cloud_backup_backup_schedule": "0 2 * * *"}, "cloud_backup_backup_schedule: '0 2 * * *' has 5 fields"),
    ({"cloud_backup_forget_schedule": "0 61 3 * * *"}, "cloud_backup_forget_schedule: minutes: 61 is out of range"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}]},
     "cloud_backup_sources[1].name 'a' is used by two sources"),
    ({"cloud_backup_sources": [{"name": "a", "path": "srv/a"}]}, "cloud_backup_sources[0].path 'srv/a' must be an absolute path"),
    ({"cloud_backup_sources": [{"name": "Bad Name", "path": "/a"}]}, "cloud_backup_sources[0].name 'Bad Name' must match"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a", "schedule": "0 1 * * *"}]},
     "cloud_backup_sources[0].schedule: '0 1 * * *' has 5 fields"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a", "tags": ["x y"]}]}, "cloud_backup_sources[0].tags: 'x y' must match"),
    ({"cloud_backup_destination": {"type": "s3", "endpoint": "s3.example.org", "bucket": "b",
                                   "access_key_id": "k1234", "secret_access_key": "s1234"}},
     "cloud_backup_destination.endpoint must be an http(s) URL"),
    ({"cloud_backup_destination": {"type": "local", "path": "relative"}}, "cloud_backup_destination.path must be an absolute"),
    ({"cloud_backup_destination": {"type": "rclone", "options": {"host": "x"}}}, "cloud_backup_destination.options.type is required"),
    ({"cloud_backup_retention": {"keep_forever": 1}}, "cloud_backup_retention: unknown option(s) keep_forever"),
    ({"cloud_backup_retention": {}}, "cloud_backup_retention is empty"),
    ({"cloud_backup_rest_port": 70000}, "cloud_backup_rest_port must be a port number"),
    ({"cloud_backup_image_build": False}, "cloud_backup_image must name an image"),
    ({"cloud_backup_ofelia_image": "mcuadros/ofelia:latest"}, "cloud_backup_ofelia_image must pin a version"),
    ({"cloud_backup_scheduler": "cron", "cloud_backup_backup_schedule": "30 0 2 * * *"},
     "cloud_backup_backup_schedule (cron scheduler): '30 0 2 * * *' fires at second 30"),
    ({"cloud_backup_repository_timeout": 1}, "cloud_backup_repository_timeout must be at least 5"),
    ({"cloud_backup_project_dir": "opt/x"}, "cloud_backup_project_dir must be an absolute path"),
])
def test_bad_input_is_named(changes, message):
    problems = f.cloud_backup_problems(with_(**changes))
    assert any(message in p for p in problems), problems


def test_problem_messages_never_show_secrets():
    problems = f.cloud_backup_problems(with_(cloud_backup_restic_password="it's-secret-value"))
    assert problems and not any("secret-value" in p for p in problems)


def test_jobs():
    jobs = f.cloud_backup_jobs(
        [{"name": "www", "path": "/srv/www", "tags": ["web"]}, {"name": "db", "path": "/srv/db", "schedule": "@daily"}],
        "0 1 2 * * *", "0 1 3 * * *", {"keep_daily": 7, "keep_tag": ["keep", "pin"]}, True)
    assert [j["name"] for j in jobs] == ["backup-www", "backup-db", "forget"]
    assert jobs[0]["argv"] == ["backup", "--tag", "www", "--tag", "web", "--exclude-file",
                               "/etc/cloud-backup/excludes/www", "/backup/www"]
    assert jobs[0]["schedule"] == "0 1 2 * * *" and jobs[1]["schedule"] == "@daily"
    assert jobs[2]["command"] == "forget --keep-daily 7 --keep-tag keep --keep-tag pin --prune"


def test_no_sources_no_jobs():
    assert f.cloud_backup_jobs([], "@daily", "@daily", {"keep_last": 1}, True) == []


def test_jobs_refuse_unsafe_tokens():
    with pytest.raises(AnsibleFilterError):
        f.cloud_backup_jobs([{"name": "a", "path": "/a", "tags": ["x;y"]}], "@daily", "@daily", {"keep_last": 1}, True)


def test_dotenv_is_literal():
    text = f.cloud_backup_dotenv({"A": "p$ss #word", "B": None, "C": 8089})
    assert text == "A='p$ss #word'\nC='8089'\n"
    with pytest.raises(AnsibleFilterError, match="value of D"):
        f.cloud_backup_dotenv({"D": "it's"})
