# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""A faithful fake of a Healthchecks server (Management API v3 and ping endpoints), stdlib only.

It reproduces the behaviour written down in shared/REFERENCE.md section 1: read-write and read-only
keys, status codes and body shapes (JSON errors, HTML 404 pages, empty 403 bodies), strict JSON
validation with the server's messages, the trailing-slash redirect, `unique` upserts with their trap,
channels, pause/resume/delete, the check limit, and pings that move a check's status.

In-process (pytest):
    with FakeHealthchecks() as hc:        # port 0 on 127.0.0.1
        hc.url, hc.api_key, hc.add_fault("/api/v3/checks/", status=429, headers={"Retry-After": "1"})
Standalone (a lab container):
    python3 tests/fakes/healthchecks_fake.py --host 0.0.0.0 --port 8000 --config cfg.json

Admin endpoints (no key, never recorded): GET/DELETE /_admin/requests (each API request: method, path, status and
`check`, the name of the check it is about, when one), GET /_admin/pings,
GET /_admin/checks, POST/DELETE /_admin/faults, POST /_admin/version.

Server versions (config "version", attribute `version`): "4.3" (default) stores legacy time zone names under the
zone they link to (CET -> Europe/Brussels), "3.13" keeps them but for a few renamed zones (Europe/Kiev -> Europe/Kyiv).
"""

from __future__ import annotations

import argparse
import copy
import datetime as dt
import hashlib
import json
import re
import socket
import threading
import time
import uuid as uuidlib
import zoneinfo
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MAX_PERIOD = 31536000
# The links of the IANA time zone database (tzdata 2025b, file `backward`) whose name is no location of zone.tab:
# legacy names (CET, US/Eastern, America/Buenos_Aires, Europe/Kiev, ...) as LINK>TARGET. Kept here rather than read
# from the host's database: Debian and Ubuntu build theirs with backzone, where CET and its kin are zones of their own.
IANA_LEGACY_LINKS = dict(pair.split(">") for pair in """
Africa/Asmera>Africa/Nairobi Africa/Timbuktu>Africa/Abidjan
America/Argentina/ComodRivadavia>America/Argentina/Catamarca America/Atka>America/Adak
America/Buenos_Aires>America/Argentina/Buenos_Aires America/Catamarca>America/Argentina/Catamarca
America/Coral_Harbour>America/Panama America/Cordoba>America/Argentina/Cordoba America/Ensenada>America/Tijuana
America/Fort_Wayne>America/Indiana/Indianapolis America/Godthab>America/Nuuk
America/Indianapolis>America/Indiana/Indianapolis America/Jujuy>America/Argentina/Jujuy
America/Knox_IN>America/Indiana/Knox America/Louisville>America/Kentucky/Louisville
America/Mendoza>America/Argentina/Mendoza America/Montreal>America/Toronto America/Nipigon>America/Toronto
America/Pangnirtung>America/Iqaluit America/Porto_Acre>America/Rio_Branco America/Rainy_River>America/Winnipeg
America/Rosario>America/Argentina/Cordoba America/Santa_Isabel>America/Tijuana America/Shiprock>America/Denver
America/Thunder_Bay>America/Toronto America/Virgin>America/Puerto_Rico America/Yellowknife>America/Edmonton
Antarctica/South_Pole>Pacific/Auckland Asia/Ashkhabad>Asia/Ashgabat Asia/Calcutta>Asia/Kolkata
Asia/Choibalsan>Asia/Ulaanbaatar Asia/Chongqing>Asia/Shanghai Asia/Chungking>Asia/Shanghai Asia/Dacca>Asia/Dhaka
Asia/Harbin>Asia/Shanghai Asia/Istanbul>Europe/Istanbul Asia/Kashgar>Asia/Urumqi Asia/Katmandu>Asia/Kathmandu
Asia/Macao>Asia/Macau Asia/Rangoon>Asia/Yangon Asia/Saigon>Asia/Ho_Chi_Minh Asia/Tel_Aviv>Asia/Jerusalem
Asia/Thimbu>Asia/Thimphu Asia/Ujung_Pandang>Asia/Makassar Asia/Ulan_Bator>Asia/Ulaanbaatar
Atlantic/Faeroe>Atlantic/Faroe Atlantic/Jan_Mayen>Europe/Berlin Australia/ACT>Australia/Sydney
Australia/Canberra>Australia/Sydney Australia/Currie>Australia/Hobart Australia/LHI>Australia/Lord_Howe
Australia/NSW>Australia/Sydney Australia/North>Australia/Darwin Australia/Queensland>Australia/Brisbane
Australia/South>Australia/Adelaide Australia/Tasmania>Australia/Hobart Australia/Victoria>Australia/Melbourne
Australia/West>Australia/Perth Australia/Yancowinna>Australia/Broken_Hill Brazil/Acre>America/Rio_Branco
Brazil/DeNoronha>America/Noronha Brazil/East>America/Sao_Paulo Brazil/West>America/Manaus CET>Europe/Brussels
CST6CDT>America/Chicago Canada/Atlantic>America/Halifax Canada/Central>America/Winnipeg
Canada/Eastern>America/Toronto Canada/Mountain>America/Edmonton Canada/Newfoundland>America/St_Johns
Canada/Pacific>America/Vancouver Canada/Saskatchewan>America/Regina Canada/Yukon>America/Whitehorse
Chile/Continental>America/Santiago Chile/EasterIsland>Pacific/Easter Cuba>America/Havana EET>Europe/Athens
EST>America/Panama EST5EDT>America/New_York Egypt>Africa/Cairo Eire>Europe/Dublin Etc/GMT+0>Etc/GMT
Etc/GMT-0>Etc/GMT Etc/GMT0>Etc/GMT Etc/Greenwich>Etc/GMT Etc/UCT>Etc/UTC Etc/Universal>Etc/UTC Etc/Zulu>Etc/UTC
Europe/Belfast>Europe/London Europe/Kiev>Europe/Kyiv Europe/Nicosia>Asia/Nicosia Europe/Tiraspol>Europe/Chisinau
Europe/Uzhgorod>Europe/Kyiv Europe/Zaporozhye>Europe/Kyiv GB>Europe/London GB-Eire>Europe/London GMT>Etc/GMT
GMT+0>Etc/GMT GMT-0>Etc/GMT GMT0>Etc/GMT Greenwich>Etc/GMT HST>Pacific/Honolulu Hongkong>Asia/Hong_Kong
Iceland>Africa/Abidjan Iran>Asia/Tehran Israel>Asia/Jerusalem Jamaica>America/Jamaica Japan>Asia/Tokyo
Kwajalein>Pacific/Kwajalein Libya>Africa/Tripoli MET>Europe/Brussels MST>America/Phoenix MST7MDT>America/Denver
Mexico/BajaNorte>America/Tijuana Mexico/BajaSur>America/Mazatlan Mexico/General>America/Mexico_City
NZ>Pacific/Auckland NZ-CHAT>Pacific/Chatham Navajo>America/Denver PRC>Asia/Shanghai PST8PDT>America/Los_Angeles
Pacific/Enderbury>Pacific/Kanton Pacific/Johnston>Pacific/Honolulu Pacific/Ponape>Pacific/Guadalcanal
Pacific/Samoa>Pacific/Pago_Pago Pacific/Truk>Pacific/Port_Moresby Pacific/Yap>Pacific/Port_Moresby
Poland>Europe/Warsaw Portugal>Europe/Lisbon ROC>Asia/Taipei ROK>Asia/Seoul Singapore>Asia/Singapore
Turkey>Europe/Istanbul UCT>Etc/UTC US/Alaska>America/Anchorage US/Aleutian>America/Adak US/Arizona>America/Phoenix
US/Central>America/Chicago US/East-Indiana>America/Indiana/Indianapolis US/Eastern>America/New_York
US/Hawaii>Pacific/Honolulu US/Indiana-Starke>America/Indiana/Knox US/Michigan>America/Detroit
US/Mountain>America/Denver US/Pacific>America/Los_Angeles US/Samoa>Pacific/Pago_Pago UTC>Etc/UTC Universal>Etc/UTC
W-SU>Europe/Moscow WET>Europe/Lisbon Zulu>Etc/UTC
""".split())
# Healthchecks v4.x stores a legacy name under the zone it links to (CET -> Europe/Brussels); the UTC and GMT names
# (links to Etc/UTC and Etc/GMT) stay as given. v3.13 rewrites only a few renamed zones (Europe/Kiev -> Europe/Kyiv).
LEGACY_TZ = {
    "4.3": {name: target for name, target in IANA_LEGACY_LINKS.items() if not target.startswith("Etc/")},
    "3.13": {"Europe/Kiev": "Europe/Kyiv", "Europe/Uzhgorod": "Europe/Kyiv", "Europe/Zaporozhye": "Europe/Kyiv",
             "Asia/Calcutta": "Asia/Kolkata", "Asia/Saigon": "Asia/Ho_Chi_Minh", "Asia/Katmandu": "Asia/Kathmandu",
             "Asia/Rangoon": "Asia/Yangon", "America/Godthab": "America/Nuuk", "Pacific/Enderbury": "Pacific/Kanton"},
}
VERSIONS = tuple(LEGACY_TZ)
# Names of a tz database that are no zone: Python lists Factory and localtime, the server refuses them.
NOT_ZONES = {"Factory", "localtime", "posixrules"}
TIMEZONES = ((zoneinfo.available_timezones() or {"UTC", "Europe/Rome", "Europe/Riga", "Europe/Brussels"})
             | set(IANA_LEGACY_LINKS.values()) | set(LEGACY_TZ["3.13"].values())) - NOT_ZONES
NOT_FOUND_HTML = ('<!doctype html>\n<html lang="en">\n<head>\n  <title>Not Found</title>\n</head>\n<body>\n'
                  '  <h1>Not Found</h1><p>The requested resource was not found on this server.</p>\n</body>\n</html>\n')
SERVER_ERROR_HTML = ('<!doctype html>\n<html lang="en">\n<head>\n  <title>Server Error (500)</title>\n</head>\n<body>\n'
                     '  <h1>Server Error (500)</h1><p></p>\n</body>\n</html>\n')
UUID = r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}"
# (pattern, allowed methods, view name, auth: "write" | "read")
ROUTES = [
    (r"/api/v3/checks/", ("GET", "POST"), "checks", None),
    (r"/api/v3/checks/(?P<code>%s)" % UUID, ("GET", "POST", "DELETE"), "single", None),
    (r"/api/v3/checks/(?P<unique_key>[0-9a-f]{40})", ("GET",), "by_unique_key", "read"),
    (r"/api/v3/checks/(?P<code>%s)/pause" % UUID, ("POST",), "pause", "write"),
    (r"/api/v3/checks/(?P<code>%s)/resume" % UUID, ("POST",), "resume", "write"),
    (r"/api/v3/checks/(?P<code>%s)/pings/" % UUID, ("GET",), "pings", "write"),
    (r"/api/v3/checks/(?P<code>%s)/pings/(?P<n>\d+)/body" % UUID, ("GET",), "ping_body", "write"),
    (r"/api/v3/channels/", ("GET",), "channels", "write"),
    (r"/ping/(?P<code>%s)(?:/(?P<action>start|fail|log|\d+))?" % UUID, ("GET", "HEAD", "POST"), "ping", None),
    (r"/ping/(?P<ping_key>[\w-]+)/(?P<slug>[\w-]+)(?:/(?P<action>start|fail|log|\d+))?", ("GET", "HEAD", "POST"),
     "ping_slug", None),
]
# Field order of the server's Spec model: the first failing field (in this order) names the error.
SPEC = [("channels", "str", None), ("desc", "str", None), ("failure_kw", "str", 200), ("filter_body", "bool", None),
        ("filter_subject", "bool", None), ("grace", "period", None), ("manual_resume", "bool", None),
        ("methods", "methods", None), ("name", "str", 100), ("schedule", "schedule", 100), ("slug", "slug", 100),
        ("start_kw", "str", 200), ("success_kw", "str", 200), ("tags", "str", None), ("timeout", "period", None),
        ("tz", "tz", None), ("unique", "unique", None)]
CRON_RANGES = [(0, 59, ()), (0, 23, ()), (1, 31, ()),
               (1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
               (0, 7, ("sun", "mon", "tue", "wed", "thu", "fri", "sat"))]
ONCALENDAR_WORDS = {"minutely", "hourly", "daily", "weekly", "monthly", "yearly", "annually", "quarterly",
                    "semiannually"}


class HTTPAnswer(Exception):
    def __init__(self, status, body=b"", ctype="text/html; charset=utf-8", headers=None):
        self.status, self.headers = status, dict(headers or {})
        self.body = body if isinstance(body, bytes) else body.encode()
        self.ctype = ctype


def json_answer(status, doc):
    return HTTPAnswer(status, json.dumps(doc), "application/json")


def error(message, status=400):
    return json_answer(status, {"error": message})


def now():
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


def isostring(value):
    return value.isoformat() if value else None


def cron_valid(expr):
    fields = expr.split()
    for value, (low, high, names) in zip(fields, CRON_RANGES):
        for item in value.split(","):
            base, slash, step = item.partition("/")
            if slash and not (step.isdigit() and int(step) > 0):
                return False
            if base in ("*", "?") or re.fullmatch(r"L|LW|\d{1,2}W|[0-7]L|[0-7]#[1-5]", base):
                continue
            if not all(p.lower() in names or (p.isdigit() and low <= int(p) <= high) for p in base.split("-", 1)):
                return False
    return True


def oncalendar_valid(expr):
    if not expr.strip():
        return False
    for line in expr.strip().splitlines():
        words = line.split()
        has_time = any(re.fullmatch(r"[\d*,./~-]*:[\d*,:./-]+", w) for w in words)
        if not words or not (words[0].lower() in ONCALENDAR_WORDS or has_time):
            return False
    return True


def validate_spec(doc, version=VERSIONS[0]):
    """Mimic Spec.model_validate(strict=True) of server `version`: return (spec, None) or (None, error message)."""
    doc = {k: (0.0 if v is None else v) for k, v in doc.items()}  # the server turns null into a float
    spec = {}
    for field, kind, max_len in SPEC:
        if field not in doc:
            continue
        value = doc[field]
        problem = None
        if kind in ("str", "slug", "schedule", "tz"):
            if not isinstance(value, str):
                problem = "is not a string"
            elif max_len and len(value) > max_len:
                problem = "is too long"
            elif kind == "slug" and not re.fullmatch(r"[a-z0-9-_]*", value):
                problem = "does not match pattern"
            elif kind == "schedule" and not (cron_valid(value) if guess_kind(value) == "cron" else
                                             oncalendar_valid(value)):
                problem = "is not a valid cron or OnCalendar expression"
            elif kind == "tz":
                value = LEGACY_TZ[version].get(value, value)
                accepted = TIMEZONES - set(LEGACY_TZ[version]) if version != "3.13" else TIMEZONES
                problem = None if value in accepted else "is not a valid timezone"
        elif kind == "bool":
            problem = None if isinstance(value, bool) else "is not a boolean"
        elif kind == "period":
            if not isinstance(value, int):  # bool is an int here too, as on the server
                problem = "is not a number"
            elif value < 60:
                problem = "is too small"
            elif value > MAX_PERIOD:
                problem = "is too large"
        elif kind == "methods":
            problem = None if value in ("", "POST") and isinstance(value, str) else "has unexpected value"
        elif kind == "unique":
            if not isinstance(value, list):
                problem = "is not an array"
            elif any(v not in ("name", "slug", "tags", "timeout", "grace") for v in value):
                return None, "json validation error: an item in 'unique' has unexpected value"
        if problem:
            return None, "json validation error: %s %s" % (field, problem)
        spec[field] = value
    return spec, None


def guess_kind(schedule):
    return "cron" if "\n" not in schedule.strip() and len(schedule.split()) == 5 else "oncalendar"


class FakeHealthchecks:
    """The fake server. State is guarded by one lock; every response is recorded (method, path, status)."""

    def __init__(self, config=None):
        config = copy.deepcopy(config or {})
        self.site_root = config.get("site_root")
        self.ping_endpoint = config.get("ping_endpoint")
        self.ping_body_limit = config.get("ping_body_limit", 10000)
        self.version = config.get("version", VERSIONS[0])  # whose time zone rules: "4.3" or "3.13"
        if self.version not in VERSIONS:
            raise ValueError("version must be one of %s, got %r" % (", ".join(VERSIONS), self.version))
        self.projects = []
        for index, project in enumerate(config.get("projects") or [{}]):
            suffix = "%02d" % index
            project = dict({
                "name": "project%s" % suffix,
                "api_key": "hcw_fake_read_write_key_%s______" % suffix,
                "api_key_readonly": "hcr_fake_read_only_key_%s_______" % suffix,
                "ping_key": "fake-ping-key-%s" % suffix,
                "check_limit": config.get("check_limit", 500),
                "channels": [{"name": "ops-email", "kind": "email"}, {"name": "ops-slack", "kind": "slack"}],
            }, **project)
            project["channels"] = [dict(c, id=c.get("id") or str(uuidlib.uuid4())) for c in project["channels"]]
            project["checks"] = {}
            self.projects.append(project)
        self.lock = threading.Lock()
        self.log, self.faults, self.ping_log = [], [], []
        self.server = self.thread = None

    # ---- lifecycle and test helpers
    @property
    def api_key(self):
        return self.projects[0]["api_key"]

    @property
    def api_key_readonly(self):
        return self.projects[0]["api_key_readonly"]

    def start(self, host="127.0.0.1", port=0):
        fake = self

        class Handler(RequestHandler):
            server_fake = fake

        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        bound = self.server.server_address[1]
        public = socket.gethostname() if host in ("0.0.0.0", "::", "") else host
        self.url = "http://%s:%d" % (host if host not in ("0.0.0.0", "::", "") else "127.0.0.1", bound)
        self.site_root = self.site_root or "http://%s:%d" % (public, bound)
        self.ping_endpoint = self.ping_endpoint or self.site_root + "/ping/"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()
        return self

    def stop(self):
        if self.server:
            self.server.shutdown()
            self.server.server_close()
            self.server = None

    def __enter__(self):
        return self.start() if self.server is None else self

    def __exit__(self, *exc):
        self.stop()

    def add_fault(self, path, status=None, count=1, method=None, headers=None, body=None, delay=0):
        """Answer the next `count` requests to `path` (exact; a trailing * makes it a prefix) with `status`,
        after `delay` seconds; with status None, only delay them."""
        with self.lock:
            self.faults.append(dict(path=path, status=status, count=count, method=method, headers=headers or {},
                                    body=body, delay=delay))

    def requests(self, prefix="/api/"):
        with self.lock:
            return [r for r in self.log if r["path"].startswith(prefix)]

    def clear_requests(self):
        with self.lock:
            self.log.clear()

    def add_check(self, project=0, **fields):
        """Create a check directly (bypassing the API), e.g. in another project."""
        with self.lock:
            check = self.new_check(self.projects[project])
            check.update(fields)
            return check["code"]

    def checks(self, project=0):
        with self.lock:
            return [self.to_dict(c) for c in self.projects[project]["checks"].values()]

    # ---- model
    def new_check(self, project):
        code = str(uuidlib.uuid4())
        check = dict(code=code, name="", slug="", tags="", desc="", kind="simple", timeout=86400,
                     grace=3600, schedule="* * * * *", tz="UTC", manual_resume=False, methods="", start_kw="",
                     success_kw="", failure_kw="", filter_subject=False, filter_body=False, channels=set(),
                     status="new", last_ping=None, last_start=None, last_duration=None, n_pings=0, pings=[],
                     created=now())
        project["checks"][code] = check
        return check

    def status(self, check):
        moment = now()
        if check["last_start"] and moment >= check["last_start"] + dt.timedelta(seconds=check["grace"]):
            return "down"
        if check["status"] != "up" or check["kind"] != "simple":
            return check["status"]
        grace_start = check["last_ping"] + dt.timedelta(seconds=check["timeout"])
        if moment >= grace_start + dt.timedelta(seconds=check["grace"]):
            return "down"
        return "grace" if moment >= grace_start else "up"

    def to_dict(self, check, readonly=False):
        unique_key = hashlib.sha1(uuidlib.UUID(check["code"]).hex[:16].encode()).hexdigest()
        result = {k: check[k] for k in ("name", "slug", "tags", "desc", "grace", "n_pings", "manual_resume",
                                        "methods", "start_kw", "success_kw", "failure_kw", "filter_subject",
                                        "filter_body")}
        next_ping = None
        if check["status"] == "up" and check["kind"] == "simple":
            next_ping = check["last_ping"] + dt.timedelta(seconds=check["timeout"])
        result.update(status=self.status(check), started=check["last_start"] is not None,
                      last_ping=isostring(check["last_ping"]), next_ping=isostring(next_ping),
                      badge_url="%s/b/2/%s.svg" % (self.site_root, unique_key))
        if check["last_duration"] is not None:
            result["last_duration"] = check["last_duration"]
        if readonly:
            result["unique_key"] = unique_key
        else:
            api = "%s/api/v3/checks/%s" % (self.site_root, check["code"])
            result.update(uuid=check["code"], ping_url=self.ping_endpoint + check["code"], update_url=api,
                          pause_url=api + "/pause", resume_url=api + "/resume",
                          channels=",".join(sorted(check["channels"])))
        if check["kind"] == "simple":
            result["timeout"] = check["timeout"]
        else:
            result.update(schedule=check["schedule"], tz=check["tz"])
        return result

    def apply(self, check, spec, project):
        """The server's _update(): validate channels first (nothing saved on error), then write the sent keys."""
        new_channels = None
        if "channels" in spec:
            available = project["channels"]
            if spec["channels"] == "*":
                new_channels = {c["id"] for c in available}
            elif spec["channels"] == "":
                new_channels = set()
            else:
                new_channels = set()
                for ident in spec["channels"].split(","):
                    if ident == "":
                        raise error("empty channel identifier")
                    matches = [c for c in available if c["id"] == ident or c["name"] == ident]
                    if not matches:
                        raise error("invalid channel identifier: %s" % ident)
                    if len(matches) > 1:
                        raise error("non-unique channel identifier: %s" % ident)
                    new_channels.add(matches[0]["id"])
        if check is None:
            check = self.new_check(project)
        if spec.get("schedule"):  # a schedule wins over a timeout sent with it
            check.update(kind=guess_kind(spec["schedule"]), schedule=spec["schedule"])
        elif spec.get("timeout"):
            check.update(kind="simple", timeout=spec["timeout"])
        for key in ("name", "slug", "tags", "desc", "manual_resume", "methods", "tz", "start_kw", "success_kw",
                    "failure_kw", "filter_subject", "filter_body", "grace"):
            if key in spec:
                check[key] = spec[key]
        if new_channels is not None:
            check["channels"] = new_channels
        return check

    # ---- API views (called with the lock held)
    def authorize(self, req, write):
        key = req.headers.get("X-Api-Key")
        if key is None:
            key = str(req.json.get("api_key", "")) if write else ""
        if len(key) != 32:
            raise error("missing api key", 401)
        for project in self.projects:
            if key == project["api_key"] or (not write and key == project["api_key_readonly"]):
                return project, key != project["api_key"]
        raise error("wrong api key", 401)

    def owned(self, project, code):
        for other in self.projects:
            if code in other["checks"]:
                if other is not project:
                    raise HTTPAnswer(403)
                return other["checks"][code]
        raise HTTPAnswer(404, NOT_FOUND_HTML)

    def view_checks(self, req):
        if req.method == "GET":
            project, readonly = self.authorize(req, write=False)
            tags = set(req.query.get("tag", []))
            slug = (req.query.get("slug") or [""])[0]
            return json_answer(200, {"checks": [
                self.to_dict(c, readonly) for c in project["checks"].values()
                if tags <= set(c["tags"].split()) and (not slug or c["slug"] == slug)]})
        project, _readonly = self.authorize(req, write=True)
        spec, problem = validate_spec(req.json, self.version)
        if problem:
            raise error(problem)
        check = None
        if spec.get("unique") and all(f in spec for f in spec["unique"]):
            for candidate in project["checks"].values():
                if all(candidate[f] == spec[f] for f in spec["unique"]):
                    check = candidate
                    break
        if check is None and len(project["checks"]) >= project["check_limit"]:
            raise HTTPAnswer(403)
        created = check is None
        check = self.apply(check, spec, project)
        return json_answer(201 if created else 200, self.to_dict(check))

    def view_single(self, req, code):
        if req.method == "GET":
            project, readonly = self.authorize(req, write=False)
            return json_answer(200, self.to_dict(self.owned(project, code), readonly))
        project, _readonly = self.authorize(req, write=True)
        check = self.owned(project, code)
        if req.method == "DELETE":
            del project["checks"][code]
            return json_answer(200, self.to_dict(check))
        spec, problem = validate_spec(req.json, self.version)
        if problem:
            raise error(problem)
        return json_answer(200, self.to_dict(self.apply(check, spec, project)))

    def view_by_unique_key(self, req, project, readonly, unique_key):
        for check in project["checks"].values():
            if self.to_dict(check, True)["unique_key"] == unique_key:
                return json_answer(200, self.to_dict(check, readonly))
        raise HTTPAnswer(404, NOT_FOUND_HTML)

    def view_pause(self, req, project, readonly, code):
        check = self.owned(project, code)
        check.update(status="paused", last_start=None)
        return json_answer(200, self.to_dict(check))

    def view_resume(self, req, project, readonly, code):
        check = self.owned(project, code)
        if check["status"] != "paused":
            raise HTTPAnswer(409, "check is not paused", "text/plain; charset=utf-8")
        check.update(status="new", last_start=None, last_ping=None)
        return json_answer(200, self.to_dict(check))

    def view_pings(self, req, project, readonly, code):
        check = self.owned(project, code)
        pings = []
        for ping in reversed(check["pings"]):
            doc = {k: ping[k] for k in ("type", "date", "n", "scheme", "remote_addr", "method", "ua", "rid")}
            if ping["body"]:
                doc["body_url"] = "%s/api/v3/checks/%s/pings/%d/body" % (self.site_root, code, ping["n"])
            pings.append(doc)
        return json_answer(200, {"pings": pings})

    def view_ping_body(self, req, project, readonly, code, n):
        check = self.owned(project, code)
        for ping in check["pings"]:
            if ping["n"] == int(n) and ping["body"]:
                return HTTPAnswer(200, ping["body"], "text/plain")
        raise HTTPAnswer(404, NOT_FOUND_HTML)

    def view_channels(self, req, project, readonly):
        return json_answer(200, {"channels": [{k: c[k] for k in ("id", "name", "kind")} for c in project["channels"]]})

    # ---- pings
    def view_ping_slug(self, req, ping_key, slug, action=None):
        project = next((p for p in self.projects if p["ping_key"] == ping_key), None)
        matches = [c for c in project["checks"].values() if c["slug"] == slug] if project else []
        if len(matches) > 1:
            raise HTTPAnswer(409, "ambiguous slug", "text/plain; charset=utf-8")
        if not matches:
            if project is None or req.query.get("create") != ["1"]:
                raise HTTPAnswer(404, "not found", "text/plain; charset=utf-8")
            check = self.apply(None, {"name": slug, "slug": slug, "channels": "*"}, project)
            answer = self.view_ping(req, check["code"], action)
            return HTTPAnswer(201, "Created", answer.ctype, answer.headers) if answer.status == 200 else answer
        return self.view_ping(req, matches[0]["code"], action)

    def view_ping(self, req, code, action=None):
        check = next((p["checks"][code] for p in self.projects if code in p["checks"]), None)
        if check is None:
            raise HTTPAnswer(404, "not found", "text/plain; charset=utf-8")
        exitstatus = int(action) if action and action.isdigit() else None
        if exitstatus is not None and exitstatus > 255:
            raise HTTPAnswer(400, "invalid url format", "text/plain; charset=utf-8")
        rid = (req.query.get("rid") or [None])[0]
        if rid is not None:
            try:
                rid = str(uuidlib.UUID(rid))
            except ValueError:
                raise HTTPAnswer(400, "invalid uuid format", "text/plain; charset=utf-8")
        kind = "fail" if exitstatus else ("success" if exitstatus == 0 or not action else action)
        if (check["methods"] == "POST" and req.method != "POST") or (check["status"] == "paused"
                                                                     and check["manual_resume"]):
            kind = "ign"
        moment = now()
        if kind == "start":
            check["last_start"] = moment
        elif kind in ("success", "fail"):
            check["last_duration"] = int((moment - check["last_start"]).total_seconds()) if check["last_start"] else None
            check.update(last_ping=moment, last_start=None, status="up" if kind == "success" else "down")
        check["n_pings"] += 1
        body = req.body[:self.ping_body_limit]
        ping = dict(n=check["n_pings"], type=kind, date=moment.isoformat(), scheme="http",
                    remote_addr=req.client_address[0], method=req.method, ua=req.headers.get("User-Agent", ""),
                    rid=rid, exitstatus=exitstatus, body=body)
        check["pings"].append(ping)
        self.ping_log.append(dict(ping, check=check["name"], uuid=code, body=body.decode("utf-8", "replace")))
        return HTTPAnswer(200, "OK", "text/plain; charset=utf-8", {"Ping-Body-Limit": str(self.ping_body_limit)})

    # ---- dispatch
    def dispatch(self, req):
        for pattern, methods, view, auth in ROUTES:
            match = re.fullmatch(pattern, req.path)
            if match:
                break
        else:
            if any(re.fullmatch(route[0], req.path + "/") for route in ROUTES):  # Django's APPEND_SLASH
                location = req.path + "/" + ("?" + req.query_string if req.query_string else "")
                raise HTTPAnswer(301, b"", headers={"Location": location})
            raise HTTPAnswer(404, NOT_FOUND_HTML)
        if req.method == "OPTIONS":
            raise HTTPAnswer(204)
        if req.method not in methods:
            raise HTTPAnswer(405)
        if req.method == "POST" and req.path.startswith("/api/") and req.body:
            try:
                req.json = json.loads(req.body.decode())
            except ValueError:
                raise error("could not parse request body")
            if not isinstance(req.json, dict):
                raise error("json validation error: value is not an object")
        kwargs = {k: v for k, v in match.groupdict().items() if v is not None}
        if auth:
            project, readonly = self.authorize(req, write=auth == "write")
            kwargs.update(project=project, readonly=readonly)
        return getattr(self, "view_" + view)(req, **kwargs)

    def admin(self, req):
        name = req.path[len("/_admin/"):]
        if (req.method, name) == ("GET", "requests"):
            return json_answer(200, {"requests": self.log})
        if (req.method, name) == ("DELETE", "requests"):
            self.log.clear()
            return json_answer(200, {})
        if (req.method, name) == ("GET", "pings"):
            return json_answer(200, {"pings": self.ping_log})
        if (req.method, name) == ("GET", "checks"):
            return json_answer(200, {"checks": [dict(self.to_dict(c), project=p["name"])
                                                for p in self.projects for c in p["checks"].values()]})
        if (req.method, name) == ("POST", "faults"):
            fault = json.loads(req.body or b"{}")
            self.faults.append(dict(dict(status=None, count=1, method=None, headers={}, body=None, delay=0), **fault))
            return json_answer(200, {})
        if (req.method, name) == ("POST", "version"):  # {"version": "3.13"}: behave as that server version
            version = json.loads(req.body or b"{}").get("version")
            if version not in VERSIONS:
                return error("version must be one of %s" % ", ".join(VERSIONS))
            self.version = version
            return json_answer(200, {"version": version})
        if (req.method, name) == ("DELETE", "faults"):
            self.faults.clear()
            return json_answer(200, {})
        raise HTTPAnswer(404, NOT_FOUND_HTML)

    def take_fault(self, req):
        for fault in self.faults:
            path = fault["path"]
            hit = req.path.startswith(path[:-1]) if path.endswith("*") else req.path == path
            if hit and fault["count"] > 0 and fault["method"] in (None, req.method):
                fault["count"] -= 1
                return fault
        return None

    def concerns(self, req):
        """The name of the check an API request is about (recorded with it, so that a reader of the request log can
        pick the requests about its own checks when several clients share the server): the check of a
        checks/<uuid> path (looked up before a DELETE removes it), the `name` of a POST checks/ body; else None."""
        match = re.match(r"/api/v\d+/checks/(%s)" % UUID, req.path)
        if match:
            check = next((p["checks"][match.group(1)] for p in self.projects if match.group(1) in p["checks"]), None)
            return check["name"] if check else None
        if req.method == "POST" and re.fullmatch(r"/api/v\d+/checks/", req.path):
            try:
                body = json.loads(req.body or b"{}")
            except ValueError:
                return None
            return body.get("name") if isinstance(body, dict) and isinstance(body.get("name"), str) else None
        return None

    def handle(self, req):
        if req.path.startswith("/_admin/"):
            with self.lock:
                return self.admin(req)
        with self.lock:
            fault = self.take_fault(req)
            concerns = self.concerns(req)
        if fault and fault["delay"]:
            time.sleep(fault["delay"])
        with self.lock:
            if fault and fault["status"]:
                body = fault["body"] if fault["body"] is not None else (
                    SERVER_ERROR_HTML if fault["status"] >= 500 else "")
                answer = HTTPAnswer(fault["status"], body, headers=fault["headers"])
            else:
                try:
                    answer = self.dispatch(req)
                except HTTPAnswer as e:
                    answer = e
            path = req.path
            for project in self.projects:  # record no key values
                path = path.replace("/ping/%s/" % project["ping_key"], "/ping/<ping_key>/")
            self.log.append(dict(method=req.method, path=path + ("?" + req.query_string if req.query_string else ""),
                                 status=answer.status, check=concerns))
            return answer


class RequestHandler(BaseHTTPRequestHandler):
    server_fake = None
    protocol_version = "HTTP/1.1"

    def log_message(self, *args):
        pass

    def _any(self):
        parts = urlsplit(self.path)
        self.query_string = parts.query
        self.query = parse_qs(parts.query, keep_blank_values=True)
        length = int(self.headers.get("Content-Length") or 0)
        self.body = self.rfile.read(length) if length else b""
        self.json = {}
        self.method, self.path = self.command, parts.path
        try:
            answer = self.server_fake.handle(self)
        except HTTPAnswer as e:
            answer = e
        try:
            self.send_response(answer.status)
            if answer.status != 204:
                self.send_header("Content-Type", answer.ctype)
            for name, value in answer.headers.items():
                self.send_header(name, str(value))
            self.send_header("Content-Length", str(len(answer.body)))
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(answer.body)
        except (BrokenPipeError, ConnectionResetError):  # the client gave up (e.g. an injected delay)
            self.close_connection = True

    do_GET = do_POST = do_DELETE = do_PUT = do_PATCH = do_HEAD = do_OPTIONS = _any


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n", maxsplit=1)[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--config", help="JSON file: projects (api_key, api_key_readonly, ping_key, channels, "
                                         "check_limit), site_root, ping_endpoint, ping_body_limit, check_limit, "
                                         "version (4.3 or 3.13)")
    args = parser.parse_args()
    config = {}
    if args.config:
        with open(args.config) as handle:
            config = json.load(handle)
    fake = FakeHealthchecks(config).start(args.host, args.port)
    print("fake Healthchecks on %s (listening on %s:%d, site root %s, pings at %s)" % (
        fake.url, args.host, fake.server.server_address[1], fake.site_root, fake.ping_endpoint), flush=True)
    for project in fake.projects:
        print("project %s: %d channels" % (project["name"], len(project["channels"])), flush=True)
    try:
        fake.thread.join()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
