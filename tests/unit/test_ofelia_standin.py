"""The lab's ofelia stand-in (lab/images/ofelia-standin): ofelia 0.3.21's loading rules (gcfg syntax, its
config structs, robfig/cron v1 schedules), its argv split (gobs/args) and its scheduler, as the real
daemon behaves. The stand-in is independent of plugins/, so these tests use hand-written configs only."""

import importlib.util
import io
import os
import re
import sys
import threading
import time
from datetime import datetime, timezone
from zoneinfo import ZoneInfo

import pytest

STANDIN_DIR = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))),
                           "lab", "images", "ofelia-standin")


def _load():
    sys.dont_write_bytecode = True  # no __pycache__ in the image's build context (its hash)
    spec = importlib.util.spec_from_file_location("ofelia_standin", os.path.join(STANDIN_DIR, "standin.py"))
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = _load()
UTC = timezone.utc


def job(text, kind="job-exec", name="j"):
    return standin.load_config(text).job(kind, name)


def exec_job(*lines):
    return job('[job-exec "j"]\n' + "".join(line + "\n" for line in lines))


def refused(text):
    with pytest.raises(standin.ConfigError) as info:
        standin.load_config(text)
    return str(info.value)


def fires(spec, start, count=3):
    schedule, out, when = standin.parse_schedule(spec), [], start
    for _ in range(count):
        when = schedule.next(when)
        out.append(when.isoformat())
    return out


def test_independent_of_the_config_generator():
    for name in os.listdir(STANDIN_DIR):
        if name.endswith(".py"):
            text = open(os.path.join(STANDIN_DIR, name)).read()
            imports = re.findall(r"^\s*(?:from|import)\s+(\S+)", text, re.M)
            assert set(imports) <= {"__future__", "json", "math", "os", "re", "secrets", "shutil", "signal", "subprocess",
                                    "sys", "threading", "time", "unicodedata", "dataclasses", "datetime", "zoneinfo",
                                    "gcfg", "croniter"}, (name, imports)
            assert "_ofelia" not in text and "plugin_utils" not in text and "module_utils" not in text, name


# ---------------------------------------------------------------- gcfg syntax

@pytest.mark.parametrize("line, value", [
    ("command = curl https://hc/ping;x", "curl https://hc/ping"),      # ; without a space
    ("command = curl https://hc/ping ; x", "curl https://hc/ping"),    # ; after a space
    ("command = echo a#b", "echo a"),                                  # # without a space
    ("command = echo a # b", "echo a"),
    ('command = "curl https://hc/ping;x#y"', "curl https://hc/ping;x#y"),  # quoted: kept
    ('command = sh -c "a; b # c"', "sh -c a; b # c"),                  # quotes removed, their content kept
    ('command = "say \\"hi\\""', 'say "hi"'),                          # \" inside quotes
    ('command = "a\\tb\\\\c"', "a\tb\\c"),                             # \t and \\ inside quotes
    ("command = a=b=c", "a=b=c"),                                      # = inside a value
    ("command    =    spaced   value   ", "spaced   value"),          # blanks around = and the value
    ('command = "  kept  "', "  kept  "),
    ("command = a \\\n  b", "a   b"),                                  # backslash-newline joins lines
    ("command =", ""),
])
def test_values(line, value):
    assert exec_job(line).command == value


@pytest.mark.parametrize("text, message", [
    ('[job-exec "j"]\ncommand = a \\ b\n', "unquoted '\\' must be followed by new line"),
    ('[job-exec "j"]\ncommand = echo \\"x\\"\n', "unquoted '\\' must be followed by new line"),
    ('[job-exec "j"]\ncommand = "a\\qb"\n', "unknown escape sequence"),
    ('[job-exec "j"]\ncommand = "unterminated\n', "string not terminated"),
    ('[job-exec "j"]\nno_overlap = true\n', "illegal character U+005F '_'"),
    ("[job-exec j]\n", "expected subsection name or right bracket"),
    ("[job-exec 'j']\n", "illegal character U+0027"),
    ('[job-exec ""]\n', "empty subsection name"),
    ("command = x\n", "expected section header"),
    ('[job-exec "j"]\ncommand x\n', "expected '='"),
    ('[job-exec "j"]\ncommand\n', "blank value not supported"),
    ('[job-exec "j"]\nno-overlap = maybe\n', 'failed to parse "maybe" as bool'),
    ("[global]\nsmtp-port = 25a\n", "failed to parse"),
])
def test_syntax_errors_refuse_the_file(text, message):
    assert message in refused(text)


def test_unknown_key_is_fatal_in_global():
    assert 'section "global", variable "log-level"' in refused("[global]\nlog-level = debug\n")


def test_unknown_key_is_fatal_in_a_job_and_every_one_is_reported():
    message = refused('[job-exec "j"]\nschedule = @daily\ntimeout = 1h\n[job-local "k"]\nhistory-limit = 3\n')
    assert 'subsection "j", variable "timeout"' in message and 'subsection "k", variable "history-limit"' in message


@pytest.mark.parametrize("header", ['[webhook "hc"]', "[jobs]", '[job-exec-x "j"]', '[global "x"]'])
def test_unknown_section_is_fatal(header):
    assert "can't store data at section" in refused(header + "\n")


def test_section_and_key_names_ignore_case_job_names_do_not():
    config = standin.load_config('[JOB-Exec "Backup"]\nSCHEDULE = @daily\nCommand = true\n[Global]\nSave-Folder = /x\n')
    assert config.job("job-exec", "Backup").schedule == "@daily" and config.global_ == {"save-folder": "/x"}
    assert [(j.kind, j.name) for j in config.jobs] == [("job-exec", "Backup")]


def test_repeated_single_key_keeps_the_last_and_multi_keys_take_one_entry_per_line():
    j = exec_job("user = a", "user = b", "environment = A=1", "environment = B=2;cut", 'environment = "C=3;kept"')
    assert j.get("user") == "b"
    assert j.get("environment") == ["A=1", "B=2", "C=3;kept"]
    # `environment` alone (no =) empties the list, as gcfg does for a multi-valued variable
    assert exec_job("environment = A=1", "environment", "environment = B=2").get("environment") == ["B=2"]
    run = job('[job-run "r"]\nvolume = /a:/a\nvolume = /b:/b\n', "job-run", "r")
    assert run.get("volume") == ["/a:/a", "/b:/b"]


def test_keys_of_the_v0_3_structs_and_defaults():
    j = exec_job("schedule = @daily", "container = c", "tty", "no-overlap = yes", "save-only-on-error = on")
    assert (j.get("user"), j.get("tty"), j.get("no-overlap"), j.get("save-only-on-error")) == ("root", True, True, True)
    assert job('[job-run "r"]\nimage = x\n', "job-run", "r").keys == {
        "image": "x", "user": "root", "delete": "true", "pull": "true"}
    assert job('[job-local "l"]\ndir = /tmp\n', "job-local", "l").get("dir") == "/tmp"
    assert "variable \"container\"" in refused('[job-local "l"]\ncontainer = c\n')
    assert "variable \"volume\"" in refused('[job-service-run "s"]\nvolume = /a:/a\n')
    assert standin.load_config("[global]\nsmtp-port = 0x19\n").global_ == {"smtp-port": 25}


# ---------------------------------------------------------------- schedules (robfig/cron v1)

def test_a_bad_schedule_drops_only_that_job_and_validate_still_succeeds(tmp_path):
    text = ('[job-exec "good"]\nschedule = @daily\ncontainer = c\ncommand = true\n'
            '[job-exec "bad"]\nschedule = 0 2 * *\ncontainer = c\ncommand = false\n'
            '[job-exec "none"]\ncontainer = c\ncommand = true\n')
    registered, failed = standin.register(standin.load_config(text))
    assert [j.name for j, _ in registered] == ["good"]
    assert [(j.name, reason) for j, reason in failed] == [("bad", "Expected 5 to 6 fields, found 4: 0 2 * *")]
    (tmp_path / "c.ini").write_text(text)
    out = io.StringIO()
    assert standin.main(["validate", "--config=%s" % (tmp_path / "c.ini")], environ={}, stream=out) == 0
    assert 'New job registered "good" - "true" - "@daily"' in out.getvalue()
    assert 'Failed to register job "bad" - "false" - "0 2 * *"' in out.getvalue()
    assert '"none"' not in out.getvalue()  # no schedule: left out silently


def test_no_valid_job_left_the_daemon_exits_1_and_a_parse_error_fails_both(tmp_path):
    (tmp_path / "c.ini").write_text('[job-exec "bad"]\nschedule = 0 61 * * * *\ncontainer = c\ncommand = true\n')
    out = io.StringIO()
    assert standin.main(["daemon", "--config", str(tmp_path / "c.ini")], environ={}, stream=out) == 1
    assert "unable to start a empty scheduler." in out.getvalue()
    (tmp_path / "d.ini").write_text("[global]\nfoo = 1\n")
    for command in ("daemon", "validate"):
        assert standin.main([command, "--config=%s" % (tmp_path / "d.ini")], environ={}, stream=io.StringIO()) == 1


def test_five_fields_are_read_seconds_first_with_any_day_of_week():
    # `0 2 * * *` is second 0 of minute 2 of every hour, not 02:00
    assert fires("0 2 * * *", datetime(2026, 3, 10, 10, 30, tzinfo=UTC)) == [
        "2026-03-10T11:02:00+00:00", "2026-03-10T12:02:00+00:00", "2026-03-10T13:02:00+00:00"]
    assert fires("0 30 2 * * *", datetime(2026, 3, 10, 10, 30, tzinfo=UTC), 2) == [
        "2026-03-11T02:30:00+00:00", "2026-03-12T02:30:00+00:00"]


@pytest.mark.parametrize("spec, expected", [
    ("@yearly", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
    ("@annually", ["2027-01-01T00:00:00+00:00", "2028-01-01T00:00:00+00:00"]),
    ("@monthly", ["2026-04-01T00:00:00+00:00", "2026-05-01T00:00:00+00:00"]),
    ("@weekly", ["2026-03-15T00:00:00+00:00", "2026-03-22T00:00:00+00:00"]),  # Sundays
    ("@daily", ["2026-03-11T00:00:00+00:00", "2026-03-12T00:00:00+00:00"]),
    ("@midnight", ["2026-03-11T00:00:00+00:00", "2026-03-12T00:00:00+00:00"]),
    ("@hourly", ["2026-03-10T11:00:00+00:00", "2026-03-10T12:00:00+00:00"]),
    ("@every 20s", ["2026-03-10T10:30:20+00:00", "2026-03-10T10:30:40+00:00"]),   # from the last fire
    ("@every 1h30m", ["2026-03-10T12:00:00+00:00", "2026-03-10T13:30:00+00:00"]),
    ("@every 500ms", ["2026-03-10T10:30:01+00:00", "2026-03-10T10:30:02+00:00"]),  # at least 1s
    ("*/20 * * * * *", ["2026-03-10T10:30:20+00:00", "2026-03-10T10:30:40+00:00"]),
    ("0 0 0 ? * mon-fri", ["2026-03-11T00:00:00+00:00", "2026-03-12T00:00:00+00:00"]),
    ("0 0 0 13 * fri", ["2026-03-13T00:00:00+00:00", "2026-03-20T00:00:00+00:00"]),  # both days set: either
    ("0 0 0 */2 * mon", ["2026-03-23T00:00:00+00:00", "2026-04-13T00:00:00+00:00"]),  # a * in one: both
])
def test_descriptors_and_every_next_fires(spec, expected):
    assert fires(spec, datetime(2026, 3, 10, 10, 30, 0, 250000, tzinfo=UTC), 2) == expected


@pytest.mark.parametrize("spec, message", [
    ("0 0 2 * * * *", "Expected 5 to 6 fields, found 7"),
    ("0 60 2 * * *", "End of range (60) above maximum (59): 60"),
    ("0 0 2 * * 7", "End of range (7) above maximum (6): 7"),
    ("0 0 2 0 * *", "Beginning of range (0) below minimum (1): 0"),
    ("0 0 5-2 * * *", "Beginning of range (5) beyond end of range (2): 5-2"),
    ("0 */0 * * * *", "Step of range should be a positive number: */0"),
    ("0 x * * * *", "Failed to parse int from x"),
    ("0 1-2-3 * * * *", "Too many hyphens: 1-2-3"),
    ("@often", "Unrecognized descriptor: @often"),
    ("@every 10", "Failed to parse duration @every 10"),
    ("@every  1h", "Failed to parse duration"),
])
def test_invalid_schedules(spec, message):
    with pytest.raises(standin.ScheduleError, match=re.escape(message)):
        standin.parse_schedule(spec)


def test_tz_is_honoured_and_daylight_saving_as_robfig():
    rome = standin.local_zone({"TZ": "Europe/Rome"})
    assert rome == ZoneInfo("Europe/Rome")
    assert standin.local_zone({"TZ": ""}) == UTC and standin.local_zone({"TZ": "No/Such_Zone"}) == UTC
    # 02:00 in Rome is 01:00 UTC in winter
    assert fires("0 0 2 * * *", datetime(2026, 3, 10, 10, tzinfo=rome), 1) == ["2026-03-11T02:00:00+01:00"]
    # spring forward: 02:00 does not exist on 29 March, skipped; fall back: 02:30 happens twice on 25 October
    assert fires("0 0 2 * * *", datetime(2026, 3, 28, 3, tzinfo=rome), 2) == [
        "2026-03-30T02:00:00+02:00", "2026-03-31T02:00:00+02:00"]
    assert fires("0 30 2 * * *", datetime(2026, 10, 24, 3, tzinfo=rome), 3) == [
        "2026-10-25T02:30:00+02:00", "2026-10-25T02:30:00+01:00", "2026-10-26T02:30:00+01:00"]
    assert fires("0 */20 * * * *", datetime(2026, 10, 25, 2, 50, tzinfo=rome), 3) == [
        "2026-10-25T02:00:00+01:00", "2026-10-25T02:20:00+01:00", "2026-10-25T02:40:00+01:00"]
    # the log's timestamps and save-folder names are in that zone too
    out = io.StringIO()
    standin.Logger(out, rome).log("NOTICE", "x")
    assert out.getvalue()[23:29] in ("+01:00", "+02:00")


# ---------------------------------------------------------------- running the jobs

@pytest.mark.parametrize("command, argv", [
    ("backup --tag data /backup/data", ["backup", "--tag", "data", "/backup/data"]),
    ("sh -c 'a && b'", ["sh", "-c", "a && b"]),
    ('sh -c "a && b" c', ["sh", "-c", "a && b", "c"]),
    ("  spaced\targs  ", ["spaced", "args"]),
    ("a\\ b", ["a b"]),                            # backslash escapes outside quotes
    ("--opt='a b'", ["--opt='a", "b'"]),           # a quote opens a word only at its start
    ("'a'b", ["a", "b"]),
    ("''", [""]),
    ("echo > file", ["echo", "> file"]),           # a word starting with > takes the rest
    ("{a b} c", ["{a b}", "c"]),
    ("", []),
])
def test_argv_split_without_a_shell(command, argv):
    assert standin.split_args(command) == argv


class FakeRun:
    """Records the argv the daemon runs, returns a canned result."""

    def __init__(self, rc=0, delay=0.0):
        self.calls, self.rc, self.delay = [], rc, delay

    def __call__(self, argv, env, cwd=None, argv0=None):
        self.calls.append(argv)
        time.sleep(self.delay)
        return type("Res", (), {"returncode": self.rc, "stdout": b"out\n", "stderr": b""})()


def test_job_exec_runs_docker_exec_with_user_environment_and_argv(tmp_path, monkeypatch):
    config = standin.load_config(
        '[global]\nsave-folder = %s\n[job-exec "backup-www"]\nschedule = @daily\ncontainer = cloud-backup\n'
        'user = user\nenvironment = CLOUD_BACKUP_JOB=backup-www\ncommand = backup --tag \'a b\'\n' % tmp_path)
    fake, out = FakeRun(), io.StringIO()
    monkeypatch.setattr(standin.Daemon, "_run", staticmethod(fake))
    daemon = standin.Daemon(config, standin.Logger(out), UTC, environ={"PATH": "/usr/bin"})
    daemon.execute(config.jobs[0])
    assert fake.calls == [["docker", "exec", "-u", "user", "-e", "CLOUD_BACKUP_JOB=backup-www", "cloud-backup",
                           "backup", "--tag", "a b"]]
    log = out.getvalue()
    assert '[Job "backup-www" (' in log and "Started - backup --tag 'a b'" in log
    assert "failed: false, skipped: false, error: none" in log
    names = sorted(p.name for p in tmp_path.iterdir())
    assert [n.split("_", 2)[2] for n in names] == ["backup-www.json", "backup-www.stderr.log", "backup-www.stdout.log"]
    fake.rc = 3
    daemon.execute(config.jobs[0])
    assert "failed: true, skipped: false, error: error non-zero exit code: 3" in out.getvalue()


def test_no_overlap_skips_a_run_while_the_previous_one_runs(monkeypatch):
    config = standin.load_config('[job-exec "j"]\nschedule = @daily\ncontainer = c\nno-overlap = true\ncommand = x\n')
    fake, out = FakeRun(delay=0.5), io.StringIO()
    monkeypatch.setattr(standin.Daemon, "_run", staticmethod(fake))
    daemon = standin.Daemon(config, standin.Logger(out), UTC, environ={})
    first = threading.Thread(target=daemon.execute, args=(config.jobs[0],))
    first.start()
    time.sleep(0.1)
    daemon.execute(config.jobs[0])
    first.join()
    assert len(fake.calls) == 1
    assert "skipped: true" in out.getvalue() and "skipped: false" in out.getvalue()


def test_job_local_runs_here_without_a_shell(tmp_path):
    config = standin.load_config('[job-local "l"]\nschedule = @daily\ndir = %s\nenvironment = GREETING=hi there\n'
                                 'command = sh -c \'echo "$GREETING" > out.txt; exit 4\'\n' % tmp_path)
    out = io.StringIO()
    # the value is cut at `;` (a gcfg comment): sh gets `echo "$GREETING" > out.txt` and succeeds
    standin.Daemon(config, standin.Logger(out), UTC, environ={"PATH": os.environ["PATH"]}).execute(config.jobs[0])
    assert (tmp_path / "out.txt").read_text() == "hi there\n"
    assert "failed: false" in out.getvalue()


def test_the_daemon_fires_jobs_on_their_schedule(tmp_path):
    config = standin.load_config('[job-local "tick"]\nschedule = @every 1s\ncommand = touch %s/tick\n' % tmp_path)
    out = io.StringIO()
    daemon = standin.Daemon(config, standin.Logger(out), UTC, environ={"PATH": os.environ["PATH"]})
    thread = threading.Thread(target=daemon.run)
    thread.start()
    deadline = time.time() + 10
    while time.time() < deadline and out.getvalue().count("Finished in") < 2:
        time.sleep(0.1)
    daemon.stop.set()
    thread.join(timeout=10)
    assert (tmp_path / "tick").exists() and out.getvalue().count("Finished in") >= 2, out.getvalue()
