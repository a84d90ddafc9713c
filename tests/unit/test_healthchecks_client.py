"""module_utils/_healthchecks.py against the in-process fake Healthchecks server on port 0.

The client talks real HTTP to the fake; sleeps are recorded instead of slept, so backoff and
Retry-After are asserted without waiting.
"""
from __future__ import annotations

import os
import socket
import sys
import time

import pytest

from ansible_collections.infn_cloud.backup.plugins.module_utils._healthchecks import (
    CheckManager, HealthchecksClient, HealthchecksError, HealthchecksValidationError, _retry_after, api_base,
    same_zone, schedule_error, tz_error, validate_check)

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "fakes"))
from healthchecks_fake import IANA_LEGACY_LINKS, FakeHealthchecks  # noqa: E402

CHECKS = "/api/v3/checks/"


@pytest.fixture
def hc():
    with FakeHealthchecks() as fake:
        yield fake


def client(hc, key=None, **kw):
    sleeps = []
    kw.setdefault("timeout", 5)
    c = HealthchecksClient(hc.url, key or hc.api_key, sleep=sleeps.append, **kw)
    c.sleeps = sleeps
    return c


def error_of(call, *args):
    with pytest.raises(HealthchecksError) as info:
        call(*args)
    return info.value


# ---- URL, basic calls --------------------------------------------------------------------------

@pytest.mark.parametrize("url, base", [
    ("https://hc.cloud.infn.it", "https://hc.cloud.infn.it/api/v3/"),
    ("https://healthchecks.io/", "https://healthchecks.io/api/v3/"),
    ("https://example.org/hc", "https://example.org/hc/api/v3/"),
    ("https://example.org/hc/api/v3/", "https://example.org/hc/api/v3/"),
    ("http://127.0.0.1:8000/api/v1", "http://127.0.0.1:8000/api/v3/"),
])
def test_api_base(url, base):
    assert api_base(url) == base


@pytest.mark.parametrize("url", ["hc.cloud.infn.it", "ftp://x", "", None])
def test_api_base_rejects_non_http_urls(url):
    with pytest.raises(HealthchecksValidationError, match="api_url"):
        api_base(url)


def test_calls_use_the_right_urls_and_count_requests(hc):
    c = client(hc)
    created = c.create_check({"name": "a", "tags": "x y"})
    assert c.list_checks(tags=["x", "y"])[0]["uuid"] == created["uuid"]
    assert c.list_checks(tags=["z"]) == []
    assert c.update_check(created["uuid"], {"grace": 120})["grace"] == 120
    assert c.get_check(created["uuid"])["grace"] == 120
    assert c.pause_check(created["uuid"])["status"] == "paused"
    assert c.resume_check(created["uuid"])["status"] == "new"
    assert {ch["name"] for ch in c.list_channels()} == {"ops-email", "ops-slack"}
    assert c.list_pings(created["uuid"]) == []
    assert c.delete_check(created["uuid"])["name"] == "a"
    assert [(r["method"], r["path"]) for r in hc.requests()] == [
        ("POST", CHECKS), ("GET", CHECKS + "?tag=x&tag=y"), ("GET", CHECKS + "?tag=z"),
        ("POST", CHECKS + created["uuid"]), ("GET", CHECKS + created["uuid"]),
        ("POST", CHECKS + created["uuid"] + "/pause"), ("POST", CHECKS + created["uuid"] + "/resume"),
        ("GET", "/api/v3/channels/"), ("GET", CHECKS + created["uuid"] + "/pings/"),
        ("DELETE", CHECKS + created["uuid"])]
    assert c.requests == 10


# ---- retries ---------------------------------------------------------------------------------

def test_429_is_retried_honouring_retry_after(hc):
    hc.add_fault(CHECKS, status=429, count=2, headers={"Retry-After": "7"})
    c = client(hc)
    assert c.list_checks() == []
    assert c.requests == 3 and c.sleeps == [7, 7]


def test_5xx_is_retried_with_exponential_backoff(hc):
    hc.add_fault(CHECKS, status=502, count=3)
    c = client(hc, retries=3, backoff=0.5)
    assert c.list_checks() == []
    assert c.sleeps == [0.5, 1.0, 2.0]


def test_retry_after_longer_than_backoff_wins_but_is_capped(hc):
    hc.add_fault(CHECKS, status=503, count=1, headers={"Retry-After": "3600"})
    c = client(hc)
    c.list_checks()
    assert c.sleeps == [60]


def test_retries_are_bounded_and_the_error_is_clear(hc):
    hc.add_fault(CHECKS, status=500, count=10)
    c = client(hc, retries=2)
    e = error_of(c.list_checks)
    assert c.requests == 3 and len(hc.requests()) == 3 and len(c.sleeps) == 2
    assert e.status == 500
    assert str(e) == "Healthchecks API GET checks/ failed after 3 attempt(s): HTTP 500: Server Error (500)"


def test_429_exhausted_names_the_status_and_message(hc):
    hc.add_fault(CHECKS, status=429, count=5, body='{"error": "rate limit exceeded"}')
    e = error_of(client(hc, retries=1).list_checks)
    assert e.status == 429 and "HTTP 429: rate limit exceeded" in str(e)


def test_retried_create_does_not_duplicate(hc):
    # The first POST times out on the client but the server still acts on it: the manager's creates
    # carry unique=[key], so the retry and the late original converge on one check.
    hc.add_fault(CHECKS, method="POST", delay=1.0)
    c = client(hc, timeout=0.3, retries=1)
    CheckManager(c).ensure([dict(name="a", grace=120)])
    deadline = time.monotonic() + 5
    while len(hc.requests()) < 3 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert [(r["method"], r["status"]) for r in hc.requests()] == [("GET", 200), ("POST", 201), ("POST", 200)]
    assert [(x["name"], x["grace"]) for x in hc.checks()] == [("a", 120)]


def test_timeouts_are_retried_then_reported(hc):
    hc.add_fault(CHECKS, delay=1.5, count=2)
    c = client(hc, timeout=0.3, retries=1)
    e = error_of(c.list_checks)
    assert e.status is None and c.requests == 2
    assert str(e) == "Healthchecks API GET checks/ failed after 2 attempt(s): timed out after 0.3 s"


def test_connection_refused_is_retried_then_reported():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    sleeps = []
    c = HealthchecksClient("http://127.0.0.1:%d" % port, "k" * 32, retries=2, sleep=sleeps.append)
    e = error_of(c.list_checks)
    assert e.status is None and c.requests == 3 and len(sleeps) == 2
    assert "failed after 3 attempt(s)" in str(e) and "refused" in str(e).lower()


def test_retry_after_parsing():
    assert _retry_after("12") == 12
    assert _retry_after(None) is None and _retry_after("soon") is None
    assert _retry_after("Wed, 21 Oct 2015 07:28:00 GMT") == 0  # a date in the past


# ---- errors that are not retried ---------------------------------------------------------------

def test_400_carries_the_servers_json_error(hc):
    c = client(hc)
    e = error_of(c.create_check, {"grace": 1})
    assert (e.status, e.server_message, c.requests) == (400, "json validation error: grace is too small", 1)
    assert str(e) == "Healthchecks API POST checks/ failed with HTTP 400: json validation error: grace is too small"


def test_401_wrong_key(hc):
    key = "x" * 32
    e = error_of(client(hc, key=key).list_checks)
    assert e.status == 401 and "HTTP 401: wrong api key" in str(e) and key not in str(e)


def test_401_read_only_key_cannot_write(hc):
    e = error_of(client(hc, key=hc.api_key_readonly).create_check, {"name": "a"})
    assert e.status == 401 and "read-write key" in str(e) and hc.api_key_readonly not in str(e)
    e = error_of(client(hc, key=hc.api_key_readonly).list_channels)
    assert e.status == 401 and "read-write key" in str(e)


def test_401_hint_of_a_read_call_does_not_ask_for_a_read_write_key(hc):
    """Issue 13: listing and reading checks work with a read-only key; their 401 means an unknown key."""
    code = client(hc).create_check({"name": "a"})["uuid"]
    for call, args in ((client(hc, key="x" * 32).list_checks, ()), (client(hc, key="x" * 32).get_check, (code,))):
        e = error_of(call, *args)
        assert e.status == 401 and "wrong api key" in str(e), str(e)
        assert "read-write" not in str(e) and "the project's read-only key is enough" in str(e), str(e)


@pytest.mark.parametrize("key", ["hcw_Leak4751", "hcw_" + "L" * 29, "L" * 40])
def test_key_of_the_wrong_length_is_refused_before_any_request(hc, key):
    """Issue 13: the server answers 401 "missing api key" to a key that is not 32 characters long."""
    with pytest.raises(HealthchecksValidationError) as info:
        client(hc, key=key)
    assert "api_key must be a Healthchecks project API key of 32 characters" in str(info.value)
    assert "has %d" % len(key) in str(info.value) and key not in str(info.value) and "Leak" not in str(info.value)
    assert hc.requests() == []


def test_403_empty_body_is_explained():
    with FakeHealthchecks({"projects": [{}, {}]}) as hc:
        theirs = hc.add_check(project=1, name="theirs")
        c = client(hc)
        e = error_of(c.get_check, theirs)
        assert e.status == 403 and c.requests == 1
        assert "HTTP 403: (empty response)" in str(e) and "another project" in str(e)


def test_404_html_page_becomes_a_short_message(hc):
    e = error_of(client(hc).get_check, "5d6c4a2e-8b4f-4e8e-9b0a-6f1d2c3b4a59")
    assert e.status == 404 and "<" not in str(e)
    assert "HTTP 404: Not Found The requested resource was not found on this server." in str(e)


def test_409_on_resume_of_a_running_check(hc):
    c = client(hc)
    code = c.create_check({"name": "a"})["uuid"]
    e = error_of(c.resume_check, code)
    assert e.status == 409 and "check is not paused" in str(e)


def test_redirects_are_never_followed(hc):
    c = client(hc)
    e = error_of(c.request, "POST", "checks", {"name": "lost"})
    assert e.status == 301 and "redirect to /api/v3/checks/" in str(e) and "api_url" in str(e)
    assert [(r["method"], r["path"]) for r in hc.requests()] == [("POST", "/api/v3/checks")]
    assert hc.checks() == [] and c.requests == 1


def test_the_key_never_leaks_even_when_the_server_echoes_it(hc):
    hc.add_fault(CHECKS, status=400, body='{"error": "bad key %s"}' % hc.api_key)
    e = error_of(client(hc).list_checks)
    assert hc.api_key not in str(e) and hc.api_key not in e.server_message and "********" in str(e)


def test_non_json_success_is_an_error(hc):
    hc.add_fault(CHECKS, status=200, body="<html><body>Log in</body></html>")
    e = error_of(client(hc).list_checks)
    assert "non-JSON" in str(e) and "Log in" in str(e)


@pytest.mark.parametrize("kw, message", [({"timeout": 0}, "api_timeout"), ({"retries": 11}, "api_retries")])
def test_client_options_are_validated(hc, kw, message):
    with pytest.raises(HealthchecksValidationError, match=message):
        HealthchecksClient(hc.url, hc.api_key, **kw)


# ---- validation --------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, message", [
    ({}, "name is required"),
    ({"name": "a", "grace": 59}, "grace must be an integer from 60 to 31536000"),
    ({"name": "a", "timeout": 31536001}, "timeout must be an integer"),
    ({"name": "a", "timeout": True}, "timeout must be an integer"),
    ({"name": "x" * 101}, "name is longer than 100"),
    ({"name": "a", "slug": "Web 01"}, "slug 'Web 01' may only contain"),
    ({"name": "a", "slug": "s" * 101}, "slug is longer than 100"),
    ({"name": "a", "timeout": 600, "schedule": "* * * * *"}, "mutually exclusive"),
    ({"name": "a", "tz": "Europe/Rome"}, "tz needs schedule"),
    ({"name": "a", "methods": "GET"}, "methods must be '' or 'POST'"),
    ({"name": "a", "schedule": "0 0 2 * * *"}, "has 6 fields"),
    ({"name": "a", "schedule": "61 * * * *"}, "'61' is not valid in the minute field"),
    ({"name": "a", "schedule": "0 0 * 13 *"}, "month field"),
    ({"name": "a", "schedule": "*/0 * * * *"}, "bad step"),
    ({"name": "a", "schedule": "  "}, "schedule must not be empty"),
    ({"name": "a", "tags": ["two words"]}, "without spaces"),
    ({"name": "a", "channels": ["*", "ops-email"]}, "cannot be combined"),
    ({"name": "a", "channels": ["a,b"]}, "without commas"),
    ({"name": "a", "start_kw": "k" * 201}, "start_kw is longer than 200"),
    ({"name": "a", "schedule": "* * * * *", "tz": "Mars/Olympus"}, "tz 'Mars/Olympus' is not an IANA time zone"),
    ({"name": "a", "desc": "a\x00b"}, "desc must not contain a NUL character"),
])
def test_validate_check_rejects(spec, message):
    assert any(message in e for e in validate_check(spec)), validate_check(spec)


def test_validate_check_accepts_good_specs():
    assert validate_check({"slug": "web01-backup_home", "grace": 60, "timeout": 31536000}, key="slug") == []
    for tz in ("UTC", "Europe/Rome", "Europe/Kiev", "America/Argentina/Buenos_Aires", "Etc/GMT+1"):
        assert validate_check({"name": "a", "schedule": "* * * * *", "tz": tz}) == [], tz
    for schedule in ("*/15 2-5 1,15 jan-mar mon-fri", "0 3 L * *", "0 3 * * 5#2", "0 3 ? * 7", "daily",
                     "Mon..Fri *-*-* 02:00", "30 2 * * *\n"):
        assert schedule_error(schedule) is None, schedule


# ---- the manager: comparison, normalisation, request budget -----------------------------------

def ensure(hc, specs, check_mode=False, key="name", **kw):
    manager = CheckManager(client(hc), key=key, check_mode=check_mode)
    return manager, manager.ensure(specs, **kw)


def writes(hc):
    return [r for r in hc.requests() if r["method"] != "GET"]


def test_normalised_fields_compare_equal(hc):
    spec = dict(name="a", tags=["web01", "backup"], schedule="30  2 * *   *", tz="Europe/Kiev",
                channels=["ops-email"], grace=600, desc="d", methods="POST", manual_resume=True,
                start_kw="go", success_kw="ok", failure_kw="ko", filter_subject=True, filter_body=False)
    manager, [result] = ensure(hc, [spec])
    assert result["actions"] == ["create"]
    created = hc.checks()[0]
    assert (created["tz"], created["schedule"], created["tags"]) == ("Europe/Kyiv", "30 2 * * *", "web01 backup")
    hc.clear_requests()
    spec.update(tags=["backup", "web01", "backup"], schedule=" 30 2 * * * ")
    manager, [result] = ensure(hc, [spec])
    assert (result["actions"], manager.changed, writes(hc)) == ([], False, [])
    assert [r["path"] for r in hc.requests()] == [CHECKS, "/api/v3/channels/"]


def test_channel_uuids_are_checked_only_before_a_write_and_only_differences_are_sent(hc):
    ids = sorted(c["id"] for c in hc.projects[0]["channels"])
    ensure(hc, [dict(name="a", channels=[i.upper() for i in ids], grace=120)])
    hc.clear_requests()
    _mgr, [result] = ensure(hc, [dict(name="a", channels=ids[:1], grace=120)])
    assert result["changed_fields"] == ["channels"] and hc.checks()[0]["channels"] == ids[0]
    assert [(r["method"], r["path"]) for r in hc.requests()] == [
        ("GET", CHECKS), ("GET", "/api/v3/channels/"), ("POST", CHECKS + hc.checks()[0]["uuid"])]
    hc.clear_requests()
    manager, [result] = ensure(hc, [dict(name="a", channels=ids[:1], grace=120)])
    assert not manager.changed and [r["path"] for r in hc.requests()] == [CHECKS]  # nothing to write: one request


def test_bulk_with_a_bad_second_entry_creates_nothing(hc):
    """Issue 13: three new checks, the second with an unknown channel UUID, a zone the server refuses, or both."""
    unknown = "0b1f0d3e-5c3a-4f3e-9d59-2f1f6c0d9e11"
    email = next(c["id"] for c in hc.projects[0]["channels"] if c["name"] == "ops-email")
    good = dict(schedule="0 2 * * *", tz="Europe/Rome", channels=[email])
    for bad, parts in ((dict(channels=[email, unknown]), ["checks[1] (b): channels: channel %r does not exist" % unknown]),
                       (dict(tz="Factory"), ["checks[1] (b): tz 'Factory' is not a time zone Healthchecks accepts"]),
                       (dict(tz="localtime", channels=[unknown]), ["checks[1] (b): tz 'localtime'"])):
        manager = CheckManager(client(hc))
        with pytest.raises(HealthchecksValidationError) as info:
            manager.ensure([dict(good, name="a"), dict(good, name="b", **bad), dict(good, name="c")])
        for part in parts:
            assert part in str(info.value), str(info.value)
        assert hc.checks() == [] and writes(hc) == [] and not manager.changed
    manager = CheckManager(client(hc))
    manager.ensure([dict(good, name=n) for n in "abc"])
    assert len(hc.checks()) == 3


def test_a_rerun_with_nothing_to_write_makes_at_most_two_requests(hc):
    email = next(c["id"] for c in hc.projects[0]["channels"] if c["name"] == "ops-email")
    for channels, requests in (([email], [CHECKS]), (["ops-email"], [CHECKS, "/api/v3/channels/"]),
                               (["*"], [CHECKS, "/api/v3/channels/"])):
        specs = [dict(name="a", channels=channels, timeout=600), dict(name="b", channels=channels, timeout=600)]
        ensure(hc, specs)
        hc.clear_requests()
        manager, _results = ensure(hc, specs)
        assert not manager.changed and [r["path"] for r in hc.requests()] == requests


@pytest.mark.parametrize("version", ["4.3", "3.13"])
@pytest.mark.parametrize("tz", ["CET", "US/Eastern", "America/Buenos_Aires", "Europe/Kiev"])
def test_a_legacy_zone_settles_after_one_write(hc, version, tz):
    """Issue 13: the server may store a legacy name under its current zone; the two are equal, with one warning."""
    hc.version = version
    spec = dict(name="a", schedule="30 2 * * *", tz=tz)
    outcomes = []
    for _run in range(3):
        manager, [result] = ensure(hc, [spec])
        outcomes.append((result["actions"], manager.warnings))
    stored = hc.checks()[0]["tz"]
    warned = [] if stored == tz else ["tz %r is a legacy alias of the IANA time zone %r, which the server stores as %r: "
                                      "taken as equal, nothing to change (set tz: %s to silence this warning)"
                                      % (tz, stored, stored, stored)]
    assert outcomes == [(["create"], warned), ([], warned), ([], warned)]
    assert len(writes(hc)) == 1
    manager, [result] = ensure(hc, [dict(spec, tz=stored)])  # the current name is equal too, without a warning
    assert result["actions"] == [] and manager.warnings == []


def test_time_zones_the_server_refuses_and_links_of_the_iana_database():
    for tz in ("Factory", "localtime", "posixrules", "posix/Europe/Rome", "right/UTC"):
        assert "is not a time zone Healthchecks accepts" in tz_error(tz), tz
    for tz in ("UTC", "Etc/UTC", "CET", "US/Eastern", "Europe/Kiev", "Europe/Kyiv", "Pacific/Kanton", "EST5EDT"):
        assert tz_error(tz) is None, tz
    # every legacy link the fake (as v4.3) rewrites is its target here, whatever this host's tz database says
    assert [(name, target) for name, target in IANA_LEGACY_LINKS.items() if not same_zone(name, target)] == []
    assert same_zone("CET", "Europe/Brussels") and same_zone("Europe/Brussels", "CET") and same_zone("MET", "CET")
    assert not same_zone("CET", "Europe/Rome") and not same_zone("Europe/Kyiv", "Europe/Riga")
    assert not same_zone("localtime", "UTC") and not same_zone("Factory", "Factory-x")


def test_all_channels_and_no_channels(hc):
    ensure(hc, [dict(name="a", channels=["*"]), dict(name="b", channels=[])])
    ids = sorted(c["id"] for c in hc.projects[0]["channels"])
    assert [c["channels"] for c in hc.checks()] == [",".join(ids), ""]
    hc.clear_requests()
    manager, _results = ensure(hc, [dict(name="a", channels=["*"]), dict(name="b", channels=[])])
    assert not manager.changed and writes(hc) == []


def test_unknown_channel_fails_before_any_write(hc):
    with pytest.raises(HealthchecksValidationError, match="channel 'pager' does not exist.*ops-email"):
        ensure(hc, [dict(name="a"), dict(name="b", channels=["pager"])])
    assert writes(hc) == [] and hc.checks() == []


def test_switching_kind_between_timeout_and_schedule(hc):
    ensure(hc, [dict(name="a", timeout=3600)])
    _mgr, [result] = ensure(hc, [dict(name="a", schedule="0 2 * * *", tz="Europe/Rome")])
    assert result["changed_fields"] == ["schedule", "tz"] and hc.checks()[0]["schedule"] == "0 2 * * *"
    _mgr, [result] = ensure(hc, [dict(name="a", timeout=3600)])
    assert result["changed_fields"] == ["timeout"] and "schedule" not in hc.checks()[0]


def test_check_mode_predicts_without_writing(hc):
    manager, [result] = ensure(hc, [dict(name="a", grace=120, state="paused")], check_mode=True)
    assert manager.changed and result["actions"] == ["create", "pause"] and result["check"]["status"] == "paused"
    assert writes(hc) == [] and hc.checks() == []


def test_validation_happens_before_any_request(hc):
    c = client(hc)
    with pytest.raises(HealthchecksValidationError, match=r"checks\[1\] \(b\): grace must be"):
        CheckManager(c).ensure([dict(name="a"), dict(name="b", grace=5)])
    with pytest.raises(HealthchecksValidationError, match="'a' is listed more than once"):
        CheckManager(c).ensure([dict(name="a"), dict(name="a")])
    with pytest.raises(HealthchecksValidationError, match="orphan_tags must name"):
        CheckManager(c).ensure([dict(name="a")], orphan_tags=[], orphan_state="absent")
    assert c.requests == 0 and hc.requests() == []


def test_duplicates_on_the_server_are_refused(hc):
    c = client(hc)
    c.create_check({"name": "twin"})
    c.create_check({"name": "twin"})
    with pytest.raises(HealthchecksValidationError, match="2 checks have name 'twin'"):
        CheckManager(c).ensure([dict(name="twin", grace=120)])


def test_read_only_key_is_refused_clearly(hc):
    client(hc).create_check({"name": "a"})
    with pytest.raises(HealthchecksValidationError, match="read-only key"):
        CheckManager(client(hc, key=hc.api_key_readonly)).ensure([dict(name="a")])


def test_orphans_are_paused_or_deleted_only_with_all_tags(hc):
    tags = ["web01", "infn-backup"]
    ensure(hc, [dict(name=n, tags=tags) for n in ("keep", "old1", "old2")] + [dict(name="other", tags=["web01"])])
    _mgr, results = ensure(hc, [dict(name="keep", tags=tags)], orphan_tags=tags, orphan_state="paused")
    assert sorted((r["name"], tuple(r["actions"]), r["orphan"]) for r in results) == [
        ("keep", (), False), ("old1", ("pause",), True), ("old2", ("pause",), True)]
    assert {c["name"]: c["status"] for c in hc.checks()} == {
        "keep": "new", "old1": "paused", "old2": "paused", "other": "new"}
    hc.clear_requests()
    manager, _results = ensure(hc, [dict(name="keep", tags=tags)], orphan_tags=tags, orphan_state="paused")
    assert not manager.changed and writes(hc) == []
    _mgr, results = ensure(hc, [dict(name="keep", tags=tags)], orphan_tags=tags, orphan_state="absent")
    assert sorted(c["name"] for c in hc.checks()) == ["keep", "other"]


def test_delete_of_an_already_deleted_check_is_fine(hc):
    c = client(hc)
    code = c.create_check({"name": "a"})["uuid"]
    manager = CheckManager(c)
    c.delete_check(code)  # gone between the list and the delete (or a retried DELETE)
    manager._delete({"uuid": code})
    assert hc.checks() == []


# ---- state active: a paused check is resumed (issue 17) ----------------------------------------

def ping(hc, code):
    """A job's success ping (it resumes a paused check unless manual_resume is set)."""
    import urllib.request
    with urllib.request.urlopen(hc.ping_endpoint + code, timeout=5) as answer:
        assert answer.status == 200


def test_active_resumes_a_paused_check_once_and_compares_the_pause(hc):
    """A source removed from the inventory had its check paused as an orphan; listed again with state active, the
    check is resumed (and only that is written); a rerun writes nothing."""
    tags = ["web01", "cloud-backup"]
    ensure(hc, [dict(name="keep", tags=tags), dict(name="back", tags=tags)])
    ensure(hc, [dict(name="keep", tags=tags)], orphan_tags=tags, orphan_state="paused")
    assert {c["name"]: c["status"] for c in hc.checks()} == {"keep": "new", "back": "paused"}
    hc.clear_requests()
    manager, results = ensure(hc, [dict(name="keep", tags=tags, state="active"),
                                   dict(name="back", tags=tags, state="active")], orphan_tags=tags, orphan_state="paused")
    assert [(r["name"], r["actions"], r["changed"]) for r in results] == [
        ("keep", [], False), ("back", ["resume"], True)]
    assert manager.changed and results[1]["check"]["status"] == "new"
    assert (results[1]["before"]["paused"], results[1]["after"]["paused"]) == (True, False)
    back = [c for c in hc.checks() if c["name"] == "back"][0]
    assert back["status"] == "new"
    assert [(r["method"], r["path"]) for r in writes(hc)] == [("POST", CHECKS + back["uuid"] + "/resume")]
    hc.clear_requests()
    manager, results = ensure(hc, [dict(name="keep", tags=tags, state="active"),
                                   dict(name="back", tags=tags, state="active")], orphan_tags=tags, orphan_state="paused")
    assert not manager.changed and writes(hc) == []
    # a running check is left alone; kept paused on purpose (state paused), it stays paused; present leaves the pause
    ping(hc, back["uuid"])
    manager, [result] = ensure(hc, [dict(name="back", tags=tags, state="active")])
    assert not manager.changed and result["check"]["status"] == "up"
    ensure(hc, [dict(name="back", tags=tags, state="paused")])
    hc.clear_requests()
    for state in ("paused", "present"):
        manager, [result] = ensure(hc, [dict(name="back", tags=tags, state=state)])
        assert not manager.changed and writes(hc) == [] and result["check"]["status"] == "paused"


def test_active_in_check_mode_predicts_the_resume_without_writing(hc):
    ensure(hc, [dict(name="a", grace=120, state="paused")])
    hc.clear_requests()
    manager, [result] = ensure(hc, [dict(name="a", grace=600, state="active")], check_mode=True)
    assert manager.changed and result["actions"] == ["update", "resume"] and result["check"]["status"] == "new"
    assert result["changed_fields"] == ["grace"]
    assert (result["before"], result["after"]) == ({"name": "a", "grace": 120, "paused": True}, {"name": "a", "grace": 600, "paused": False})
    assert writes(hc) == [] and hc.checks()[0]["status"] == "paused"


def test_active_on_a_check_resumed_meanwhile_is_not_a_change(hc):
    """Listed paused, then a ping resumes it before the resume call: the server answers 409, nothing was written,
    the check is read again."""
    c = client(hc)
    code = c.create_check({"name": "a"})["uuid"]
    c.pause_check(code)
    manager = CheckManager(c)
    listed = c.get_check(code)
    ping(hc, code)  # the job's ping resumes it (manual_resume off)
    result = manager.ensure_one(dict(name="a", state="active"), listed)
    assert result["actions"] == [] and not manager.changed and result["check"]["status"] == "up"
