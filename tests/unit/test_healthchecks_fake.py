"""The fake Healthchecks server against the facts of shared/REFERENCE.md section 1.

Every request goes through raw http.client (no redirect following, no client code under test), so
what is asserted is exactly what the fake answers on the wire.
"""
from __future__ import annotations

import glob
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import uuid

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))
from healthchecks_fake import FakeHealthchecks  # noqa: E402

FAKE = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes", "healthchecks_fake.py")
API = "/api/v3/"


@pytest.fixture
def hc():
    with FakeHealthchecks({"ping_body_limit": 100}) as fake:
        yield fake


def call(hc, method, path, body=None, key="rw", headers=None, raw=None):
    """One request; returns (status, headers, decoded JSON or text)."""
    conn = http.client.HTTPConnection(*hc.server.server_address[:2], timeout=10)
    hdrs = dict(headers or {})
    if key:
        hdrs["X-Api-Key"] = {"rw": hc.api_key, "ro": hc.api_key_readonly}.get(key, key)
    data = raw if raw is not None else (None if body is None else json.dumps(body).encode())
    conn.request(method, path, body=data, headers=hdrs)
    resp = conn.getresponse()
    text = resp.read().decode()
    conn.close()
    try:
        return resp.status, resp.headers, json.loads(text)
    except ValueError:
        return resp.status, resp.headers, text


def create(hc, **fields):
    status, _hdrs, doc = call(hc, "POST", API + "checks/", fields)
    assert status == 201, doc
    return doc


# ---- keys ------------------------------------------------------------------------------------

@pytest.mark.parametrize("key, message", [(None, "missing api key"), ("short", "missing api key"),
                                          ("x" * 32, "wrong api key")])
def test_bad_keys_are_401_with_the_servers_message(hc, key, message):
    status, _hdrs, doc = call(hc, "GET", API + "checks/", key=key)
    assert (status, doc) == (401, {"error": message})


def test_key_in_json_body_is_accepted_for_post(hc):
    status, _hdrs, doc = call(hc, "POST", API + "checks/", {"name": "a", "api_key": hc.api_key}, key=None)
    assert status == 201 and doc["name"] == "a"


def test_read_only_key_reads_without_secrets_and_cannot_write(hc):
    code = create(hc, name="a", channels="*")["uuid"]
    status, _hdrs, doc = call(hc, "GET", API + "checks/", key="ro")
    assert status == 200
    check = doc["checks"][0]
    assert "unique_key" in check and len(check["unique_key"]) == 40
    for field in ("uuid", "ping_url", "update_url", "pause_url", "resume_url", "channels"):
        assert field not in check
    assert call(hc, "GET", API + "checks/" + check["unique_key"], key="ro")[2]["name"] == "a"
    assert call(hc, "GET", API + "checks/" + code, key="ro")[2]["unique_key"] == check["unique_key"]
    for method, path, body in [("POST", "checks/", {"name": "b"}), ("POST", "checks/" + code, {"name": "b"}),
                               ("POST", "checks/%s/pause" % code, None), ("DELETE", "checks/" + code, None),
                               ("GET", "channels/", None), ("GET", "checks/%s/pings/" % code, None)]:
        assert call(hc, method, API + path, body, key="ro")[:3:2] == (401, {"error": "wrong api key"}), path
    assert [c["name"] for c in hc.checks()] == ["a"]


# ---- endpoints and status codes ------------------------------------------------------------

def test_trailing_slash_rules(hc):
    code = create(hc, name="a")["uuid"]
    for method in ("GET", "POST"):
        status, headers, body = call(hc, method, API + "checks", {"name": "lost"} if method == "POST" else None)
        assert (status, headers["Location"], body) == (301, API + "checks/", "")
    assert call(hc, "GET", API + "channels")[0] == 301
    status, _hdrs, body = call(hc, "GET", API + "checks/%s/" % code)
    assert status == 404 and "<h1>Not Found</h1>" in body
    assert [c["name"] for c in hc.checks()] == ["a"]  # the redirected POST created nothing


def test_other_projects_check_is_403_with_empty_body():
    with FakeHealthchecks({"projects": [{}, {"name": "other"}]}) as hc:
        theirs = hc.add_check(project=1, name="theirs")
        for method in ("GET", "POST", "DELETE"):
            status, _hdrs, body = call(hc, method, API + "checks/" + theirs, {} if method == "POST" else None)
            assert (status, body) == (403, ""), method
        assert call(hc, "POST", API + "checks/%s/pause" % theirs)[:3:2] == (403, "")
        assert hc.checks(project=1)[0]["name"] == "theirs"


def test_get_update_delete_status_codes(hc):
    code = create(hc, name="a")["uuid"]
    unknown = str(uuid.uuid4())
    for method in ("GET", "POST", "DELETE"):
        status, headers, body = call(hc, method, API + "checks/" + unknown, {} if method == "POST" else None)
        assert status == 404 and headers["Content-Type"].startswith("text/html") and "Not Found" in body
    for method in ("PUT", "PATCH"):
        assert call(hc, method, API + "checks/" + code, {})[:3:2] == (405, "")
        assert call(hc, method, API + "checks/", {})[0] == 405
    status, _hdrs, doc = call(hc, "GET", API + "checks/" + code)
    assert status == 200 and doc["uuid"] == code


def test_list_filters_by_exact_tags_and_slug(hc):
    create(hc, name="a", tags="web01 backup", slug="a")
    create(hc, name="b", tags="web01 prune")
    create(hc, name="c", tags="web011 backup")

    def names(query):
        return sorted(c["name"] for c in call(hc, "GET", API + "checks/" + query)[2]["checks"])

    assert names("?tag=web01") == ["a", "b"]
    assert names("?tag=web01&tag=backup") == ["a"]
    assert names("?slug=a") == ["a"]
    assert names("") == ["a", "b", "c"]


def test_delete_returns_the_check_then_404(hc):
    code = create(hc, name="gone")["uuid"]
    status, _hdrs, doc = call(hc, "DELETE", API + "checks/" + code)
    assert status == 200 and doc["name"] == "gone" and doc["uuid"] == code
    assert call(hc, "DELETE", API + "checks/" + code)[0] == 404


def test_pause_and_resume(hc):
    code = create(hc, name="a")["uuid"]
    status, _hdrs, body = call(hc, "POST", API + "checks/%s/resume" % code)
    assert (status, body) == (409, "check is not paused")
    assert call(hc, "POST", API + "checks/%s/pause" % code)[2]["status"] == "paused"
    assert call(hc, "POST", API + "checks/%s/pause" % code)[2]["status"] == "paused"
    assert call(hc, "POST", API + "checks/%s/resume" % code)[2]["status"] == "new"


def test_check_limit_is_403_with_empty_body(hc):
    hc.projects[0]["check_limit"] = 1
    create(hc, name="a")
    assert call(hc, "POST", API + "checks/", {"name": "b"})[:3:2] == (403, "")
    # an upsert that matches an existing check is not a new check
    assert call(hc, "POST", API + "checks/", {"name": "a", "unique": ["name"], "grace": 120})[0] == 200


# ---- validation ------------------------------------------------------------------------------

@pytest.mark.parametrize("body, message", [
    ({"grace": 59}, "grace is too small"),
    ({"timeout": 31536001}, "timeout is too large"),
    ({"timeout": "60"}, "timeout is not a number"),
    ({"timeout": 60.0}, "timeout is not a number"),
    ({"tz": "Mars/Olympus", "schedule": "* * * * *"}, "tz is not a valid timezone"),
    ({"schedule": "61 * * * *"}, "schedule is not a valid cron or OnCalendar expression"),
    ({"schedule": "0 0 2 * * *"}, "schedule is not a valid cron or OnCalendar expression"),
    ({"name": "x" * 101}, "name is too long"),
    ({"slug": "Bad Slug"}, "slug does not match pattern"),
    ({"methods": "GET"}, "methods has unexpected value"),
    ({"manual_resume": "yes"}, "manual_resume is not a boolean"),
    ({"tags": ["a", "b"]}, "tags is not a string"),
    ({"name": None}, "name is not a string"),
    ({"grace": None}, "grace is not a number"),
    ({"methods": None}, "methods has unexpected value"),
    ({"unique": "name"}, "unique is not an array"),
    ({"timeout": 1, "grace": 1}, "grace is too small"),  # the first field in the server's order wins
])
def test_validation_errors_have_the_servers_shape(hc, body, message):
    status, _hdrs, doc = call(hc, "POST", API + "checks/", body)
    assert (status, doc) == (400, {"error": "json validation error: " + message})
    assert hc.checks() == []


def test_body_errors(hc):
    assert call(hc, "POST", API + "checks/", raw=b"{nope")[:3:2] == (400, {"error": "could not parse request body"})
    assert call(hc, "POST", API + "checks/", raw=b"[1]")[2] == {"error": "json validation error: value is not an object"}
    assert call(hc, "POST", API + "checks/", {"unique": ["uuid"]})[2] == {
        "error": "json validation error: an item in 'unique' has unexpected value"}
    assert create(hc, name="a", colour="blue")["name"] == "a"  # unknown fields are ignored


def test_bad_channel_is_400_and_saves_nothing(hc):
    status, _hdrs, doc = call(hc, "POST", API + "checks/", {"name": "a", "channels": "ops-email,nope"})
    assert (status, doc) == (400, {"error": "invalid channel identifier: nope"})
    assert hc.checks() == []
    code = create(hc, name="a", grace=120)["uuid"]
    status, _hdrs, doc = call(hc, "POST", API + "checks/" + code, {"grace": 600, "channels": "nope"})
    assert status == 400 and hc.checks()[0]["grace"] == 120


@pytest.mark.parametrize("version", ["4.3", "3.13"])
@pytest.mark.parametrize("tz", ["Factory", "localtime", "posixrules", "posix/Europe/Rome"])
def test_names_of_the_tz_database_that_are_no_zone_are_refused(hc, version, tz):
    """Issue 13: Python's zoneinfo lists Factory and localtime; the server refuses them."""
    hc.version = version
    status, _hdrs, doc = call(hc, "POST", API + "checks/", {"name": "a", "schedule": "* * * * *", "tz": tz})
    assert (status, doc) == (400, {"error": "json validation error: tz is not a valid timezone"})
    assert hc.checks() == []


# ---- semantics -------------------------------------------------------------------------------

def test_channels_all_none_names_and_uuids(hc):
    ids = sorted(c["id"] for c in hc.projects[0]["channels"])
    email = next(c["id"] for c in hc.projects[0]["channels"] if c["name"] == "ops-email")
    assert create(hc, name="all", channels="*")["channels"] == ",".join(ids)
    assert create(hc, name="default")["channels"] == ""
    assert create(hc, name="by-name", channels="ops-email")["channels"] == email
    assert create(hc, name="by-id", channels=",".join(ids))["channels"] == ",".join(ids)
    code = create(hc, name="none", channels="*")["uuid"]
    assert call(hc, "POST", API + "checks/" + code, {"channels": ""})[2]["channels"] == ""
    status, _hdrs, doc = call(hc, "GET", API + "channels/")
    assert status == 200 and sorted(c["name"] for c in doc["channels"]) == ["ops-email", "ops-slack"]
    assert set(doc["channels"][0]) == {"id", "name", "kind"}


@pytest.mark.parametrize("legacy, stored_v4, stored_v3", [
    ("CET", "Europe/Brussels", "CET"),
    ("US/Eastern", "America/New_York", "US/Eastern"),
    ("America/Buenos_Aires", "America/Argentina/Buenos_Aires", "America/Buenos_Aires"),
    ("EST5EDT", "America/New_York", "EST5EDT"),
    ("Asia/Calcutta", "Asia/Kolkata", "Asia/Kolkata"),
    ("Europe/Kiev", "Europe/Kyiv", "Europe/Kyiv"),
    ("UTC", "UTC", "UTC"),
    ("GMT", "GMT", "GMT"),
    ("Etc/UTC", "Etc/UTC", "Etc/UTC"),
    ("Europe/Rome", "Europe/Rome", "Europe/Rome"),
    ("Europe/Amsterdam", "Europe/Amsterdam", "Europe/Amsterdam"),
])
def test_legacy_time_zones_are_stored_as_each_version_does(hc, legacy, stored_v4, stored_v3):
    """Issue 13: v4.3 stores a legacy name under the zone it links to; v3.13 keeps it but for a few renamed zones."""
    assert hc.version == "4.3"
    assert create(hc, name="v4", schedule="0 2 * * *", tz=legacy)["tz"] == stored_v4
    status, _hdrs, doc = call(hc, "POST", "/_admin/version", {"version": "3.13"}, key=None)
    assert status == 200 and hc.version == "3.13"
    assert create(hc, name="v3", schedule="0 2 * * *", tz=legacy)["tz"] == stored_v3


def test_the_v4_table_follows_the_iana_links():
    from healthchecks_fake import IANA_LEGACY_LINKS, LEGACY_TZ
    v4, v3 = LEGACY_TZ["4.3"], LEGACY_TZ["3.13"]
    assert len(IANA_LEGACY_LINKS) == 151 and len(v4) == 135 and len(v3) == 9
    assert all(target not in IANA_LEGACY_LINKS for target in IANA_LEGACY_LINKS.values())  # one hop to the zone
    assert not any(target.startswith("Etc/") for target in v4.values()) and "UTC" not in v4 and "GMT" not in v4
    assert {k: v4[k] for k in ("CET", "US/Eastern", "America/Buenos_Aires", "Europe/Kiev")} == {
        "CET": "Europe/Brussels", "US/Eastern": "America/New_York",
        "America/Buenos_Aires": "America/Argentina/Buenos_Aires", "Europe/Kiev": "Europe/Kyiv"}
    assert set(v3) < set(v4) and all(v4[k] == v for k, v in v3.items())
    with pytest.raises(ValueError, match="version must be one of 4.3, 3.13"):
        FakeHealthchecks({"version": "5.0"})


def test_schedule_wins_over_timeout_and_tz_aliases_are_rewritten(hc):
    check = create(hc, name="a", schedule="30 2 * * *", timeout=3600, tz="Europe/Kiev")
    assert check["schedule"] == "30 2 * * *" and check["tz"] == "Europe/Kyiv" and "timeout" not in check
    simple = create(hc, name="b", timeout=3600, tz="Europe/Rome")
    assert simple["timeout"] == 3600 and "tz" not in simple and "schedule" not in simple
    # the tz of a simple check is stored, not echoed: switching to cron shows it
    assert call(hc, "POST", API + "checks/" + simple["uuid"], {"schedule": "0 1 * * *"})[2]["tz"] == "Europe/Rome"
    oncal = create(hc, name="c", schedule="Mon..Fri *-*-* 02:00")
    assert oncal["schedule"] == "Mon..Fri *-*-* 02:00"


def test_update_writes_only_the_keys_sent(hc):
    check = create(hc, name="a", tags="x y", desc="keep me", grace=120)
    status, _hdrs, doc = call(hc, "POST", API + "checks/" + check["uuid"], {"grace": 300})
    assert status == 200 and (doc["grace"], doc["tags"], doc["desc"], doc["name"]) == (300, "x y", "keep me", "a")


def test_unique_upsert_and_its_trap(hc):
    first = create(hc, name="a", grace=120)
    status, _hdrs, doc = call(hc, "POST", API + "checks/", {"name": "a", "unique": ["name"], "grace": 600, "tags": "t"})
    assert status == 200 and doc["uuid"] == first["uuid"] and (doc["grace"], doc["tags"]) == (600, "t")
    # a field named in unique but absent from the request: no lookup, a duplicate every time
    status, _hdrs, doc = call(hc, "POST", API + "checks/", {"name": "a", "unique": ["slug"]})
    assert status == 201 and doc["uuid"] != first["uuid"]
    # several matches: still 200 on one of them, never 409
    assert call(hc, "POST", API + "checks/", {"name": "a", "unique": ["name"]})[0] == 200
    assert len(hc.checks()) == 2


def test_response_fields(hc):
    check = create(hc, name="a", timeout=3600)
    for field in ("name", "slug", "tags", "desc", "grace", "n_pings", "status", "started", "last_ping", "next_ping",
                  "manual_resume", "methods", "start_kw", "success_kw", "failure_kw", "filter_subject",
                  "filter_body", "badge_url", "uuid", "ping_url", "update_url", "pause_url", "resume_url",
                  "channels", "timeout"):
        assert field in check, field
    assert check["ping_url"] == hc.ping_endpoint + check["uuid"] and check["status"] == "new"


# ---- pings -----------------------------------------------------------------------------------

def ping(hc, path, method="GET", body=None):
    return call(hc, method, "/ping/" + path, key=None, raw=body)


def status_of(hc, code):
    return call(hc, "GET", API + "checks/" + code)[2]


def test_pings_move_the_status(hc):
    code = create(hc, name="a", timeout=3600)["uuid"]
    status, headers, body = ping(hc, code)
    assert (status, body, headers["Ping-Body-Limit"]) == (200, "OK", "100")
    assert status_of(hc, code)["status"] == "up"
    ping(hc, code + "/start")
    assert status_of(hc, code)["started"] is True
    ping(hc, code + "/fail")
    assert status_of(hc, code)["status"] == "down" and status_of(hc, code)["started"] is False
    ping(hc, code + "/0")
    assert status_of(hc, code)["status"] == "up"
    ping(hc, code + "/3")
    assert status_of(hc, code)["status"] == "down"
    ping(hc, code + "/log", "POST", b"just a log line")
    assert status_of(hc, code)["status"] == "down"
    assert ping(hc, code + "/256")[:3:2] == (400, "invalid url format")
    assert ping(hc, code + "?rid=nope")[:3:2] == (400, "invalid uuid format")
    assert ping(hc, str(uuid.uuid4()))[:3:2] == (404, "not found")
    assert status_of(hc, code)["n_pings"] == 6


def test_pings_are_listed_newest_first_with_bodies_up_to_the_limit(hc):
    code = create(hc, name="a")["uuid"]
    rid = str(uuid.uuid4())
    ping(hc, code + "/start?rid=" + rid)
    ping(hc, code + "?rid=" + rid, "POST", b"x" * 150)
    status, _hdrs, doc = call(hc, "GET", API + "checks/%s/pings/" % code)
    assert status == 200 and [p["type"] for p in doc["pings"]] == ["success", "start"]
    assert doc["pings"][0]["rid"] == rid and doc["pings"][0]["n"] == 2
    body_path = doc["pings"][0]["body_url"].split(hc.site_root, 1)[1]
    assert call(hc, "GET", body_path)[2] == "x" * 100
    pings = call(hc, "GET", "/_admin/pings", key=None)[2]["pings"]
    assert [(p["check"], p["type"], len(p["body"])) for p in pings] == [("a", "start", 0), ("a", "success", 100)]


def test_paused_check_resumes_on_ping_unless_manual_resume(hc):
    auto = create(hc, name="auto")["uuid"]
    manual = create(hc, name="manual", manual_resume=True)["uuid"]
    for code in (auto, manual):
        call(hc, "POST", API + "checks/%s/pause" % code)
        ping(hc, code)
    assert status_of(hc, auto)["status"] == "up"
    assert status_of(hc, manual)["status"] == "paused"


def test_post_only_checks_ignore_get_pings(hc):
    code = create(hc, name="a", methods="POST")["uuid"]
    ping(hc, code)
    assert status_of(hc, code)["status"] == "new"
    ping(hc, code, "POST", b"")
    assert status_of(hc, code)["status"] == "up"


def test_slug_pings_and_auto_create(hc):
    key = hc.projects[0]["ping_key"]
    assert ping(hc, "%s/nightly" % key)[:3:2] == (404, "not found")
    assert ping(hc, "%s/nightly?create=1" % key)[:3:2] == (201, "Created")
    assert ping(hc, "%s/nightly/fail" % key)[0] == 200
    assert [(c["slug"], c["status"]) for c in hc.checks()] == [("nightly", "down")]
    assert all(key not in r["path"] for r in hc.requests("/"))  # the log redacts ping keys


# ---- fault injection, request log, standalone -------------------------------------------------

def test_fault_injection_and_request_log(hc):
    hc.add_fault(API + "checks/", status=429, count=2, headers={"Retry-After": "7"})
    hc.add_fault(API + "channels/", status=500)
    for _attempt in range(2):
        status, headers, _body = call(hc, "GET", API + "checks/")
        assert (status, headers["Retry-After"]) == (429, "7")
    assert call(hc, "GET", API + "checks/")[0] == 200
    status, _hdrs, body = call(hc, "GET", API + "channels/")
    assert status == 500 and "Server Error (500)" in body
    hc.add_fault(API + "checks/", delay=0.5)
    started = time.monotonic()
    assert call(hc, "GET", API + "checks/")[0] == 200 and time.monotonic() - started >= 0.5
    log = call(hc, "GET", "/_admin/requests", key=None)[2]["requests"]
    assert [(r["method"], r["path"], r["status"]) for r in log] == [
        ("GET", API + "checks/", 429), ("GET", API + "checks/", 429), ("GET", API + "checks/", 200),
        ("GET", API + "channels/", 500), ("GET", API + "checks/", 200)]
    assert hc.api_key not in json.dumps(log)
    assert call(hc, "DELETE", "/_admin/requests", key=None)[0] == 200 and hc.requests() == []
    call(hc, "POST", "/_admin/faults", {"path": API + "checks/*", "status": 503, "count": 1}, key=None)
    assert call(hc, "GET", API + "checks/?tag=x")[0] == 503


def test_the_request_log_names_the_check_each_request_is_about():
    """Several clients share the lab's server: a reader of the log picks the requests about its own checks."""
    with FakeHealthchecks() as hc:
        created = call(hc, "POST", API + "checks/", {"name": "web01-backup", "tags": "host-web01"})[2]
        code = created["uuid"]
        call(hc, "POST", API + "checks/", {"name": "web02-backup", "unique": ["name"]})
        call(hc, "GET", API + "checks/?tag=host-web01")
        call(hc, "POST", API + "checks/%s" % code, {"grace": 120})
        call(hc, "POST", API + "checks/%s/pause" % code)
        call(hc, "GET", API + "channels/")
        call(hc, "DELETE", API + "checks/%s" % code)
        call(hc, "POST", API + "checks/%s/resume" % code)  # gone: nothing to name
        call(hc, "POST", API + "checks/", "not json")
        assert [(r["method"], r["path"].split("?")[0].replace(code, "<uuid>"), r["status"], r["check"])
                for r in hc.requests()] == [
            ("POST", API + "checks/", 201, "web01-backup"), ("POST", API + "checks/", 201, "web02-backup"),
            ("GET", API + "checks/", 200, None), ("POST", API + "checks/<uuid>", 200, "web01-backup"),
            ("POST", API + "checks/<uuid>/pause", 200, "web01-backup"), ("GET", API + "channels/", 200, None),
            ("DELETE", API + "checks/<uuid>", 200, "web01-backup"), ("POST", API + "checks/<uuid>/resume", 404, None),
            ("POST", API + "checks/", 400, None)]


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def interpreters():
    """This Python, plus a Python 3.13 (the lab image's) when one is installed here."""
    found = [sys.executable]
    for candidate in [shutil.which("python3.13")] + sorted(glob.glob(os.path.expanduser("~/.pyenv/versions/3.13*/bin/python3"))):
        probe = [candidate, "-c", "import sys; assert sys.version_info[:2] == (3, 13)"]
        if candidate and subprocess.run(probe, capture_output=True, check=False).returncode == 0:
            found.append(candidate)
            break
    return found


@pytest.mark.parametrize("python", interpreters())
def test_standalone_process_with_config(tmp_path, python):
    key = "k" * 32
    channel = str(uuid.uuid4())
    config = tmp_path / "cfg.json"
    config.write_text(json.dumps({"site_root": "http://hc.lab:8000", "ping_endpoint": "http://hc.lab:8000/ping/",
                                  "projects": [{"name": "lab", "api_key": key, "api_key_readonly": "r" * 32,
                                                "channels": [{"id": channel, "name": "mail", "kind": "email"}]}]}))
    port = free_port()
    proc = subprocess.Popen([python, FAKE, "--host", "127.0.0.1", "--port", str(port), "--config", str(config)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert "fake Healthchecks on http://127.0.0.1:%d" % port in proc.stdout.readline()
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        conn.request("POST", API + "checks/", json.dumps({"name": "x", "channels": "mail"}), {"X-Api-Key": key})
        doc = json.loads(conn.getresponse().read())
        assert doc["ping_url"] == "http://hc.lab:8000/ping/" + doc["uuid"] and doc["channels"] == channel
        conn.request("GET", "/_admin/requests")
        assert json.loads(conn.getresponse().read())["requests"] == [
            {"method": "POST", "path": API + "checks/", "status": 201, "check": "x"}]
    finally:
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
