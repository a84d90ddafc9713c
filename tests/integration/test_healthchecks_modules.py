"""healthchecks_check, healthchecks_checks and healthchecks_check_info through ansible-playbook.

The real modules run on localhost against the fake Healthchecks server (in this process, on a
loopback port); the fake's request log tells exactly which API calls each run made.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import yaml

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))
from healthchecks_fake import FakeHealthchecks  # noqa: E402

BIN = os.path.dirname(sys.executable)
CHECKS = "/api/v3/checks/"


@pytest.fixture
def hc():
    with FakeHealthchecks() as fake:
        yield fake


def play(tmp_path, hc, module, args, check=False, diff=False, verbosity=0, env=None, connection=True):
    """Run one task of `module` with `args`; return (rc, task result or None, whole output)."""
    if connection:
        args = dict({"api_url": hc.url, "api_key": hc.api_key}, **args)
    playbook = [{"hosts": "localhost", "connection": "local", "gather_facts": False,
                 "vars": {"ansible_python_interpreter": "{{ ansible_playbook_python }}"},
                 "tasks": [{"name": "under test", "infn_cloud.backup." + module: args}]}]
    path = tmp_path / "play.yml"
    path.write_text(yaml.safe_dump(playbook))
    cmd = [os.path.join(BIN, "ansible-playbook"), "-i", "localhost,", str(path)]
    cmd += ["--check"] * check + ["--diff"] * diff + (["-" + "v" * verbosity] if verbosity else [])
    run_env = dict(os.environ, ANSIBLE_LOCALHOST_WARNING="false", ANSIBLE_NOCOLOR="1", **(env or {}))
    if not verbosity:
        run_env["ANSIBLE_STDOUT_CALLBACK"] = "ansible.posix.json"
    proc = subprocess.run(cmd, cwd=tmp_path, env=run_env, capture_output=True, text=True, timeout=180, check=False)
    output = proc.stdout + proc.stderr
    result = None
    if not verbosity:
        doc = json.loads(proc.stdout)
        result = doc["plays"][0]["tasks"][0]["hosts"]["localhost"]
    return proc.returncode, result, output


def writes(hc):
    return [(r["method"], r["path"]) for r in hc.requests() if r["method"] != "GET"]


BACKUP = dict(name="web01-backup-home", tags=["web01", "infn-backup"], schedule="30 2 * * *", tz="Europe/Rome",
              grace=3600, channels=["ops-email"], desc="restic backup of /home")


# ---- healthchecks_check ----------------------------------------------------------------------

def test_single_check_lifecycle(tmp_path, hc):
    rc, res, out = play(tmp_path, hc, "healthchecks_check", BACKUP)
    assert rc == 0 and res["changed"] and res["actions"] == ["create"], out
    [server] = hc.checks()
    assert res["check"]["ping_url"] == server["ping_url"] == hc.ping_endpoint + server["uuid"]
    assert (server["tags"], server["tz"], server["grace"]) == ("web01 infn-backup", "Europe/Rome", 3600)

    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(BACKUP, tags=["infn-backup", "web01"]))
    assert rc == 0 and not res["changed"] and res["actions"] == [], out
    assert writes(hc) == [] and [r["path"] for r in hc.requests()] == [CHECKS, "/api/v3/channels/"]
    assert res["check"]["ping_url"] == server["ping_url"]

    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(BACKUP, grace=7200))
    assert rc == 0 and res["changed"] and res["changed_fields"] == ["grace"], out
    assert writes(hc) == [("POST", CHECKS + server["uuid"])] and hc.checks()[0]["grace"] == 7200

    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(BACKUP, grace=7200, state="paused"))
    assert rc == 0 and res["changed"] and res["actions"] == ["pause"], out
    assert writes(hc) == [("POST", CHECKS + server["uuid"] + "/pause")] and hc.checks()[0]["status"] == "paused"
    hc.clear_requests()
    rc, res, _out = play(tmp_path, hc, "healthchecks_check", dict(BACKUP, grace=7200, state="paused"))
    assert not res["changed"] and writes(hc) == []

    for attempt in range(2):
        hc.clear_requests()
        rc, res, out = play(tmp_path, hc, "healthchecks_check", {"name": BACKUP["name"], "state": "absent"})
        assert rc == 0 and res["changed"] == (attempt == 0) and "check" not in res, out
        assert writes(hc) == ([("DELETE", CHECKS + server["uuid"])] if attempt == 0 else [])
        assert hc.checks() == []


def test_key_slug_and_env_fallback(tmp_path, hc):
    env = {"HEALTHCHECKS_API_URL": hc.url, "HEALTHCHECKS_API_KEY": hc.api_key}
    args = dict(key="slug", slug="web01-prune", name="web01 prune", timeout=86400)
    rc, res, out = play(tmp_path, hc, "healthchecks_check", args, env=env, connection=False)
    assert rc == 0 and res["actions"] == ["create"], out
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(args, name="renamed"), env=env, connection=False)
    assert res["changed_fields"] == ["name"] and [c["name"] for c in hc.checks()] == ["renamed"], out


def test_check_mode_and_diff(tmp_path, hc):
    rc, res, out = play(tmp_path, hc, "healthchecks_check", BACKUP, check=True, diff=True)
    assert rc == 0 and res["changed"] and res["actions"] == ["create"], out
    assert res["diff"]["before"] == {} and res["diff"]["after"]["grace"] == 3600
    assert res["diff"]["after"]["tags"] == ["infn-backup", "web01"]
    assert writes(hc) == [] and hc.checks() == [] and "ping_url" not in res["check"]

    play(tmp_path, hc, "healthchecks_check", BACKUP)
    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(BACKUP, grace=600, state="paused"),
                        check=True, diff=True)
    assert rc == 0 and res["changed"] and res["actions"] == ["update", "pause"], out
    assert (res["diff"]["before"]["grace"], res["diff"]["after"]["grace"]) == (3600, 600)
    assert (res["diff"]["before"]["paused"], res["diff"]["after"]["paused"]) == (False, True)
    assert res["check"]["grace"] == 600 and res["check"]["status"] == "paused"
    assert writes(hc) == [] and hc.checks()[0]["grace"] == 3600 and hc.checks()[0]["status"] == "new"


def test_bad_input_fails_before_any_call(tmp_path, hc):
    for args, message in [(dict(name="a", grace=30), "grace must be an integer from 60 to 31536000"),
                          (dict(name="a", schedule="0 30 2 * * *"), "has 6 fields"),
                          (dict(name="a", timeout=600, schedule="* * * * *"), "mutually exclusive"),
                          (dict(key="slug", name="a"), "slug is required")]:
        rc, res, out = play(tmp_path, hc, "healthchecks_check", args)
        assert rc != 0 and res["failed"] and message in res["msg"], out
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(name="a", channels=["pager"]))
    assert rc != 0 and "channel 'pager' does not exist" in res["msg"], out
    assert writes(hc) == [] and hc.checks() == []


def error_case(hc, case):
    """Arrange the fake for one error case; return (module args, expected status, message parts)."""
    if case == "400":  # an OnCalendar expression: the module leaves those to the server
        return dict(name="a", schedule="every day"), 400, [
            "HTTP 400", "json validation error: schedule is not a valid cron or OnCalendar expression"]
    if case == "401":
        return dict(name="a", api_key="z" * 32), 401, ["HTTP 401", "wrong api key"]
    if case == "403":
        hc.projects[0]["check_limit"] = 0
        return dict(name="a"), 403, ["HTTP 403", "(empty response)", "check limit"]
    if case == "404":
        return dict(name="a", api_url=hc.url + "/no-such-prefix"), 404, ["HTTP 404", "Not Found"]
    if case == "429":
        hc.add_fault(CHECKS, status=429, count=3, headers={"Retry-After": "1"}, body='{"error": "slow down"}')
        return dict(name="a", api_retries=2), 429, ["failed after 3 attempt(s)", "HTTP 429: slow down"]
    if case == "500":
        hc.add_fault(CHECKS, status=500, count=2)
        return dict(name="a", api_retries=1), 500, ["failed after 2 attempt(s)", "HTTP 500: Server Error (500)"]
    if case == "timeout":
        hc.add_fault(CHECKS, delay=3, count=1)
        return dict(name="a", api_timeout=1, api_retries=0), None, ["GET checks/", "timed out after 1 s"]
    hc.add_fault(CHECKS, method="POST", status=301, headers={"Location": "http://elsewhere.example/api/v3/checks/"})
    return dict(name="a"), 301, ["HTTP 301", "redirects are not followed", "api_url"]


@pytest.mark.parametrize("case", ["400", "401", "403", "404", "429", "500", "timeout", "redirect"])
def test_errors_are_clear(tmp_path, hc, case):
    args, status, parts = error_case(hc, case)
    rc, res, out = play(tmp_path, hc, "healthchecks_check", args)
    assert rc != 0 and res["failed"] and res["status"] == status, out
    for part in parts:
        assert part in res["msg"], res["msg"]
    assert hc.api_key not in out and "z" * 32 not in out
    assert hc.checks() == [] and not res["changed"]
    if case == "redirect":  # the POST was not turned into a GET
        assert [r["method"] for r in hc.requests()] == ["GET", "POST"]


def test_retries_recover(tmp_path, hc):
    hc.add_fault(CHECKS, status=429, count=1, headers={"Retry-After": "1"})
    hc.add_fault(CHECKS, method="POST", status=503, count=1)
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(name="a", timeout=600))
    assert rc == 0 and res["changed"], out
    assert [(r["method"], r["status"]) for r in hc.requests()] == [
        ("GET", 429), ("GET", 200), ("POST", 503), ("POST", 201)]
    assert len(hc.checks()) == 1


def test_api_key_never_in_output_at_vvv(tmp_path, hc):
    for args in (BACKUP, dict(BACKUP, grace=10), dict(name="b", schedule="every day")):
        rc, _res, out = play(tmp_path, hc, "healthchecks_check", args, verbosity=3, diff=True)
        assert "under test" in out and hc.api_key not in out
    assert "schedule is not a valid cron or OnCalendar expression" in out
    env = {"HEALTHCHECKS_API_URL": hc.url, "HEALTHCHECKS_API_KEY": hc.api_key}
    rc, _res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=[BACKUP]), env=env, connection=False,
                         verbosity=3)
    assert rc == 0 and hc.api_key not in out


def test_read_only_key_is_refused_by_the_check_module(tmp_path, hc):
    play(tmp_path, hc, "healthchecks_check", dict(name="a"))
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(name="a", grace=120, api_key=hc.api_key_readonly))
    assert rc != 0 and "read-only key" in res["msg"] and hc.api_key_readonly not in out


@pytest.mark.parametrize("version, stored, warned", [("4.3", "Europe/Brussels", True), ("3.13", "CET", False)])
def test_legacy_time_zone_is_written_once(tmp_path, hc, version, stored, warned):
    """Issue 13: tz CET against a server that stores it as Europe/Brussels (v4.3) or as given (v3.13): changed,
    unchanged, unchanged, one write in all; where the server renamed it, one warning per run."""
    hc.version = version
    args = dict(name="web01-backup-home", schedule="30 2 * * *", tz="CET", grace=3600)
    runs = []
    for _run in range(3):
        rc, res, out = play(tmp_path, hc, "healthchecks_check", args, diff=True)
        assert rc == 0, out
        runs.append((res["changed"], res["actions"], len(res.get("warnings", []))))
    assert runs == [(True, ["create"], int(warned)), (False, [], int(warned)), (False, [], int(warned))]
    assert [c["tz"] for c in hc.checks()] == [stored] and writes(hc) == [("POST", CHECKS)]
    if warned:
        assert "tz 'CET' is a legacy alias of the IANA time zone 'Europe/Brussels'" in res["warnings"][0]
        assert res["diff"]["before"]["tz"] == res["diff"]["after"]["tz"] == "Europe/Brussels"
    rc, res, out = play(tmp_path, hc, "healthchecks_check", dict(args, tz="Europe/Rome"))
    assert rc == 0 and res["changed_fields"] == ["tz"] and hc.checks()[0]["tz"] == "Europe/Rome", out


def test_key_of_the_wrong_length_is_refused_before_any_request(tmp_path, hc):
    for module in ("healthchecks_check", "healthchecks_checks", "healthchecks_check_info"):
        args = dict(name="a") if module == "healthchecks_check" else {}
        if module == "healthchecks_checks":
            args = dict(checks=[dict(name="a")])
        rc, res, out = play(tmp_path, hc, module, dict(args, api_key=hc.api_key[:-1]))
        assert rc != 0 and "api_key must be a Healthchecks project API key of 32 characters" in res["msg"], out
        assert "has 31" in res["msg"] and hc.api_key[:-1] not in out and not res["changed"]
    assert hc.requests() == []


# ---- healthchecks_checks (bulk) --------------------------------------------------------------

def fleet(n, **extra):
    return [dict(name="host%02d-backup" % i, tags=["host%02d" % i, "infn-backup"], schedule="%d 2 * * *" % i,
                 tz="Europe/Rome", grace=3600, channels=["ops-email"], **extra) for i in range(n)]


def test_bulk_30_checks_then_a_cheap_rerun(tmp_path, hc):
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=fleet(30)))
    assert rc == 0 and res["changed"], out
    assert len(hc.checks()) == 30 and len(res["checks"]) == 30
    assert [r["actions"] for r in res["results"]] == [["create"]] * 30
    assert res["checks"]["host07-backup"]["ping_url"] == next(
        c["ping_url"] for c in hc.checks() if c["name"] == "host07-backup")
    assert len(hc.requests()) == 32 == res["api_requests"]  # list + channels + 30 creates

    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=fleet(30)))
    assert rc == 0 and not res["changed"], out
    assert writes(hc) == [] and len(hc.requests()) <= 31 and res["api_requests"] == len(hc.requests())
    assert all(r["status"] == 200 for r in hc.requests())  # no redirects, no errors
    assert all(c["ping_url"] for c in res["checks"].values())

    hc.clear_requests()
    checks = fleet(30)
    checks[4]["grace"] = 7200
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=checks), diff=True)
    assert rc == 0 and res["changed"], out
    uuid4 = res["checks"]["host04-backup"]["uuid"]
    assert writes(hc) == [("POST", CHECKS + uuid4)]
    assert [r["name"] for r in res["results"] if r["changed"]] == ["host04-backup"]
    assert res["diff"] == {"before": {"host04-backup": dict(res["diff"]["before"]["host04-backup"], grace=3600)},
                           "after": {"host04-backup": dict(res["diff"]["before"]["host04-backup"], grace=7200)}}


def test_bulk_orphans_are_paused_then_removed(tmp_path, hc):
    tags = ["web01", "infn-backup"]
    checks = [dict(name="web01-" + s, tags=tags, timeout=86400) for s in ("home", "etc", "srv")]
    play(tmp_path, hc, "healthchecks_checks", dict(checks=checks + [dict(name="web02-home", tags=["web02",
                                                                                                  "infn-backup"])]))
    hc.add_check(name="web01-manual", tags="web01")  # not all orphan tags: never touched
    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=checks[:1], orphan_tags=tags,
                                                                  orphan_state="paused"), check=True)
    assert rc == 0 and res["changed"] and writes(hc) == [], out
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=checks[:1], orphan_tags=tags,
                                                                  orphan_state="paused"))
    assert rc == 0 and sorted((r["name"], r["orphan"], tuple(r["actions"])) for r in res["results"]) == [
        ("web01-etc", True, ("pause",)), ("web01-home", False, ()), ("web01-srv", True, ("pause",))], out
    assert list(res["checks"]) == ["web01-home"]
    assert {c["name"]: c["status"] for c in hc.checks()} == {
        "web01-home": "new", "web01-etc": "paused", "web01-srv": "paused", "web02-home": "new", "web01-manual": "new"}
    hc.clear_requests()
    orphans = dict(checks=checks[:1], orphan_tags=tags)
    rc, res, _out = play(tmp_path, hc, "healthchecks_checks", dict(orphans, orphan_state="paused"))
    assert not res["changed"] and writes(hc) == []
    rc, res, _out = play(tmp_path, hc, "healthchecks_checks", dict(orphans, orphan_state="absent"))
    assert res["changed"] and sorted(c["name"] for c in hc.checks()) == ["web01-home", "web01-manual", "web02-home"]


def test_bulk_active_resumes_an_orphan_put_back(tmp_path, hc):
    """Issue 17: a source removed from the inventory had its check paused as an orphan; put back with state active,
    check mode and diff mode predict the resume, the run resumes it (one write), a rerun writes nothing."""
    tags = ["web01", "infn-backup"]
    checks = [dict(name="web01-" + s, tags=tags, timeout=86400, state="active") for s in ("home", "etc")]
    bulk = dict(orphan_tags=tags, orphan_state="paused")
    play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=checks))
    play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=checks[:1]))  # etc removed: paused
    assert {c["name"]: c["status"] for c in hc.checks()} == {"web01-home": "new", "web01-etc": "paused"}
    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=checks), check=True, diff=True)
    assert rc == 0 and res["changed"] and writes(hc) == [], out
    assert [(r["name"], r["actions"]) for r in res["results"]] == [("web01-home", []), ("web01-etc", ["resume"])]
    assert res["diff"] == {"before": {"web01-etc": {"name": "web01-etc", "tags": tags[::-1], "timeout": 86400, "paused": True}},
                           "after": {"web01-etc": {"name": "web01-etc", "tags": tags[::-1], "timeout": 86400, "paused": False}}}
    assert res["checks"]["web01-etc"]["status"] == "new"
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=checks))
    assert rc == 0 and res["changed"] and [r["actions"] for r in res["results"]] == [[], ["resume"]], out
    etc = [c for c in hc.checks() if c["name"] == "web01-etc"][0]
    assert etc["status"] == "new" and writes(hc) == [("POST", CHECKS + etc["uuid"] + "/resume")]
    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=checks))
    assert rc == 0 and not res["changed"] and writes(hc) == [], out
    # kept paused on purpose: state paused is honoured, and present leaves the pause alone
    kept = [checks[0], dict(checks[1], state="paused")]
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=kept))
    assert res["changed"] and [r["actions"] for r in res["results"]] == [[], ["pause"]], out
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(bulk, checks=[checks[0], dict(checks[1], state="present")]))
    assert not res["changed"] and {c["name"]: c["status"] for c in hc.checks()}["web01-etc"] == "paused", out


def test_bulk_entry_states_and_validation(tmp_path, hc):
    checks = [dict(name="a", timeout=600), dict(name="b", timeout=600, state="paused"), dict(name="c", state="absent")]
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=checks))
    assert rc == 0 and [r["actions"] for r in res["results"]] == [["create"], ["create", "pause"], []], out
    assert sorted(res["checks"]) == ["a", "b"]
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=[dict(name="a", timeout=600),
                                                                          dict(name="x", grace=5)]))
    assert rc != 0 and "checks[1] (x): grace must be" in res["msg"], out
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=checks, orphan_state="absent"))
    assert rc != 0 and "orphan_tags must name at least one tag" in res["msg"], out
    assert len(hc.checks()) == 2


@pytest.mark.parametrize("bad, field", [(dict(tz="Factory"), "tz 'Factory' is not a time zone Healthchecks accepts"),
                                        (dict(tz="localtime"), "tz 'localtime' is not a time zone Healthchecks"),
                                        (dict(channels=["0b1f0d3e-5c3a-4f3e-9d59-2f1f6c0d9e11"]),
                                         "channels: channel '0b1f0d3e-5c3a-4f3e-9d59-2f1f6c0d9e11' does not exist")])
def test_bulk_of_three_new_checks_whose_second_is_bad_creates_nothing(tmp_path, hc, bad, field):
    """Issue 13: a zone Python knows and the server refuses, or an unknown channel UUID, fails before any write."""
    email = next(c["id"] for c in hc.projects[0]["channels"] if c["name"] == "ops-email")
    checks = [dict(name=n, schedule="0 2 * * *", tz="Europe/Rome", channels=[email]) for n in ("a", "b", "c")]
    checks[1].update(bad)
    rc, res, out = play(tmp_path, hc, "healthchecks_checks", dict(checks=checks))
    assert rc != 0 and res["failed"] and not res["changed"], out
    assert "checks[1] (b): " + field in res["msg"], res["msg"]
    assert hc.checks() == [] and writes(hc) == [] and res["results"] == []


# ---- healthchecks_check_info ----------------------------------------------------------------

def test_info_with_read_only_key(tmp_path, hc):
    play(tmp_path, hc, "healthchecks_checks", dict(checks=fleet(3) + [dict(name="other", slug="other-slug")]))
    hc.clear_requests()
    rc, res, out = play(tmp_path, hc, "healthchecks_check_info", dict(api_key=hc.api_key_readonly,
                                                                      tags=["infn-backup"]))
    assert rc == 0 and not res["changed"] and len(res["checks"]) == 3, out
    assert all("unique_key" in c and "uuid" not in c and "ping_url" not in c for c in res["checks"])
    assert [(r["method"], r["path"]) for r in hc.requests()] == [("GET", CHECKS + "?tag=infn-backup")]
    rc, res, _out = play(tmp_path, hc, "healthchecks_check_info", dict(name="host01-backup"))
    assert [c["name"] for c in res["checks"]] == ["host01-backup"] and "ping_url" in res["checks"][0]
    rc, res, _out = play(tmp_path, hc, "healthchecks_check_info", dict(slug="other-slug"))
    assert [c["name"] for c in res["checks"]] == ["other"]
    rc, res, _out = play(tmp_path, hc, "healthchecks_check_info", dict(tags=["host02", "infn-backup"], name="nope"))
    assert res["checks"] == []


def test_info_401_does_not_ask_for_a_read_write_key(tmp_path, hc):
    """Issue 13: the info module works with a read-only key: its 401 must not say a read-write one is needed."""
    rc, res, out = play(tmp_path, hc, "healthchecks_check_info", dict(api_key="z" * 32))
    assert rc != 0 and res["status"] == 401 and "wrong api key" in res["msg"], out
    assert "read-write" not in res["msg"] and "the project's read-only key is enough" in res["msg"], res["msg"]
