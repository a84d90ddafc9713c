# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client for the Healthchecks Management API v3, and the check manager the modules share.

HealthchecksClient does all HTTP (open_url, X-Api-Key of 32 characters, TLS, timeout, retries with backoff, no
redirects, errors with status, server message and a hint fitted to the call, but never the key). CheckManager holds
the whole idempotency algorithm: validate every wanted check (time zones as the server accepts them), list the
project's checks once, resolve channels once (names always, UUIDs before a write), compare only the managed fields
(normalised; time zones as zones of the IANA database), write only the differences, and only once every entry passed.
"""

from __future__ import annotations

import email.utils
import http.client
import json
import os
import re
import ssl
import time
import urllib.error
import urllib.parse

try:
    import importlib.resources as importlib_resources
except ImportError:  # pragma: no cover
    importlib_resources = None

try:
    import zoneinfo
except ImportError:  # Python < 3.9: only the form of tz is checked here, the server checks the rest
    zoneinfo = None

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

USER_AGENT = "infn_cloud.backup-healthchecks"
MIN_PERIOD, MAX_PERIOD = 60, 31536000
MAX_DELAY = 60
# Links of the IANA time zone database that a local database may lack: the zones renamed lately (an older database
# has no new name) and the System V style names that IANA made links in 2024b, which some builds (Debian's and
# Ubuntu's, made with backzone) still keep as zones of their own. The local database's links (tzdata.zi) are added.
TZ_LINKS = {
    "Europe/Kiev": "Europe/Kyiv",
    "Europe/Uzhgorod": "Europe/Kyiv",
    "Europe/Zaporozhye": "Europe/Kyiv",
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "America/Godthab": "America/Nuuk",
    "Pacific/Enderbury": "Pacific/Kanton",
    "CET": "Europe/Brussels",
    "MET": "Europe/Brussels",
    "EET": "Europe/Athens",
    "WET": "Europe/Lisbon",
    "EST": "America/Panama",
    "MST": "America/Phoenix",
    "HST": "Pacific/Honolulu",
    "EST5EDT": "America/New_York",
    "CST6CDT": "America/Chicago",
    "MST7MDT": "America/Denver",
    "PST8PDT": "America/Los_Angeles",
}
# Names in a tz database that are not time zones the server accepts (Healthchecks validates against its own list).
TZ_REFUSED = ("Factory", "localtime", "posixrules", "leapseconds", "tzdata.zi")
TZ_REFUSED_PREFIXES = ("posix/", "right/", "SystemV/")
STR_FIELDS = ("name", "slug", "desc", "methods", "start_kw", "success_kw", "failure_kw")
INT_FIELDS = ("timeout", "grace")
BOOL_FIELDS = ("manual_resume", "filter_subject", "filter_body")
FIELDS = STR_FIELDS + INT_FIELDS + BOOL_FIELDS + ("tags", "schedule", "tz", "channels")
MAX_LEN = {"name": 100, "slug": 100, "schedule": 100, "start_kw": 200, "success_kw": 200, "failure_kw": 200}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SLUG_RE = re.compile(r"^[a-z0-9-_]*$")
TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
KEY_RE = re.compile(r"[\s\x00-\x1f\x7f]")
KEY_LENGTH = 32
HINTS = {
    401: "check api_key: changes and channel lookups need the project's read-write key",
    403: "the check belongs to another project, or the project's check limit is reached",
    404: "no such check or endpoint: check api_url",
}
# Calls a read-only key may make (list and get checks): their 401 means an unknown key, not a read-only one.
HINT_401_READ = "check api_key: the server knows no such key; the project's read-only key is enough for this call"
READ_ONLY_OK = re.compile(r"^checks/([^/]+)?$")


def error_hint(status, method, path):
    """What to do about an HTTP error status, fitted to the call."""
    if status == 401 and method == "GET" and READ_ONLY_OK.match(path):
        return HINT_401_READ
    return HINTS.get(status)


class HealthchecksError(Exception):
    """An API call failed: carries the HTTP status (None for network errors) and the server's message."""

    def __init__(self, message, status=None, server_message=None):
        super().__init__(message)
        self.status = status
        self.server_message = server_message


class HealthchecksValidationError(HealthchecksError):
    """Bad input found before any API call."""


def connection_argument_spec():
    """Options documented by the infn_cloud.backup.healthchecks doc fragment."""
    return dict(
        api_url=dict(type="str", required=True, fallback=(env_fallback, ["HEALTHCHECKS_API_URL"])),
        api_key=dict(type="str", required=True, no_log=True, fallback=(env_fallback, ["HEALTHCHECKS_API_KEY"])),
        validate_certs=dict(type="bool", default=True),
        ca_path=dict(type="path"),
        api_timeout=dict(type="int", default=30),
        api_retries=dict(type="int", default=3),
    )


def check_argument_spec():
    """Options of one check: the single module's options and the bulk module's checks[] suboptions."""
    return dict(
        name=dict(type="str"),
        slug=dict(type="str"),
        tags=dict(type="list", elements="str"),
        desc=dict(type="str"),
        timeout=dict(type="int"),
        grace=dict(type="int"),
        schedule=dict(type="str"),
        tz=dict(type="str"),
        channels=dict(type="list", elements="str"),
        methods=dict(type="str", choices=["", "POST"]),
        manual_resume=dict(type="bool"),
        start_kw=dict(type="str"),
        success_kw=dict(type="str"),
        failure_kw=dict(type="str"),
        filter_subject=dict(type="bool"),
        filter_body=dict(type="bool"),
        state=dict(type="str", default="present", choices=["present", "absent", "paused", "active"]),
    )


def client_from_params(params):
    return HealthchecksClient(
        params["api_url"], params["api_key"], validate_certs=params["validate_certs"],
        ca_path=params["ca_path"], timeout=params["api_timeout"], retries=params["api_retries"])


def api_base(api_url):
    """https://hc.example.org[/prefix][/api/vN][/] -> https://hc.example.org[/prefix]/api/v3/"""
    url = (api_url or "").strip().rstrip("/")
    if not re.match(r"^https?://[^/]+", url):
        raise HealthchecksValidationError("api_url must be an http(s) URL such as https://hc.cloud.infn.it, got %r" % api_url)
    return re.sub(r"/api/v\d+$", "", url) + "/api/v3/"


def _snippet(body):
    """The server's message: the JSON 'error' field, else a short text of an HTML or plain body."""
    text = to_text(body or b"", errors="replace").strip()
    try:
        data = json.loads(text)
        if isinstance(data, dict) and data.get("error"):
            return to_text(data["error"])
    except ValueError:
        pass
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", text)
    text = " ".join(re.sub(r"<[^>]+>", " ", text).split())
    return (text[:200] + "...") if len(text) > 200 else text


def _retry_after(value):
    """Retry-After as seconds (an integer or an HTTP date), None when absent or unreadable."""
    if not value:
        return None
    if value.strip().isdigit():
        return int(value.strip())
    try:
        return max(0, email.utils.parsedate_to_datetime(value).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


class HealthchecksClient:
    """HTTP client for the Management API v3. ``requests`` counts every HTTP request made."""

    def __init__(self, api_url, api_key, validate_certs=True, ca_path=None, timeout=30, retries=3,
                 backoff=1.0, sleep=time.sleep):
        if not api_key:
            raise HealthchecksValidationError("api_key is required (or set HEALTHCHECKS_API_KEY)")
        if KEY_RE.search(api_key):  # never echo it: it would reach an HTTP header (and a traceback) as it is
            raise HealthchecksValidationError("api_key must be one word, without spaces or control characters")
        if len(api_key) != KEY_LENGTH:  # the server would answer 401 "missing api key"; never echo the key
            raise HealthchecksValidationError(
                "api_key must be a Healthchecks project API key of %d characters (Settings > API Access), but the "
                "one given has %d: check that it is whole and has no extra characters" % (KEY_LENGTH, len(api_key)))
        if ca_path and not (os.path.isfile(ca_path) and os.access(ca_path, os.R_OK)):
            raise HealthchecksValidationError("ca_path %r is not a readable file" % ca_path)
        if timeout is None or timeout <= 0:
            raise HealthchecksValidationError("api_timeout must be a positive number of seconds, got %r" % timeout)
        if retries is None or not 0 <= retries <= 10:
            raise HealthchecksValidationError("api_retries must be between 0 and 10, got %r" % retries)
        self.base = api_base(api_url)
        self._key = api_key
        self.validate_certs = validate_certs
        self.ca_path = ca_path
        self.timeout = timeout
        self.retries = retries
        self.backoff = backoff
        self._sleep = sleep
        self.requests = 0

    def _fail(self, message, status=None, server_message=None):
        # Defence in depth: nothing the server or the network layer says may carry the key out.
        if server_message:
            server_message = server_message.replace(self._key, "********")
        raise HealthchecksError(message.replace(self._key, "********"), status, server_message)

    def request(self, method, path, payload=None, query=None):
        """One API call with retries on 429, 5xx and network errors. Returns the decoded JSON body."""
        url = self.base + path + ("?" + urllib.parse.urlencode(query, doseq=True) if query else "")
        what = "%s %s" % (method, path)
        data = None if payload is None else json.dumps(payload).encode()
        headers = {"X-Api-Key": self._key, "Accept": "application/json", "User-Agent": USER_AGENT}
        if data is not None:
            headers["Content-Type"] = "application/json"
        for attempt in range(self.retries + 1):
            delay = None
            self.requests += 1
            try:
                resp = open_url(url, data=data, headers=headers, method=method, timeout=self.timeout,
                                validate_certs=self.validate_certs, ca_path=self.ca_path,
                                follow_redirects="none", use_netrc=False, http_agent=USER_AGENT)
                body = resp.read()
            except urllib.error.HTTPError as e:
                status, body = e.code, e.read() if e.fp else b""
                if 300 <= status < 400:
                    self._fail("Healthchecks API %s answered HTTP %d, a redirect to %s; redirects are not followed "
                               "(a POST would silently become a GET): check api_url"
                               % (what, status, e.headers.get("Location", "?")), status)
                message = _snippet(body)
                if status == 429 or status >= 500:
                    delay = _retry_after(e.headers.get("Retry-After"))
                    reason = "HTTP %d: %s" % (status, message or "(empty response)")
                else:
                    hint = error_hint(status, method, path)
                    self._fail("Healthchecks API %s failed with HTTP %d: %s%s" % (
                        what, status, message or "(empty response)", " (%s)" % hint if hint else ""), status, message)
            except (urllib.error.URLError, OSError, http.client.HTTPException, UrlsConnectionError) as e:
                cause = getattr(e, "reason", None) or e
                status, reason = None, to_text(cause) or type(cause).__name__
                if isinstance(cause, ssl.SSLError):
                    self._fail("Healthchecks API %s failed: TLS error: %s (give ca_path the CA that signed the "
                               "server's certificate)" % (what, reason), None, reason)
                if "timed out" in reason.lower():
                    reason = "timed out after %s s" % self.timeout
            else:
                try:
                    return json.loads(to_text(body)) if body else {}
                except ValueError:
                    self._fail("Healthchecks API %s answered with a non-JSON body (%s): check api_url"
                               % (what, _snippet(body) or "empty"), resp.getcode())
            if attempt < self.retries:
                backoff = self.backoff * 2 ** attempt
                self._sleep(min(MAX_DELAY, max(backoff, delay or 0)))
        self._fail("Healthchecks API %s failed after %d attempt(s): %s" % (what, self.retries + 1, reason), status,
                   reason)

    @staticmethod
    def _one(uuid, suffix=""):
        return "checks/" + urllib.parse.quote(str(uuid), safe="") + suffix

    def list_checks(self, tags=None, slug=None):
        query = [("tag", t) for t in tags or []] + ([("slug", slug)] if slug else [])
        return self.request("GET", "checks/", query=query)["checks"]

    def get_check(self, uuid):
        return self.request("GET", self._one(uuid))

    def create_check(self, payload):
        return self.request("POST", "checks/", payload)

    def update_check(self, uuid, payload):
        return self.request("POST", self._one(uuid), payload)

    def pause_check(self, uuid):
        return self.request("POST", self._one(uuid, "/pause"))

    def resume_check(self, uuid):
        return self.request("POST", self._one(uuid, "/resume"))

    def delete_check(self, uuid):
        return self.request("DELETE", self._one(uuid))

    def list_channels(self):
        return self.request("GET", "channels/")["channels"]

    def list_pings(self, uuid):
        return self.request("GET", self._one(uuid, "/pings/"))["pings"]


# ---- normalisation and validation -------------------------------------------------------------

_TZ = {}


def _tz_database_links():
    """Link name -> target: the table above, then the links of the tz databases Python reads (the tzdata.zi of each
    zoneinfo path, and of the tzdata package when it is installed)."""
    links = dict(TZ_LINKS)
    texts = []
    for directory in zoneinfo.TZPATH if zoneinfo else ():
        try:
            with open(os.path.join(directory, "tzdata.zi")) as handle:
                texts.append(handle.read())
        except (OSError, UnicodeDecodeError):
            pass
    try:
        texts.append(importlib_resources.files("tzdata").joinpath("zoneinfo").joinpath("tzdata.zi").read_text())
    except Exception:  # no tzdata package (the usual case on Linux), or one without tzdata.zi
        pass
    for text in texts:
        for line in text.splitlines():
            parts = line.split()
            if len(parts) == 3 and parts[0] == "L":  # L TARGET LINK-NAME
                links[parts[2]] = parts[1]
    return links


def _tz_links():
    if "links" not in _TZ:
        _TZ["links"] = _tz_database_links()
    return _TZ["links"]


def canonical_tz(tz):
    """The zone a name stands for in the IANA database: its links followed to the end (the name itself otherwise)."""
    links, seen = _tz_links(), set()
    while tz in links and tz not in seen:
        seen.add(tz)
        tz = links[tz]
    return tz


def _tz_file(name):
    if not zoneinfo or not TZ_RE.match(name or ""):
        return None
    for directory in zoneinfo.TZPATH:
        path = os.path.join(directory, name)
        if os.path.isfile(path):
            return path
    return None


def same_zone(first, second):
    """Whether two names name the same zone of the IANA database: equal, a link and its target (or two links to one
    target), or two names of one zone file of the local database (a symbolic or hard link, or a copy)."""
    if first == second:
        return True
    if not first or not second or first in TZ_REFUSED or second in TZ_REFUSED:
        return False
    if canonical_tz(first) == canonical_tz(second):
        return True
    files = _tz_file(first), _tz_file(second)
    if not all(files):
        return False
    if os.path.realpath(files[0]) == os.path.realpath(files[1]):
        return True
    try:
        with open(files[0], "rb") as one, open(files[1], "rb") as other:
            return one.read() == other.read()
    except OSError:
        return False


def norm_schedule(schedule):
    return "\n".join(" ".join(line.split()) for line in schedule.strip().splitlines() if line.strip())


def _tag_list(tags):
    return sorted(set(tags.split() if isinstance(tags, str) else tags))


_CRON = (("minute", 0, 59, ()), ("hour", 0, 23, ()), ("day of month", 1, 31, ()),
         ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
         ("day of week", 0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")))
_CRON_TOKEN = re.compile(r"^[0-9A-Za-z*?/,#-]+$")


def schedule_error(schedule):
    """Sanity check of a 5-field cron expression; other forms are left to the server (OnCalendar)."""
    normal = norm_schedule(schedule)
    fields = normal.split(" ")
    if "\n" in normal or not all(_CRON_TOKEN.match(f) for f in fields):
        return None
    if len(fields) in (6, 7):
        return ("schedule %r has %d fields: Healthchecks takes 5 (minute hour day month weekday), "
                "without the seconds field ofelia uses" % (schedule, len(fields)))
    if len(fields) != 5:
        return None
    for value, (label, low, high, names) in zip(fields, _CRON):
        for item in value.split(","):
            base, slash, step = item.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                return "schedule %r: bad step in the %s field" % (schedule, label)
            if base in ("*", "?") or (label == "day of month" and re.match(r"^(L|LW|\d{1,2}W)$", base)) or \
                    (label == "day of week" and re.match(r"^[0-7](L|#[1-5])$", base)):
                continue
            for part in base.split("-", 1) if base else [""]:
                ok = part.lower() in names or (part.isdigit() and low <= int(part) <= high)
                if not ok:
                    return "schedule %r: %r is not valid in the %s field (%d-%d)" % (schedule, part, label, low, high)
    return None


def _known_zones():
    if "zones" not in _TZ:
        try:
            zones = set(zoneinfo.available_timezones()) if zoneinfo else set()
        except OSError:
            zones = set()
        if zones:  # a database older than the server's may lack the new name of a renamed zone
            zones |= set(_tz_links()) | set(_tz_links().values())
        _TZ["zones"] = zones
    return _TZ["zones"]


def tz_error(tz):
    """tz must be a zone the server accepts: it looks like an IANA name and, where Python has a time zone database,
    is one of its zones; the database's names that are no zone (Factory, localtime, posix/...) are refused."""
    if tz in TZ_REFUSED or tz.startswith(TZ_REFUSED_PREFIXES):
        return ("tz %r is not a time zone Healthchecks accepts (the server refuses it although Python's time zone "
                "database has the name): use an IANA zone such as Europe/Rome or UTC" % tz)
    zones = _known_zones()
    if not TZ_RE.match(tz) or (zones and tz not in zones):
        return "tz %r is not an IANA time zone such as Europe/Rome or UTC" % tz
    return None


def field_problems(spec):
    """The problems of the fields given, each on its own (also the filters of healthchecks_check_info)."""
    errors = []
    for field in STR_FIELDS + ("schedule", "tz"):
        if isinstance(spec.get(field), str) and "\x00" in spec[field]:
            errors.append("%s must not contain a NUL character" % field)
    for field, limit in MAX_LEN.items():
        if spec.get(field) is not None and len(spec[field]) > limit:
            errors.append("%s is longer than %d characters" % (field, limit))
    if spec.get("slug") is not None and not SLUG_RE.match(spec["slug"]):
        errors.append("slug %r may only contain a-z, 0-9, '-' and '_'" % spec["slug"])
    for field in INT_FIELDS:
        value = spec.get(field)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int)
                                  or not MIN_PERIOD <= value <= MAX_PERIOD):
            errors.append("%s must be an integer from %d to %d seconds, got %r" % (field, MIN_PERIOD, MAX_PERIOD, value))
    if spec.get("methods") not in (None, "", "POST"):
        errors.append("methods must be '' or 'POST', got %r" % spec["methods"])
    if spec.get("schedule") is not None:
        err = schedule_error(spec["schedule"]) if spec["schedule"].strip() else "schedule must not be empty"
        if err:
            errors.append(err)
    if spec.get("tz") is not None:
        err = tz_error(spec["tz"])
        if err:
            errors.append(err)
    for tag in spec.get("tags") or []:
        if not tag or tag != "".join(tag.split()):
            errors.append("tags must be non-empty and without spaces, got %r" % tag)
    channels = spec.get("channels")
    if channels:
        if "*" in channels and len(channels) > 1:
            errors.append("channels '*' (all) cannot be combined with other channels")
        if any(not c or "," in c for c in channels):
            errors.append("channels: channel names and UUIDs must be non-empty and without commas")
    return errors


def validate_check(spec, key="name"):
    """Return the list of problems with one wanted check (empty when it is fine)."""
    errors = []
    ident = spec.get(key)
    if not isinstance(ident, str) or not ident:
        errors.append("%s is required (it is the key that identifies the check)" % key)
    errors += field_problems(spec)
    if spec.get("timeout") is not None and spec.get("schedule") is not None:
        errors.append("timeout and schedule are mutually exclusive (a check is either simple or cron)")
    if spec.get("tz") is not None and spec.get("schedule") is None:
        errors.append("tz needs schedule (the server ignores it on simple checks)")
    return errors


# ---- the manager -----------------------------------------------------------------------------

class CheckManager:
    """Ensure many checks with one list call (and at most one channels call), shared by the modules."""

    def __init__(self, client, key="name", check_mode=False):
        self.client = client
        self.key = key
        self.check_mode = check_mode
        self.channels = None
        self.results = []
        self.changed = False
        self.warnings = []

    # -- reading and comparing
    @staticmethod
    def current_view(check, fields):
        """The managed fields of a server check, normalised (None where the server does not echo one)."""
        view = {}
        for field in fields:
            value = check.get(field)
            if value is not None and field == "tags":
                value = _tag_list(value)
            elif value is not None and field == "channels":
                value = sorted(c.lower() for c in value.split(",") if c)
            elif value is not None and field == "schedule":
                value = norm_schedule(value)
            view[field] = value  # tz as stored: compared with same_zone
        return view

    def _resolve_channel(self, ident):
        if UUID_RE.match(ident) and self.channels is None:
            return ident.lower()
        matches = [c["id"].lower() for c in self.channels if c["id"].lower() == ident.lower() or c.get("name") == ident]
        if len(matches) != 1:
            known = ", ".join(sorted("%s (%s)" % (c.get("name") or "-", c["id"]) for c in self.channels)) or "none"
            raise HealthchecksValidationError("channel %r %s in the project (nothing was written); its channels: %s" % (
                ident, "is ambiguous" if matches else "does not exist", known))
        return matches[0]

    def desired_view(self, spec):
        """The managed fields the user set, normalised like current_view."""
        view = {}
        for field in FIELDS:
            value = spec.get(field)
            if value is None:
                continue
            if field == "tags":
                value = _tag_list(value)
            elif field == "channels":
                all_ids = [c["id"].lower() for c in self.channels or []]
                value = sorted(all_ids if value == ["*"] else set(self._resolve_channel(c) for c in value))
            elif field == "schedule":
                value = norm_schedule(value)
            view[field] = value
        return view

    def _settle_tz(self, wanted, stored):
        """A wanted zone and the stored one are equal when they name the same IANA zone (a server may store a legacy
        name under its current one: Healthchecks v4 stores CET as Europe/Brussels). Returns the name to compare."""
        if wanted is None or stored is None or wanted == stored or not same_zone(wanted, stored):
            return wanted
        if canonical_tz(wanted) != wanted:
            message = ("tz %r is a legacy alias of the IANA time zone %r, which the server stores as %r: taken as "
                       "equal, nothing to change (set tz: %s to silence this warning)"
                       % (wanted, canonical_tz(wanted), stored, stored))
        else:
            message = ("the server stores tz %r, a legacy alias of the IANA time zone %r: taken as equal, nothing "
                       "to change" % (stored, wanted))
        if message not in self.warnings:
            self.warnings.append(message)
        return stored

    @staticmethod
    def payload(spec, desired, fields):
        """What to send for the given fields, in the API's formats."""
        out = {}
        for field in fields:
            if field == "tags":
                out[field] = " ".join(dict.fromkeys(spec["tags"]))
            elif field == "channels":
                out[field] = "*" if spec["channels"] == ["*"] else ",".join(desired["channels"])
            else:
                out[field] = desired[field]
        return out

    # -- acting
    def _record(self, name, actions, before, after, check, changed_fields=(), orphan=False):
        result = dict(name=name, actions=actions, changed=bool(actions), changed_fields=list(changed_fields),
                      orphan=orphan, before=before, after=after, check=check)
        self.changed = self.changed or bool(actions)
        self.results.append(result)
        return result

    def _write(self, call, *args):
        answer = call(*args)
        self.changed = True  # set at once, so a later failure still reports what was already written
        return answer

    def _delete(self, check):
        if not self.check_mode:
            try:
                self._write(self.client.delete_check, check["uuid"])
            except HealthchecksError as e:
                if e.status != 404:  # 404: already gone (e.g. a retried DELETE that had succeeded)
                    raise

    def _pause(self, check):
        if self.check_mode:
            return dict(check, status="paused")
        return self._write(self.client.pause_check, check["uuid"])

    def _resume(self, check):
        """Resume a paused check: (the check, whether it was resumed). A check that left the paused state since it
        was read (a ping resumed it) answers 409: nothing to do, the check is read again."""
        if self.check_mode:
            return dict(check, status="new"), True
        try:
            return self._write(self.client.resume_check, check["uuid"]), True
        except HealthchecksError as e:
            if e.status != 409:
                raise
        return self.client.get_check(check["uuid"]), False

    def ensure_one(self, spec, current):
        name, state = spec[self.key], spec.get("state") or "present"
        if state == "absent":
            if current is None:
                return self._record(name, [], {}, {}, None)
            self._delete(current)
            return self._record(name, ["delete"], self.current_view(current, FIELDS), {}, None)
        desired = self.desired_view(spec)
        if current is None:
            actions, fields, before = ["create"], list(desired), {}
            payload = dict(self.payload(spec, desired, fields), unique=[self.key])
            check = self._predict({}, spec, desired, fields) if self.check_mode else \
                self._write(self.client.create_check, payload)
            self._settle_tz(desired.get("tz"), check.get("tz"))  # the answer tells whether the server renamed it
        else:
            before = self.current_view(current, desired)
            if "tz" in desired:
                desired["tz"] = self._settle_tz(desired["tz"], before["tz"])
            fields = [f for f in desired if before[f] != desired[f]]
            actions, check = (["update"] if fields else []), current
            if fields:
                check = self._predict(current, spec, desired, fields) if self.check_mode else \
                    self._write(self.client.update_check, current["uuid"], self.payload(spec, desired, fields))
        after = dict(desired)
        if state in ("paused", "active"):
            # the pause is a managed field like the others: read, compared, then written only when it differs
            paused = check.get("status") == "paused"
            before["paused"], after["paused"] = current is not None and current.get("status") == "paused", state == "paused"
            if state == "paused" and not paused:
                check = self._pause(check)
                actions.append("pause")
            elif state == "active" and paused:
                check, resumed = self._resume(check)
                if resumed:
                    actions.append("resume")
                else:
                    before["paused"] = False
        return self._record(name, actions, before, after, check, fields)

    def _predict(self, current, spec, desired, fields):
        check = dict(current) if current else dict(status="new")
        sent = self.payload(spec, desired, fields)
        if "channels" in sent:
            sent["channels"] = ",".join(desired["channels"])
        if "schedule" in sent:
            check.pop("timeout", None)
        if "timeout" in sent:
            check.pop("schedule", None)
            check.pop("tz", None)
        check.update(sent)
        return check

    def _resolve_channels(self, specs):
        """Resolve the channels of every entry against self.channels: every problem at once, each naming its entry
        and the field."""
        errors = []
        for index, spec in enumerate(specs):
            if (spec.get("state") or "present") == "absent" or not spec.get("channels"):
                continue
            try:
                self.desired_view(spec)
            except HealthchecksValidationError as e:
                where = "checks[%d] (%s): " % (index, spec.get(self.key)) if len(specs) > 1 else ""
                errors.append("%schannels: %s" % (where, e))
        if errors:
            raise HealthchecksValidationError("; ".join(errors))

    def _orphans(self, existing, wanted, orphan_tags, orphan_state):
        if orphan_state == "keep":
            return
        for check in existing:
            if check.get(self.key) in wanted or not set(orphan_tags) <= set(_tag_list(check.get("tags", ""))):
                continue
            name = check.get(self.key) or check["uuid"]
            if orphan_state == "absent":
                self._delete(check)
                self._record(name, ["delete"], self.current_view(check, ("tags",)), {}, None, orphan=True)
            elif check.get("status") != "paused":
                self._record(name, ["pause"], {"paused": False}, {"paused": True}, self._pause(check), orphan=True)

    def _would_write(self, pairs, orphans):
        """Whether converging would write anything: the whole run in check mode (no request), then forgotten."""
        saved = self.check_mode, self.results, self.changed, list(self.warnings)
        self.check_mode, self.results, self.changed = True, [], False
        try:
            for spec, current in pairs:
                self.ensure_one(spec, current)
            self._orphans(*orphans)
            return self.changed
        finally:
            self.check_mode, self.results, self.changed, self.warnings = saved

    def ensure(self, specs, orphan_tags=None, orphan_state="keep"):
        """Validate everything, list once, check the channels, then converge each spec and the orphans. Nothing is
        written unless every entry passed: fields, time zones, duplicates and channels."""
        errors = []
        for index, spec in enumerate(specs):
            errors += ["checks[%d] (%s): %s" % (index, spec.get(self.key), e) if len(specs) > 1 else e
                       for e in validate_check(spec, self.key)]
        keys = [spec.get(self.key) for spec in specs]
        errors += ["%s %r is listed more than once in checks" % (self.key, k) for k in sorted(set(
            k for k in keys if k and keys.count(k) > 1))]
        errors += ["orphan_tags must be non-empty and without spaces, got %r" % tag for tag in orphan_tags or []
                   if not tag or tag != "".join(tag.split())]
        if orphan_state != "keep" and not orphan_tags:
            errors.append("orphan_tags must name at least one tag when orphan_state is %s "
                          "(otherwise every other check of the project would be an orphan)" % orphan_state)
        if errors:
            raise HealthchecksValidationError("; ".join(errors))

        existing = self.client.list_checks()
        if existing and "uuid" not in existing[0]:
            raise HealthchecksValidationError("api_key is a read-only key: managing checks needs the project's "
                                              "read-write key")
        live = [s for s in specs if (s.get("state") or "present") != "absent"]
        if any(c == "*" or not UUID_RE.match(c) for s in live for c in s.get("channels") or []):
            self.channels = self.client.list_channels()
        self._resolve_channels(specs)  # an unknown name fails before any write
        index = {}
        for check in existing:
            index.setdefault(check.get(self.key) or None, []).append(check)
        pairs = [(spec, index.get(spec[self.key], [])) for spec in specs]
        duplicates = ["%d checks have %s %r in the project" % (len(matches), self.key, spec[self.key])
                      for spec, matches in pairs if len(matches) > 1]
        if duplicates:
            raise HealthchecksValidationError("%s: remove the duplicates or use another key" % "; ".join(duplicates))
        pairs = [(spec, matches[0] if matches else None) for spec, matches in pairs]
        orphans = (existing, set(keys), orphan_tags, orphan_state)
        if self.channels is None and any(s.get("channels") for s in live) and self._would_write(pairs, orphans):
            # channels given by UUID only: checked against the project before the first write (the server refuses an
            # unknown one with HTTP 400 once the entries before it are written); a run that writes nothing skips it
            self.channels = self.client.list_channels()
            self._resolve_channels(specs)
        for spec, current in pairs:
            self.ensure_one(spec, current)
        self._orphans(*orphans)
        return self.results
