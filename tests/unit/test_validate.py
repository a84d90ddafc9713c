"""The role's input contract: argument_specs for what it can express, plugins/plugin_utils/_validate.py for the
rest; every refusal names its variable, none shows a secret, no check is made twice."""

import pytest

from roleinputs import DEFAULTS, MAIN, SPECS, good, problems, render, validated

KEY = "-----BEGIN OPENSSH PRIVATE KEY-----\nAAAA\nBBBB\n-----END OPENSSH PRIVATE KEY-----\n"
SFTP = {"name": "offsite", "type": "sftp", "host": "sftp.example.org", "user": "backup", "path": "/srv/r",
        "private_key": KEY}
REST = {"name": "rest", "type": "rest", "url": "https://rest.example.org:8000/vm1", "username": "u", "password": "p@ss/w"}
INFN = {"type": "infn", "endpoint": "https://s3.cloud.infn.it", "bucket": "alice", "role_name": "S3AccessRole",
        "audience": "minio-af-it"}


def test_good_input_has_no_problem():
    assert problems(good()) == []


def test_good_secondaries_and_infn_pass():
    v = good(cloud_backup_destination=INFN, cloud_backup_oidc_account="cloud-backup",
             cloud_backup_oidc_password="a real oidc password", cloud_backup_secondary_destinations=[SFTP, REST],
             cloud_backup_restic_pack_size=64, cloud_backup_restic_read_concurrency=4)
    assert problems(v) == []


# -------------------------------------------------------------------------------- one contract
def _options(spec):
    """{name: default} of every option of one argument_specs entry (no default: None)."""
    return {name: opt.get("default") for name, opt in spec["options"].items()}


def test_every_default_is_in_argument_specs_with_the_same_default_and_the_reverse():
    documented = {}
    for entry, spec in SPECS.items():
        for name, default in _options(spec).items():
            assert documented.get(name, default) == default, "%s has two defaults in argument_specs" % name
            documented[name] = default
    missing = sorted(set(DEFAULTS) - set(documented))
    assert not missing, "in defaults/main.yml but in no argument_specs entry: %s" % missing
    for name, default in DEFAULTS.items():
        spec_default = documented[name]
        if isinstance(default, str) and "{{" in default:
            # a templated default: argument_specs repeats the same template, or (a per-host random minute) documents
            # it in prose without a default value
            assert spec_default in (None, default), "%s: defaults/main.yml %r, argument_specs %r" % (name, default, spec_default)
        else:
            assert spec_default == default, "%s: defaults/main.yml %r, argument_specs %r" % (name, default, spec_default)
    undeclared = sorted(n for n, d in documented.items() if d is not None and n not in DEFAULTS)
    assert not undeclared, "a default in argument_specs but not in defaults/main.yml: %s" % undeclared
    required = sorted(n for n, o in MAIN.items() if o.get("required"))
    assert not set(required) & set(DEFAULTS), "a required variable has a default"


def test_the_validator_repeats_no_default():
    """It reads the variables as given (defaults applied by ansible-core): a missing one is a KeyError, never a
    silent second copy of its default."""
    from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _validate
    v = validated(good())[1]
    del v["cloud_backup_job_timeout"]
    with pytest.raises(KeyError):
        _validate.problems(v)


def test_argument_specs_checks_are_not_repeated():
    # a type argument_specs knows is refused once, by argument_specs
    messages = problems(good(cloud_backup_destination=dict(INFN, type="ftp")))
    assert len(messages) == 1 and "value of type must be one of" in messages[0], messages
    messages = problems(good(cloud_backup_destination={"type": "s3", "endpoint": "https://s3"}))
    assert len(messages) == 1 and "type is s3 but all of the following are missing: bucket" in messages[0], messages


def test_renamed_variables_are_refused_with_their_successor():
    """The role's input holds every cloud_backup_* variable of the host, an old one too (argument_specs does
    not look at variables it does not declare): the validator names its successor."""
    from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _validate
    params = dict(validated(good())[1], cloud_backup_healthchecks_tz="UTC")
    assert "cloud_backup_healthchecks_tz is no longer used: set cloud_backup_timezone" in _validate.problems(params)[0]


# -------------------------------------------------------------------------------- defects
def test_source_names_that_collide_as_variables_are_refused_naming_both():
    # www-data and www_data would both read HC_PING_BACKUP_WWW_DATA: one job would ping the other's check
    messages = problems(good(cloud_backup_sources=[{"name": "www-data", "path": "/a"}, {"name": "www_data", "path": "/b"}]))
    assert any("cloud_backup_sources[0].name 'www-data' and cloud_backup_sources[1].name 'www_data' collide" in m
               and "HC_PING_BACKUP_WWW_DATA" in m for m in messages), messages


@pytest.mark.parametrize("secret", ["<x9Tq!r2", "<<strong>>pass", "a<b>"])
def test_passwords_starting_with_a_bracket_are_accepted(secret):
    assert problems(good(cloud_backup_restic_password=secret, cloud_backup_rest_password=secret)) == []


@pytest.mark.parametrize("placeholder", ["<password>", "<the restic password, from a vault>", "< secret >"])
def test_whole_placeholders_are_refused(placeholder):
    messages = problems(good(cloud_backup_restic_password=placeholder))
    assert any("cloud_backup_restic_password is empty or a placeholder" in m for m in messages), messages


def test_cron_scheduler_needs_the_hosts_zone():
    v = good(cloud_backup_scheduler="cron", cloud_backup_timezone="Europe/Rome")
    assert problems(v, host_timezone="Europe/Rome") == []
    messages = problems(v, host_timezone="UTC")
    assert any("cloud_backup_timezone Europe/Rome differs from the host's zone UTC" in m for m in messages), messages
    assert problems(good(cloud_backup_scheduler="cron", cloud_backup_timezone="Etc/UTC"), host_timezone="UTC") == []
    # ofelia runs in the zone it is given
    assert problems(good(cloud_backup_timezone="Europe/Rome"), host_timezone="UTC") == []


# -------------------------------------------------------------------------------- each bad value named
@pytest.mark.parametrize("changes, message", [
    ({"cloud_backup_restic_password": ""}, "cloud_backup_restic_password is empty or a placeholder"),
    ({"cloud_backup_restic_password": "CHANGE_ME"}, "cloud_backup_restic_password is empty or a placeholder"),
    ({"cloud_backup_rest_password": "changeme"}, "cloud_backup_rest_password is empty or a placeholder"),
    ({"cloud_backup_restic_password": "it's"}, "cloud_backup_restic_password cannot hold a single quote"),
    ({"cloud_backup_backup_schedule": "0 2 * * *"}, "cloud_backup_backup_schedule: '0 2 * * *' has 5 fields"),
    ({"cloud_backup_forget_schedule": "0 61 3 * * *"}, "cloud_backup_forget_schedule: minutes: 61 is out of range"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a"}, {"name": "a", "path": "/b"}]},
     "cloud_backup_sources[0].name 'a' and cloud_backup_sources[1].name 'a' are the same name"),
    ({"cloud_backup_sources": [{"name": "a", "path": "srv/a"}]}, "cloud_backup_sources[0].path 'srv/a' must be an absolute path"),
    ({"cloud_backup_sources": [{"name": "Bad Name", "path": "/a"}]}, "cloud_backup_sources[0].name 'Bad Name' must match"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a", "schedule": "0 1 * * *"}]},
     "cloud_backup_sources[0].schedule: '0 1 * * *' has 5 fields"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a", "tags": ["x y"]}]}, "cloud_backup_sources[0].tags: 'x y' must match"),
    ({"cloud_backup_sources": [{"name": "a", "path": "/a", "tags": ["x;y"]}]}, "cloud_backup_sources[0].tags: 'x;y' must match"),
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
    ({"cloud_backup_ofelia_image": "mcuadros/ofelia"}, "cloud_backup_ofelia_image must pin a version"),
    ({"cloud_backup_scheduler": "cron", "cloud_backup_backup_schedule": "30 0 2 * * *"},
     "cloud_backup_backup_schedule (cron scheduler): '30 0 2 * * *' fires at second 30"),
    ({"cloud_backup_repository_timeout": 1}, "cloud_backup_repository_timeout must be at least 5"),
    ({"cloud_backup_project_dir": "opt/x"}, "cloud_backup_project_dir must be an absolute path"),
    ({"cloud_backup_timezone": "Mars/Olympus"}, "cloud_backup_timezone 'Mars/Olympus' is not an IANA time zone"),
    ({"cloud_backup_image_refresh_days": -1}, "cloud_backup_image_refresh_days must be 0"),
    ({"cloud_backup_destination": dict(INFN)}, "cloud_backup_destination: type infn needs cloud_backup_oidc_account"),
    ({"cloud_backup_destination": dict(INFN, role_name=None)}, "cloud_backup_destination.role_arn (or role_name) is required"),
    ({"cloud_backup_destination": dict(INFN, token_file="tok")}, "cloud_backup_destination.token_file must be an absolute path"),
    ({"cloud_backup_destination": dict(INFN, endpoint="s3.cloud.infn.it")}, "cloud_backup_destination.endpoint must be an http(s) URL"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, private_key="not a key")]},
     "cloud_backup_secondary_destinations[0].private_key must be a PEM private key"),
    ({"cloud_backup_secondary_destinations": [dict(SFTP, host="")]},
     "cloud_backup_secondary_destinations[0].host must not be empty"),
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
    ({"cloud_backup_secondary_destinations": [dict(SFTP, type="ftp")]}, "value of type must be one of"),
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
    ({"cloud_backup_healthchecks_paused": ["backup-old"]},
     "cloud_backup_healthchecks_paused: 'backup-old' is not a job of this host (its jobs: backup-www, forget, check; or all)"),
    ({"cloud_backup_healthchecks_paused": ["backup-www"], "cloud_backup_sources": []},
     "cloud_backup_healthchecks_paused: 'backup-www' is not a job of this host (its jobs: none; or all)"),
    ({"cloud_backup_sources": [{"name": "www", "path": "/srv/www", "monitoring": "off"}]},
     "value of monitoring must be one of: active, paused, got: off found in cloud_backup_sources"),
])
def test_bad_input_is_named(changes, message):
    messages = problems(good(**changes))
    assert any(message in p for p in messages), messages


def test_problem_messages_never_show_secrets():
    messages = problems(good(cloud_backup_restic_password="it's-secret-value"))
    assert messages and not any("secret-value" in p for p in messages)


def test_templated_defaults_render_per_host():
    assert render("0 {{ 60 | random(seed=inventory_hostname ~ '-x') }} 2 * * *", "vm1").startswith("0 ")


def test_kept_paused_jobs_are_accepted():
    assert problems(good(cloud_backup_healthchecks_paused=["backup-www", "forget"])) == []
    assert problems(good(cloud_backup_healthchecks_paused=["all"])) == []
    assert problems(good(cloud_backup_sources=[{"name": "www", "path": "/srv/www", "monitoring": "paused"}])) == []
