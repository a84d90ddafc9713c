# -*- coding: utf-8 -*-
# Copyright: (c) 2025, INFN Cloud backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""The one client for the Healthchecks Management API v3, and the check manager the modules share.

HealthchecksClient does all HTTP (open_url, X-Api-Key, TLS, timeout, retries with backoff, no
redirects, errors with status and server message but never the key). CheckManager holds the whole
idempotency algorithm: validate every wanted check, list the project's checks once, resolve channel
names once, compare only the managed fields (normalised), write only the differences.
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
    import zoneinfo
except ImportError:  # Python < 3.9: only the form of tz is checked here, the server checks the rest
    zoneinfo = None

from ansible.module_utils.basic import env_fallback
from ansible.module_utils.common.text.converters import to_text
from ansible.module_utils.urls import ConnectionError as UrlsConnectionError, open_url

USER_AGENT = "infn_cloud.backup-healthchecks"
MIN_PERIOD, MAX_PERIOD = 60, 31536000
MAX_DELAY = 60
# Legacy IANA names the server rewrites (hc.lib.tz legacy_timezones), so compare canonical names.
TZ_ALIASES = {
    "Europe/Kiev": "Europe/Kyiv",
    "Europe/Uzhgorod": "Europe/Kyiv",
    "Europe/Zaporozhye": "Europe/Kyiv",
    "Asia/Calcutta": "Asia/Kolkata",
    "Asia/Saigon": "Asia/Ho_Chi_Minh",
    "Asia/Katmandu": "Asia/Kathmandu",
    "Asia/Rangoon": "Asia/Yangon",
    "America/Godthab": "America/Nuuk",
    "Pacific/Enderbury": "Pacific/Kanton",
}
STR_FIELDS = ("name", "slug", "desc", "methods", "start_kw", "success_kw", "failure_kw")
INT_FIELDS = ("timeout", "grace")
BOOL_FIELDS = ("manual_resume", "filter_subject", "filter_body")
FIELDS = STR_FIELDS + INT_FIELDS + BOOL_FIELDS + ("tags", "schedule", "tz", "channels")
MAX_LEN = {"name": 100, "slug": 100, "schedule": 100, "start_kw": 200, "success_kw": 200, "failure_kw": 200}
UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
SLUG_RE = re.compile(r"^[a-z0-9-_]*$")
TZ_RE = re.compile(r"^[A-Za-z][A-Za-z0-9_+-]*(/[A-Za-z0-9_+-]+)*$")
KEY_RE = re.compile(r"[\s\x00-\x1f\x7f]")
HINTS = {
    401: "check api_key: changes and channel lookups need the project's read-write key",
    403: "the check belongs to another project, or the project's check limit is reached",
    404: "no such check or endpoint: check api_url",
}


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
                    hint = HINTS.get(status)
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

def canonical_tz(tz):
    return TZ_ALIASES.get(tz, tz)


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


_ZONES = []


def tz_error(tz):
    """tz must look like an IANA name and, where Python has a time zone database, be one of its names."""
    if not _ZONES:
        try:
            zones = zoneinfo.available_timezones() if zoneinfo else set()
        except OSError:
            zones = set()
        # a database older than the server's may lack the new name of a renamed zone
        _ZONES.append(zones | set(TZ_ALIASES.values()) if zones else zones)
    if not TZ_RE.match(tz) or (_ZONES[0] and tz not in _ZONES[0] and canonical_tz(tz) not in _ZONES[0]):
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
            elif value is not None and field == "tz":
                value = canonical_tz(value)
            view[field] = value
        return view

    def _resolve_channel(self, ident):
        if UUID_RE.match(ident) and self.channels is None:
            return ident.lower()
        matches = [c["id"].lower() for c in self.channels if c["id"].lower() == ident.lower() or c.get("name") == ident]
        if len(matches) != 1:
            known = ", ".join(sorted("%s (%s)" % (c.get("name") or "-", c["id"]) for c in self.channels)) or "none"
            raise HealthchecksValidationError("channel %r %s in the project; its channels: %s" % (
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
            elif field == "tz":
                value = canonical_tz(value)
            view[field] = value
        return view

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
        else:
            before = self.current_view(current, desired)
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

    def ensure(self, specs, orphan_tags=None, orphan_state="keep"):
        """Validate everything, list once, then converge each spec and the orphans."""
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
        for spec in live:
            self.desired_view(spec)  # resolves every channel: an unknown name fails before any write
        index = {}
        for check in existing:
            index.setdefault(check.get(self.key) or None, []).append(check)
        wanted = set(keys)
        for spec in specs:
            matches = index.get(spec[self.key], [])
            if len(matches) > 1:
                raise HealthchecksValidationError("%d checks have %s %r in the project: remove the duplicates or "
                                                  "use another key" % (len(matches), self.key, spec[self.key]))
            self.ensure_one(spec, matches[0] if matches else None)
        if orphan_state != "keep":
            for check in existing:
                if check.get(self.key) in wanted or not set(orphan_tags) <= set(_tag_list(check.get("tags", ""))):
                    continue
                name = check.get(self.key) or check["uuid"]
                if orphan_state == "absent":
                    self._delete(check)
                    self._record(name, ["delete"], self.current_view(check, ("tags",)), {}, None, orphan=True)
                elif check.get("status") != "paused":
                    self._record(name, ["pause"], {"paused": False}, {"paused": True}, self._pause(check), orphan=True)
        return self.results
