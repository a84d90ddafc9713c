"""The host model (plugins/plugin_utils/_model.py): every fact of a host computed once, from the role's inputs."""

import pytest

from roleinputs import good, model

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----\n"
SFTP = {"name": "offsite", "type": "sftp", "host": "sftp.example.org", "user": "backup", "path": "/srv/r",
        "private_key": KEY, "known_hosts": "sftp.example.org ssh-ed25519 AAAAC3"}
REST = {"name": "rest", "type": "rest", "url": "https://rest.example.org:8000/vm1", "username": "u", "password": "p@ss/w"}
LOCAL = {"name": "usb", "type": "local", "path": "/mnt/usb"}
INFN = {"type": "infn", "endpoint": "https://s3.cloud.infn.it", "bucket": "alice", "role_name": "S3AccessRole",
        "audience": "minio-af-it"}
OIDC = {"cloud_backup_oidc_account": "cloud-backup", "cloud_backup_oidc_password": "a real oidc password"}


def by_name(m):
    return {j["name"]: j for j in m["jobs"]}


def test_jobs_their_schedule_argv_and_environment():
    m = model(good(cloud_backup_sources=[{"name": "www", "path": "/srv/www", "tags": ["web"]},
                                         {"name": "db", "path": "/srv/db", "schedule": "@daily"}],
                   cloud_backup_backup_schedule="0 1 2 * * *",
                   cloud_backup_retention={"keep_daily": 7, "keep_tag": ["keep", "pin"]}))
    jobs = by_name(m)
    assert list(jobs) == ["backup-www", "backup-db", "forget", "check"]
    www = jobs["backup-www"]
    assert www["argv"] == ["backup", "--tag", "www", "--tag", "web", "--exclude-file", "/etc/cloud-backup/excludes/www",
                           "/backup/www"]
    assert www["schedule"] == "0 1 2 * * *" and jobs["backup-db"]["schedule"] == "@daily"
    assert jobs["forget"]["command"] == "forget --keep-daily 7 --keep-tag keep --keep-tag pin --prune"
    # what the container needs is passed to it: the job's name and the variable holding its ping URL
    assert www["environment"] == {"CLOUD_BACKUP_JOB": "backup-www", "CLOUD_BACKUP_PING_VAR": "HC_PING_BACKUP_WWW"}
    assert www["exec_argv"] == ["docker", "exec", "-u", "user", "-e", "CLOUD_BACKUP_JOB=backup-www",
                                "-e", "CLOUD_BACKUP_PING_VAR=HC_PING_BACKUP_WWW", "cloud-backup"] + www["argv"]
    assert www["check"] == "vm1-backup-www"


def test_a_tag_that_repeats_the_source_name_is_given_once():
    m = model(good(cloud_backup_sources=[{"name": "projects", "path": "/srv/p", "tags": ["projects", "lab", "lab"]}]))
    assert by_name(m)["backup-projects"]["argv"][:5] == ["backup", "--tag", "projects", "--tag", "lab"]
    assert by_name(m)["backup-projects"]["argv"].count("--tag") == 2


def test_no_sources_no_jobs_but_the_token_is_still_checked():
    assert model(good(cloud_backup_sources=[]))["jobs"] == []
    m = model(good(cloud_backup_sources=[], cloud_backup_secondary_destinations=[SFTP], **OIDC))
    assert [j["name"] for j in m["jobs"]] == ["check-refresh-token"]


def test_copy_jobs_and_the_repository_variables_of_secondaries():
    m = model(good(cloud_backup_secondary_destinations=[SFTP, dict(REST, schedule="0 0 7 * * *",
                                                                  retention={"keep_daily": 7}), LOCAL],
                   cloud_backup_copy_schedule="0 0 6 * * *", cloud_backup_retention={"keep_last": 1}, **OIDC))
    jobs = by_name(m)
    assert jobs["copy-offsite"]["argv"] == ["copy", "offsite", "--keep-last", "1", "--prune"]
    assert jobs["copy-offsite"]["schedule"] == "0 0 6 * * *" and jobs["copy-rest"]["schedule"] == "0 0 7 * * *"
    assert jobs["copy-rest"]["command"] == "copy rest --keep-daily 7 --prune"
    assert jobs["check-refresh-token"]["environment"]["CLOUD_BACKUP_PING_VAR"] == "HC_PING_CHECK_REFRESH_TOKEN"
    env = m["env"]
    # the image finds each secondary's repository through the variable the model names, never by convention
    assert env["CLOUD_BACKUP_DESTINATIONS"] == ("offsite=CLOUD_BACKUP_REPOSITORY_OFFSITE rest=CLOUD_BACKUP_REPOSITORY_REST "
                                                "usb=CLOUD_BACKUP_REPOSITORY_USB")
    assert [s["repository_var"] for s in m["secondaries"]] == ["CLOUD_BACKUP_REPOSITORY_OFFSITE",
                                                               "CLOUD_BACKUP_REPOSITORY_REST", "CLOUD_BACKUP_REPOSITORY_USB"]
    assert env["CLOUD_BACKUP_REPOSITORY_OFFSITE"] == "rclone:offsite:/srv/r"
    assert env["CLOUD_BACKUP_REPOSITORY_USB"] == "rclone:usb:/destinations/usb"
    assert env["RCLONE_CONFIG_OFFSITE_TYPE"] == "sftp" and env["RCLONE_CONFIG_OFFSITE_PORT"] == "22"
    # secrets are files: the REST URL with its credentials (loaded by the entrypoint), the SSH key (rclone's key_file)
    secrets = {s["var"]: s for s in m["secrets"]}
    assert "CLOUD_BACKUP_REPOSITORY_REST" not in env and "RCLONE_CONFIG_OFFSITE_KEY_PEM" not in env
    assert secrets["CLOUD_BACKUP_REPOSITORY_REST"]["value"] == "rest:https://u:p%40ss%2Fw@rest.example.org:8000/vm1/"
    assert secrets["RCLONE_CONFIG_OFFSITE_KEY_PEM"]["value"] == KEY
    assert env["RCLONE_CONFIG_OFFSITE_KEY_FILE"] == "/run/secrets/RCLONE_CONFIG_OFFSITE_KEY_PEM"
    assert "CLOUD_BACKUP_REPOSITORY_REST=/run/secrets/CLOUD_BACKUP_REPOSITORY_REST" in env["CLOUD_BACKUP_SECRET_ENV"].split()
    assert env["OIDC_PASSWORD_FILE"] == "/run/secrets/OIDC_PASSWORD" and secrets["OIDC_PASSWORD"]["value"] == "a real oidc password"
    assert env["RCLONE_CONFIG_OFFSITE_KNOWN_HOSTS_FILE"] == "/etc/cloud-backup/destinations/offsite.known_hosts"
    assert m["known_hosts"] == {"offsite": "sftp.example.org ssh-ed25519 AAAAC3\n"}
    assert "/mnt/usb:/destinations/usb" in m["volumes"] and m["local_dirs"] == [{"name": "usb", "path": "/mnt/usb"}]
    assert env["BACKUP_BUCKET_PATH"] == "b/vm1"


def test_s3_primary_env():
    env = model(good())["env"]
    assert {k: v for k, v in env.items() if k.startswith("RCLONE_CONFIG_DEST_")} == {
        "RCLONE_CONFIG_DEST_TYPE": "s3", "RCLONE_CONFIG_DEST_PROVIDER": "Other",
        "RCLONE_CONFIG_DEST_ENDPOINT": "https://s3.example.org", "RCLONE_CONFIG_DEST_ENV_AUTH": "false"}
    assert env["RESTIC_REPOSITORY"] == "rest:http://127.0.0.1:8089/" and "OIDC_SOCK" not in env
    # the remote start-server serves, named by the model (rclone reads RCLONE_CONFIG_<REMOTE>_*)
    assert (env["CLOUD_BACKUP_REMOTE"], env["BACKUP_BUCKET_PATH"]) == ("dest", "b/vm1")


def test_infn_primary_and_the_oidc_paths_come_from_the_model():
    m = model(good(cloud_backup_destination=INFN, **OIDC))
    env = m["env"]
    assert env["RCLONE_CONFIG_DEST_ENV_AUTH"] == "true" and env["RCLONE_CONFIG_DEST_STS_ENDPOINT"] == "https://s3.cloud.infn.it"
    assert env["AWS_ROLE_ARN"] == "arn:aws:iam:::role/S3AccessRole"
    assert env["AWS_WEB_IDENTITY_TOKEN_FILE"] == m["paths"]["token_file"] and env["INFN_TOKEN_SOURCE"] == "oidc"
    assert (env["OIDC_SOCK"], env["OIDC_CONFIG_DIR"], env["OIDC_STATE_DIR"]) == (
        m["paths"]["oidc_sock"], m["paths"]["oidc_config_dir"], m["paths"]["oidc_state_dir"])
    assert env["OIDC_AUDIENCE"] == "minio-af-it" and env["BACKUP_BUCKET_PATH"] == "alice/vm1"
    assert m["oidc"]["enabled"] and m["destination"] == {"type": "infn", "label": "infn:https://s3.cloud.infn.it/alice/vm1",
                                                         "one_off": False}
    assert m["one_off_env"] == {}


def test_secrets_are_files_never_in_the_environment():
    m = model(good(cloud_backup_rest_password="rest pw real", **OIDC))
    env, secrets = m["env"], {s["var"]: s for s in m["secrets"]}
    assert sorted(secrets) == ["OIDC_PASSWORD", "RCLONE_CONFIG_DEST_ACCESS_KEY_ID", "RCLONE_CONFIG_DEST_SECRET_ACCESS_KEY",
                               "RESTIC_PASSWORD", "RESTIC_REST_PASSWORD"]
    for secret in secrets.values():
        assert secret["value"] not in "\n".join(env.values()) and secret["file"] == "/run/secrets/" + secret["name"]
    # read through restic's and oidc-add's own file options; the others by the entrypoint, with the ping URLs
    assert (env["RESTIC_PASSWORD_FILE"], env["OIDC_PASSWORD_FILE"]) == ("/run/secrets/RESTIC_PASSWORD", "/run/secrets/OIDC_PASSWORD")
    assert env["CLOUD_BACKUP_SECRET_ENV"].split() == [
        "RCLONE_CONFIG_DEST_ACCESS_KEY_ID=/run/secrets/RCLONE_CONFIG_DEST_ACCESS_KEY_ID",
        "RCLONE_CONFIG_DEST_SECRET_ACCESS_KEY=/run/secrets/RCLONE_CONFIG_DEST_SECRET_ACCESS_KEY",
        "RESTIC_REST_PASSWORD=/run/secrets/RESTIC_REST_PASSWORD"] + [
        "%s=/run/secrets/%s" % (j["ping_var"], j["ping_var"]) for j in m["jobs"]]
    assert env["RESTIC_REST_USERNAME"] == "restic" and m["user_id"] == 1000
    files = _model.secret_files(m, {"vm1-backup-www": {"ping_url": "https://hc.example.org/ping/uuid-1"},
                                    "vm1-forget": {"ping_url": ""}})
    assert [f for f in files if not f["restart"]] == [
        {"name": "HC_PING_BACKUP_WWW", "value": "https://hc.example.org/ping/uuid-1", "restart": False}]
    assert sorted(f["name"] for f in files if f["restart"]) == sorted(secrets)
    # rclone options holding a credential are secret, the others are not
    rcl = {"name": "rcl", "type": "rclone", "path": "x", "options": {"type": "webdav", "url": "https://d", "pass": "obscured"}}
    m = model(good(cloud_backup_secondary_destinations=[rcl]))
    assert "RCLONE_CONFIG_RCL_PASS" in {s["var"] for s in m["secrets"]} and m["env"]["RCLONE_CONFIG_RCL_URL"] == "https://d"


def test_rest_primary_is_the_repository_itself():
    m = model(good(cloud_backup_destination={k: v for k, v in REST.items() if k != "name"}))
    # with its credentials: a secret, loaded by the entrypoint (and by restic's wrapper in the image)
    assert "RESTIC_REPOSITORY" not in m["env"]
    assert {s["var"]: s["value"] for s in m["secrets"]}["RESTIC_REPOSITORY"] == (
        "rest:https://u:p%40ss%2Fw@rest.example.org:8000/vm1/")
    assert "RESTIC_REPOSITORY=/run/secrets/RESTIC_REPOSITORY" in m["env"]["CLOUD_BACKUP_SECRET_ENV"].split()
    assert "BACKUP_BUCKET_PATH" not in m["env"] and "RCLONE_CONFIG_DEST_TYPE" not in m["env"]
    assert "CLOUD_BACKUP_REMOTE" not in m["env"]  # nothing to serve


def test_one_off_env_opens_the_repository_without_the_stack():
    assert model(good())["one_off_env"] == {
        "RCLONE_CONFIG_DEST_TYPE": "s3", "RCLONE_CONFIG_DEST_PROVIDER": "Other",
        "RCLONE_CONFIG_DEST_ENDPOINT": "https://s3.example.org", "RCLONE_CONFIG_DEST_ENV_AUTH": "false",
        "RCLONE_CONFIG_DEST_ACCESS_KEY_ID": "AKIAREAL", "RCLONE_CONFIG_DEST_SECRET_ACCESS_KEY": "s3-secret-real",
        "RESTIC_REPOSITORY": "rclone:dest:b/vm1", "RESTIC_PASSWORD": "a long real secret"}
    local = model(good(cloud_backup_destination={"type": "local", "path": "/srv/repo"}))
    assert local["one_off_env"]["RESTIC_REPOSITORY"] == "/destination" and "/srv/repo:/destination" in local["volumes"]


def test_checks_and_their_time_zone():
    m = model(good(cloud_backup_timezone="Europe/Rome", cloud_backup_check_enabled=False), groups=["web"])
    (check,) = m["checks"][:1]
    assert check["name"] == "vm1-backup-www" and check["schedule"] == by_name(m)["backup-www"]["schedule"].split(" ", 1)[1]
    # one zone: the checks expect the jobs where the scheduler runs them (ofelia's TZ, .env's TZ)
    assert {c["tz"] for c in m["checks"]} == {"Europe/Rome"} and m["timezone"] == "Europe/Rome"
    assert m["env"]["TZ"] == "Europe/Rome"
    assert check["tags"] == ["cloud-backup", "host-vm1", "group-web", "prod"]
    assert m["orphan_tags"] == ["cloud-backup", "host-vm1"] and m["drill_check"] == "vm1-restore-drill"
    # no zone given: the host's
    assert model(good(), host_timezone="America/New_York")["checks"][0]["tz"] == "America/New_York"
    every = model(good(cloud_backup_backup_schedule="@every 6h"))["checks"][0]
    assert every["timeout"] == 21600 and "tz" not in every


def test_every_check_is_active_unless_the_inventory_keeps_it_paused():
    """The state of each check is computed once, here (issue 17): active (resumed when found paused) by default;
    paused for a source with monitoring: paused and for the jobs listed in cloud_backup_healthchecks_paused."""
    sources = [{"name": "www", "path": "/srv/www"}, {"name": "db", "path": "/srv/db", "monitoring": "paused"},
               {"name": "tmp", "path": "/srv/tmp", "monitoring": "active"}]
    states = {c["name"]: c["state"] for c in model(good(cloud_backup_sources=sources))["checks"]}
    assert states == {"vm1-backup-www": "active", "vm1-backup-db": "paused", "vm1-backup-tmp": "active",
                      "vm1-forget": "active", "vm1-check": "active"}
    states = {c["name"]: c["state"] for c in model(good(cloud_backup_healthchecks_paused=["forget"]))["checks"]}
    assert states == {"vm1-backup-www": "active", "vm1-forget": "paused", "vm1-check": "active"}
    assert {c["state"] for c in model(good(cloud_backup_healthchecks_paused=["all"]))["checks"]} == {"paused"}


def test_cron_lines_of_the_cron_scheduler():
    m = model(good(cloud_backup_scheduler="cron", cloud_backup_backup_schedule="0 15 1 * * *"))
    assert by_name(m)["backup-www"]["cron"] == "15 1 * * *"
    assert m["log_cleanup"]["command"] == "find /opt/cloud-backup/logs/ -type f -mtime +30 -delete"
    assert model(good())["log_cleanup"]["command"] == "find /var/log/ofelia/ -type f -mtime +30 -print -delete"


def test_the_image_tag_covers_the_base_and_the_refresh_generation():
    day = 86400
    base = model(good(), now=100 * day)["image"]
    assert base["build"] and base["ref"] == "infn-cloud/cloud-backup:" + base["tag"]
    assert base["args"]["BASE_IMAGE"] == "debian:trixie-slim" and base["args"]["HOME_DIR"] == _model.PATHS["home"]
    # nothing changed: the same tag (nothing rebuilt)
    assert model(good(), now=100 * day)["image"]["tag"] == base["tag"]
    # a new base image rebuilds
    assert model(good(cloud_backup_image_base="debian:forky-slim"), now=100 * day)["image"]["tag"] != base["tag"]
    # a new build context rebuilds
    assert model(good(), now=100 * day, digest="other")["image"]["tag"] != base["tag"]
    # within one refresh period nothing is rebuilt; across it the package layer is
    tags = {model(good(cloud_backup_image_refresh_days=30), now=(100 + d) * day)["image"]["tag"] for d in range(30)}
    assert len(tags) == 2
    assert len({model(good(cloud_backup_image_refresh_days=0), now=(100 + d) * day)["image"]["tag"] for d in range(90)}) == 1
    # hosts of a fleet are refreshed on different days
    days = {h: next(d for d in range(31) if model(good(), host=h, now=(100 + d) * day)["image"]["tag"]
                    != model(good(), host=h, now=100 * day)["image"]["tag"]) for h in ("vm1", "vm2", "vm3", "vm4")}
    assert len(set(days.values())) > 1, days
    assert model(good(cloud_backup_image_build=False, cloud_backup_image="registry.example.org/cb:1.0"))["image"] == {
        "build": False, "source": "pull", "ref": "registry.example.org/cb:1.0"}
    assert model(good(cloud_backup_image_source="pull", cloud_backup_image="registry.example.org/cb:1.0"))["image"] == {
        "build": False, "source": "pull", "ref": "registry.example.org/cb:1.0"}


def test_an_image_built_on_the_controller_is_one_image_for_the_whole_fleet():
    """cloud_backup_image_source: controller: no per-host refresh offset, so every host names the same tag (one build,
    one archive, one image ID), which still changes with the base, the context and the refresh generation."""
    day = 86400
    fleet = {model(good(cloud_backup_image_source="controller"), host=h, now=(100 + d) * day)["image"]["ref"]
             for h in ("vm1", "vm2", "vm3", "vm4", "vm5") for d in range(3)}
    assert len(fleet) == 1
    one = model(good(cloud_backup_image_source="controller"), now=100 * day)["image"]
    assert one["source"] == "controller" and one["build"]
    assert one["archive"] == "infn-cloud_cloud-backup-%s.tar.gz" % one["tag"]
    later = model(good(cloud_backup_image_source="controller"), now=(100 + 31) * day)["image"]["tag"]
    assert later != one["tag"]


def test_dotenv_is_literal_and_holds_no_secret_nor_ping_url():
    m = model(good(cloud_backup_restic_password="p$ss #word", cloud_backup_aai_user="$user#1"))
    text = _model.dotenv(m, {"vm1-backup-www": {"ping_url": "https://hc.example.org/ping/uuid-1"},
                             "vm1-forget": {"ping_url": ""}})
    assert "AAI_USER='$user#1'\n" in text and "RESTIC_PASSWORD_FILE='/run/secrets/RESTIC_PASSWORD'\n" in text
    assert "p$ss #word" not in text and "s3-secret-real" not in text and "hc.example.org" not in text
    with pytest.raises(ValueError, match="value of RESTIC_HOST"):
        _model.dotenv(dict(m, env=dict(m["env"], RESTIC_HOST="it's")))


def test_volumes():
    m = model(good())
    assert m["volumes"] == ["cloud-backup-data:/home/user", "./excludes:/etc/cloud-backup/excludes:ro",
                            "./destinations:/etc/cloud-backup/destinations:ro", "./secrets:/run/secrets:ro",
                            "/srv/www:/backup/www:ro"]
    assert m["excludes"] == {"www": ["*.tmp"]}
