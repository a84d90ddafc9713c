"""ofelia schedules and configs, as mcuadros/ofelia 0.3.x reads them (REFERENCE.md section 4)."""

import pytest

from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _ofelia


@pytest.mark.parametrize("spec", [
    "0 30 2 * * *", "0 0 1 * * *", "*/10 * * * * *", "0 0 2 ? * mon-fri", "0 5,35 1-3 1 jan,jul *",
    "@daily", "@midnight", "@hourly", "@weekly", "@monthly", "@yearly", "@annually",
    "@every 1h", "@every 90s", "@every 1h30m", "@every 1.5h", " 0 0 4 * * * ",
])
def test_valid_schedules(spec):
    assert _ofelia.schedule_error(spec) == ""


@pytest.mark.parametrize("spec, message", [
    ("0 2 * * *", "has 5 fields; ofelia needs 6"),
    ("0 0 2 * * * *", "has 7 fields"),
    ("0 60 2 * * *", "minutes: 60 is out of range 0-59"),
    ("60 0 2 * * *", "seconds: 60 is out of range"),
    ("0 0 24 * * *", "hours: 24 is out of range 0-23"),
    ("0 0 2 0 * *", "day of month: 0 is out of range 1-31"),
    ("0 0 2 * 13 *", "month: 13 is out of range 1-12"),
    ("0 0 2 * * 7", "day of week: 7 is out of range 0-6"),
    ("0 0 5-2 * * *", "ends before it starts"),
    ("0 */0 * * * *", "bad step"),
    ("0 x * * * *", "is not a number"),
    ("? 0 2 * * *", "only allowed in the day fields"),
    ("@often", "unknown descriptor"),
    ("@every 10", "not a Go duration"),
    ("@every 500ms", "at least 1s"),
    ("", "empty"),
])
def test_invalid_schedules(spec, message):
    assert message in _ofelia.schedule_error(spec)


@pytest.mark.parametrize("spec, cron", [
    ("0 30 2 * * *", "30 2 * * *"),
    ("0 0 2 ? * mon", "0 2 * * mon"),
    ("@daily", "0 0 * * *"),
    ("@hourly", "0 * * * *"),
    ("@every 6h", "0 */6 * * *"),
    ("@every 24h", "0 0 * * *"),
    ("@every 1h", "0 * * * *"),
    ("@every 15m", "*/15 * * * *"),
    ("@every 1m", "* * * * *"),
])
def test_to_cron(spec, cron):
    assert _ofelia.to_cron(spec) == cron


@pytest.mark.parametrize("spec", ["30 0 2 * * *", "@every 7m", "@every 5h", "@every 90s"])
def test_to_cron_refuses_what_cron_cannot_say(spec):
    with pytest.raises(_ofelia.ScheduleError):
        _ofelia.to_cron(spec)


@pytest.mark.parametrize("value", [
    "plain", "https://hc.example.org/ping/abc?x=1;y#z", 'say "hi"', "back\\slash", " padded ", "a=b",
])
def test_quote_round_trips_through_the_parser(value):
    text = '[job-local "j"]\nschedule = @daily\ncommand = %s\n' % _ofelia.quote(value)
    assert _ofelia.parse_config(text)["jobs"][("job-local", "j")]["command"] == value


def test_quote_refuses_line_breaks():
    with pytest.raises(_ofelia.ConfigError):
        _ofelia.quote("a\nb")


SEED_CONFIG = """
[global]
save-folder = /var/log/ofelia

[job-exec "check-refresh-token"]
schedule = 0 0 1 * * *          ; ofelia schedules have a leading seconds field
container = cloud-backup
user = user
environment = OIDC_TOKEN_CHECK_URL=https://hc.cloud.infn.it/ping/uuid
command = check-refresh-token

[job-exec "backup"]
schedule = 0 0 2 * * *
container = cloud-backup
user = user
environment = BACKUP_CHECK_URL=https://hc.cloud.infn.it/ping/uuid
environment = RESTIC_HOST=my-VM
command = backup --tag example /backup/dir1

[job-local "clean-logs"]
schedule = 0 0 4 * * *
command = find /var/log/ofelia/ -type f -mtime +30 -print -delete
"""


def test_parses_the_seed_config():
    config = _ofelia.parse_config(SEED_CONFIG)
    backup = config["jobs"][("job-exec", "backup")]
    assert backup["environment"] == ["BACKUP_CHECK_URL=https://hc.cloud.infn.it/ping/uuid", "RESTIC_HOST=my-VM"]
    assert backup["command"] == "backup --tag example /backup/dir1"
    assert config["jobs"][("job-exec", "check-refresh-token")]["schedule"] == "0 0 1 * * *"
    assert config["global"]["save-folder"] == "/var/log/ofelia"


@pytest.mark.parametrize("text, message", [
    ('[global]\nlog-level = debug\n', "unknown key 'log-level'"),
    ('[webhook "hc"]\nurl = x\n', "unknown section [webhook]"),
    ('[job-exec backup]\n', "bad section header"),
    ('[job-exec ""]\n', "needs a double-quoted job name"),
    ('[job-exec "b"]\nschedule = 0 2 * * *\ncommand = x\ncontainer = c\n', "has 5 fields"),
    ('[job-exec "b"]\nschedule = @daily\ncommand = x\n', "has no container"),
    ('[job-local "b"]\nschedule = @daily\n', "has no command"),
    ('[job-local "b"]\nschedule = @daily\ncommand = "x\n', "unterminated double quote"),
    ('[job-local "b"]\nschedule = @daily\ncommand = a\\qb\n', "invalid escape"),
    ('[job-exec "b"]\nschedule = @daily\ncommand = x\ncontainer = c\nno-overlap = maybe\n', "must be a boolean"),
    ('schedule = @daily\n', "outside of any section"),
])
def test_configs_ofelia_refuses(text, message):
    with pytest.raises(_ofelia.ConfigError, match=message.replace("[", r"\[").replace("]", r"\]")):
        _ofelia.parse_config(text)


def test_unquoted_semicolon_cuts_the_value():
    text = '[job-local "j"]\nschedule = @daily\ncommand = curl https://x/ping;rid=1\n'
    assert _ofelia.parse_config(text)["jobs"][("job-local", "j")]["command"] == "curl https://x/ping"


@pytest.mark.parametrize("command, argv", [
    ("backup --tag a /backup/a", ["backup", "--tag", "a", "/backup/a"]),
    ("sh -c 'a && b'", ["sh", "-c", "a && b"]),
    ('echo "x y" z', ["echo", "x y", "z"]),
    ("  spaced   out ", ["spaced", "out"]),
])
def test_split_command(command, argv):
    assert _ofelia.split_command(command) == argv
