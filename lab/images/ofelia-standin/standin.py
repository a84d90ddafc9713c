"""The lab's stand-in for mcuadros/ofelia 0.3.21 (no ofelia binary or image can be had here).

`daemon --config=FILE` loads the config as ofelia 0.3.x does, registers its jobs and runs them on their
schedules; `validate --config=FILE` only loads it. Written from ofelia's rules, independently of the code
that generates the configs (plugins/), so that the two can disagree:
- the file is gcfg (gcfg.py); unknown sections and keys are fatal (gcfg reports them, ofelia refuses);
- schedules are robfig/cron v1 specs (seconds first; five fields = seconds first, day of week `*`), or
  @yearly @annually @monthly @weekly @daily @midnight @hourly, or `@every <Go duration>`; a schedule that
  does not parse drops its job with a warning; no job left: the daemon exits 1, validate still exits 0;
- next fire times in the local zone (TZ), through croniter; @every counted from the last fire;
- job-exec: the command split into argv without a shell (gobs/args), `docker exec -u USER -e ENV...`;
  job-local: the argv run here; no-overlap skips a run while one is running; save-folder keeps each
  run's stdout, stderr and a json, as ofelia's save middleware. job-run and job-service-run are loaded
  and scheduled but not run; slack and mail notifications are not sent.
"""

from __future__ import annotations

import json
import math
import os
import re
import secrets
import shutil
import signal
import subprocess
import sys
import threading
import time
import unicodedata
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gcfg  # noqa: E402  (beside this file)

# ---------------------------------------------------------------- the config's schema (ofelia 0.3.x)
# Key names are the `gcfg:"..."` tags of ofelia's config structs, or the Go field names (matched ignoring
# case) where there is no tag. Every middleware config is embedded in [global] and in every job.

STR, BOOL, INT, LIST = "string", "bool", "int", "list"
_MIDDLEWARES = {
    "slack-webhook": STR, "slack-only-on-error": BOOL,
    "save-folder": STR, "save-only-on-error": BOOL,
    "smtp-host": STR, "smtp-port": INT, "smtp-user": STR, "smtp-password": STR, "smtp-tls-skip-verify": BOOL,
    "email-to": STR, "email-from": STR, "mail-only-on-error": BOOL,
}
_JOB = {"schedule": STR, "name": STR, "command": STR, "no-overlap": BOOL, **_MIDDLEWARES}
SECTIONS = {
    "global": _MIDDLEWARES,
    "job-exec": {**_JOB, "container": STR, "user": STR, "tty": BOOL, "environment": LIST},
    "job-run": {**_JOB, "user": STR, "tty": BOOL, "delete": STR, "pull": STR, "image": STR, "network": STR,
                "container": STR, "volume": LIST, "environment": LIST},
    "job-local": {**_JOB, "dir": STR, "environment": LIST},
    "job-service-run": {**_JOB, "user": STR, "tty": BOOL, "delete": STR, "image": STR, "network": STR},
}
JOB_KINDS = ("job-exec", "job-run", "job-local", "job-service-run")  # the order ofelia adds them in
# go-defaults: a field left empty takes its `default:"..."` tag
_DEFAULTS = {"job-exec": {"user": "root"}, "job-run": {"user": "root", "delete": "true", "pull": "true"},
             "job-service-run": {"delete": "true"}}
_BOOLS = {"true": True, "yes": True, "on": True, "1": True, "false": False, "no": False, "off": False, "0": False}


class ConfigError(ValueError):
    """A config that ofelia refuses to load: the daemon exits 1 and validate fails."""


@dataclass
class Job:
    kind: str
    name: str
    keys: dict = field(default_factory=dict)  # lower-case key -> str, bool, int or list of str

    def get(self, key, default=None):
        return self.keys.get(key, default)

    @property
    def schedule(self):
        return self.keys.get("schedule", "")

    @property
    def command(self):
        return self.keys.get("command", "")


@dataclass
class Config:
    global_: dict
    jobs: list

    def job(self, kind, name):
        return next(j for j in self.jobs if j.kind == kind and j.name == name)


def _convert(kind, entry):
    """The Go value of one variable, or ConfigError as gcfg's setters give it."""
    where = "line %d: %s" % (entry.line, entry.name)
    if kind == BOOL:
        if entry.blank:
            return True
        if entry.value.lower() not in _BOOLS:
            raise ConfigError("%s: failed to parse %s as bool" % (where, go_quote(entry.value)))
        return _BOOLS[entry.value.lower()]
    if entry.blank:
        raise ConfigError("%s: blank value not supported for type" % where)
    if kind == INT:
        text = entry.value.strip()
        if re.fullmatch(r"[+-]?0[xX][0-9a-fA-F]+", text):
            return int(text, 16)
        if re.fullmatch(r"[+-]?[0-9]+", text):
            return int(text)
        raise ConfigError("%s: failed to parse %s as int" % (where, go_quote(entry.value)))
    return entry.value


def load_config(text):
    """The Config of an ofelia config file's text (str or bytes), or ConfigError."""
    try:
        entries = gcfg.parse(text)
    except gcfg.GcfgError as exc:
        raise ConfigError(str(exc)) from None
    global_, jobs, extra = {}, {}, []
    # gcfg reads a file twice: sections without subsections first, then those with (the jobs)
    for subsections in (False, True):
        for entry in entries:
            section = entry.section.lower()
            if section not in SECTIONS:
                extra.append("line %d: can't store data at section %s" % (entry.line, go_quote(entry.section)))
                continue
            if (section != "global") != subsections:
                continue
            schema = SECTIONS[section]
            if section == "global":
                if entry.subsection is not None:
                    extra.append("line %d: can't store data at section \"global\", subsection %s"
                                 % (entry.line, go_quote(entry.subsection)))
                    continue
                target = global_
            else:
                name = entry.subsection or ""  # [job-exec] alone is the job named ""
                target = jobs.setdefault((section, name), Job(section, name)).keys
            if entry.name is None:
                continue
            key = entry.name.lower()
            if key not in schema:
                extra.append("line %d: can't store data at section %s%s, variable %s" % (
                    entry.line, go_quote(entry.section),
                    "" if entry.subsection is None else ", subsection " + go_quote(entry.subsection),
                    go_quote(entry.name)))
                continue
            if schema[key] == LIST:
                target[key] = [] if entry.blank else target.get(key, []) + [entry.value]
            else:
                target[key] = _convert(schema[key], entry)  # a repeated key: the last one wins
    if extra:
        raise ConfigError("\n".join(dict.fromkeys(extra)))
    for job in jobs.values():
        for key, value in _DEFAULTS.get(job.kind, {}).items():
            if not job.keys.get(key):
                job.keys[key] = value
    ordered = sorted(jobs.values(), key=lambda j: (JOB_KINDS.index(j.kind), j.name))
    return Config(global_, ordered)


def go_quote(text):
    """Go's %q of a string."""
    out = ['"']
    for ch in text:
        if ch in '"\\':
            out.append("\\" + ch)
        elif ch in "\a\b\f\n\r\t\v":
            out.append("\\" + "abfnrtv"["\a\b\f\n\r\t\v".index(ch)])
        elif ch.isprintable():
            out.append(ch)
        elif ord(ch) < 0x80:
            out.append("\\x%02x" % ord(ch))
        else:
            out.append("\\u%04x" % ord(ch) if ord(ch) < 0x10000 else "\\U%08x" % ord(ch))
    return "".join(out) + '"'


# ---------------------------------------------------------------- schedules (robfig/cron v1.2.0)

class ScheduleError(ValueError):
    """A spec that robfig/cron v1 refuses: ofelia logs `Failed to register job` and drops the job."""


# name, min, max, names
_FIELDS = (
    ("second", 0, 59, None), ("minute", 0, 59, None), ("hour", 0, 23, None), ("dom", 1, 31, None),
    ("month", 1, 12, {m: i + 1 for i, m in enumerate("jan feb mar apr may jun jul aug sep oct nov dec".split())}),
    ("dow", 0, 6, {d: i for i, d in enumerate("sun mon tue wed thu fri sat".split())}),
)
DESCRIPTORS = {
    "@yearly": "0 0 0 1 1 *", "@annually": "0 0 0 1 1 *", "@monthly": "0 0 0 1 * *",
    "@weekly": "0 0 0 * * 0", "@daily": "0 0 0 * * *", "@midnight": "0 0 0 * * *", "@hourly": "0 0 * * * *",
}


def _atoi(text):
    """Go's strconv.Atoi, non-negative, with robfig's error texts."""
    if not re.fullmatch(r"[+-]?[0-9]+", text):
        raise ScheduleError("Failed to parse int from %s: strconv.Atoi: parsing %s: invalid syntax"
                            % (text, go_quote(text)))
    if int(text) < 0:
        raise ScheduleError("Negative number (%d) not allowed: %s" % (int(text), text))
    return int(text)


def _number(part, names):
    """A field's number, or a month or day name (any case)."""
    return names[part.lower()] if names and part.lower() in names else _atoi(part)


def _parse_field(text, bounds):
    """(set of values, star) of one field: comma-separated `*`, `?`, N, N-M, each with an optional /step."""
    _, low, high, names = bounds
    values, star = set(), False
    for expr in (part for part in text.split(",") if part):
        range_step = expr.split("/")
        low_high = range_step[0].split("-")
        if low_high[0] in ("*", "?"):
            start, end, star = low, high, True
        else:
            start = end = _number(low_high[0], names)
            if len(low_high) > 2:
                raise ScheduleError("Too many hyphens: %s" % expr)
            if len(low_high) == 2:
                end = _number(low_high[1], names)
        if len(range_step) > 2:
            raise ScheduleError("Too many slashes: %s" % expr)
        step = 1
        if len(range_step) == 2:
            step = _atoi(range_step[1])
            if len(low_high) == 1:  # N/step means N-max/step
                end = high
        if start < low:
            raise ScheduleError("Beginning of range (%d) below minimum (%d): %s" % (start, low, expr))
        if end > high:
            raise ScheduleError("End of range (%d) above maximum (%d): %s" % (end, high, expr))
        if start > end:
            raise ScheduleError("Beginning of range (%d) beyond end of range (%d): %s" % (start, end, expr))
        if step == 0:
            raise ScheduleError("Step of range should be a positive number: %s" % expr)
        values.update(range(start, end + 1, step))
    return values, star


_DURATION_UNITS = {"ns": 1, "us": 10**3, "\u00b5s": 10**3, "\u03bcs": 10**3, "ms": 10**6, "s": 10**9,
                   "m": 60 * 10**9, "h": 3600 * 10**9}
_DURATION_PART = re.compile(r"([0-9]*(?:\.[0-9]*)?)(ns|us|\u00b5s|\u03bcs|ms|s|m|h)")


def parse_go_duration(text):
    """Nanoseconds of a Go duration (time.ParseDuration: 1h30m, 1.5h, 20s, 0), or ScheduleError."""
    rest, sign = text, 1
    if rest[:1] in ("-", "+"):
        sign, rest = (-1 if rest[0] == "-" else 1), rest[1:]
    if rest == "0":
        return 0
    total, pos = 0, 0
    while rest and pos < len(rest):
        match = _DURATION_PART.match(rest, pos)
        if not match or match.group(1) in ("", ".") or not re.match(r"[0-9.]", rest[pos]):
            break
        whole, _, frac = match.group(1).partition(".")
        unit = _DURATION_UNITS[match.group(2)]
        total += int(whole or 0) * unit + (int(frac) * unit // 10 ** len(frac) if frac else 0)
        pos = match.end()
    else:
        if rest:
            return sign * total
    raise ScheduleError("Failed to parse duration @every %s: time: invalid duration %s" % (text, go_quote(text)))


@dataclass
class SpecSchedule:
    fields: list  # six sets of values: second minute hour dom month dow
    dom_star: bool
    dow_star: bool

    def next(self, after):
        """The first fire time strictly after `after` (an aware datetime in the local zone), or None.

        croniter finds the wall-clock times that match; like robfig, which walks absolute time, a wall-clock
        time that does not exist (spring forward) is skipped and one that exists twice (fall back) fires
        twice."""
        from croniter import croniter, CroniterBadDateError  # noqa: PLC0415 (only the scheduler needs it)

        if not all(self.fields):
            return None
        second, minute, hour, dom, month, dow = (",".join(map(str, sorted(f))) for f in self.fields)
        # croniter takes the seconds last; robfig ANDs the day fields when either starts with * or ?
        expr = " ".join((minute, hour, dom, month, dow, second))
        day_or = not (self.dom_star or self.dow_star)
        wall = after.replace(tzinfo=None, microsecond=0, fold=0)
        try:
            found = [self._first(croniter(expr, wall, day_or=day_or), after)]
            repeat = _repeat_start(after)
            if repeat is not None:  # the clock goes back soon: times up to now come again
                candidate = croniter(expr, repeat - timedelta(seconds=1), day_or=day_or).get_next(datetime)
                if candidate <= wall:
                    again = candidate.replace(tzinfo=after.tzinfo, fold=1)  # its second pass
                    found.append(datetime.fromtimestamp(again.timestamp(), after.tzinfo))
        except CroniterBadDateError:
            return None
        found = [f for f in found if f is not None]
        return min(found, key=lambda f: f.timestamp()) if found else None

    @staticmethod
    def _first(matches, after):
        """The first instant after `after` of the wall-clock times croniter yields (each 0, 1 or 2 instants)."""
        zone, stamp = after.tzinfo, after.timestamp()
        while True:
            candidate = matches.get_next(datetime)
            if candidate.year > after.year + 5:
                return None
            for fold in (0, 1):
                instant = candidate.replace(tzinfo=zone, fold=fold)
                exists = datetime.fromtimestamp(instant.timestamp(), zone).replace(tzinfo=None) == candidate
                if exists and instant.timestamp() > stamp:
                    return datetime.fromtimestamp(instant.timestamp(), zone)


def _repeat_start(after):
    """When `after` is in the first pass of a wall-clock hour that a fall back repeats, the wall time the clock
    goes back to (found to the second); else None."""
    zone, stamp = after.tzinfo, after.timestamp()
    gap = after.replace(fold=1).timestamp() - stamp
    if after.fold or gap <= 0:
        return None
    low, high = math.floor(stamp), math.ceil(stamp + gap)  # the offset changes in (low, high]
    while high - low > 1:
        middle = (low + high) // 2
        if datetime.fromtimestamp(middle, zone).utcoffset() == after.utcoffset():
            low = middle
        else:
            high = middle
    return datetime.fromtimestamp(high, zone).replace(tzinfo=None, fold=0)


@dataclass
class EverySchedule:
    seconds: int

    def next(self, after):
        """robfig's ConstantDelaySchedule: the whole second of `after`, plus the delay."""
        return datetime.fromtimestamp(math.floor(after.timestamp()) + self.seconds, after.tzinfo)


def parse_schedule(spec):
    """robfig/cron v1's Parse(spec): a SpecSchedule or EverySchedule, or ScheduleError."""
    if not spec:
        raise ScheduleError("Empty spec string")
    if spec[0] == "@":
        if spec.startswith("@every "):
            nanos = parse_go_duration(spec[len("@every "):])
            return EverySchedule(max(nanos, 10**9) // 10**9)
        if spec not in DESCRIPTORS:
            raise ScheduleError("Unrecognized descriptor: %s" % spec)
        spec = DESCRIPTORS[spec]
    fields = spec.split()
    if not 5 <= len(fields) <= 6:
        raise ScheduleError("Expected 5 to 6 fields, found %d: %s" % (len(fields), spec))
    fields += ["*"] * (6 - len(fields))  # five fields: seconds first, day of week *
    parsed = [_parse_field(text, bounds) for text, bounds in zip(fields, _FIELDS)]
    return SpecSchedule([values for values, _ in parsed], parsed[3][1], parsed[5][1])


def local_zone(environ=None):
    """The zone Go's time.Local takes: TZ unset = /etc/localtime, TZ empty or unknown = UTC."""
    environ = os.environ if environ is None else environ
    tz = environ.get("TZ")
    try:
        if tz is None:
            with open("/etc/localtime", "rb") as handle:
                return ZoneInfo.from_file(handle, key="Local")
        tz = tz[1:] if tz.startswith(":") else tz
        if tz.startswith("/"):
            with open(tz, "rb") as handle:
                return ZoneInfo.from_file(handle, key=tz)
        if tz and tz != "UTC":
            return ZoneInfo(tz)
    except (OSError, ValueError, KeyError):  # ZoneInfoNotFoundError is a KeyError
        pass
    return timezone.utc


# ---------------------------------------------------------------- argv (github.com/gobs/args GetArgs)

_QUOTES = "`'\""
_BRACKETS = {"{": "}", "[": "]", "(": ")"}
_SYMBOLS = "|><#"


def _go_space(ch):
    return ch in "\t\n\v\f\r \x85\xa0" or ch > "\xff" and unicodedata.category(ch) in ("Zs", "Zl", "Zp")


def split_args(line):
    """The argv ofelia runs for a command: split on blanks, no shell. A quote or a bracket opens a word
    only at its start (the quotes are dropped, the word ends at the closing quote); a backslash outside
    quotes escapes the next character; a word starting with | > < # takes the rest of the line."""
    args, pos = [], 0
    while True:
        word, pos = _next_word(line, pos)
        if word is None:
            return args
        args.append(word)


def _next_word(line, pos):
    """(the word starting at pos, or None at the end; where the next one starts)"""
    buf, first, escape, quote, brackets = [], True, False, None, []
    while pos < len(line):
        ch, pos = line[pos], pos + 1
        if ch == "\\" and not escape and quote is None:
            escape, first = True, False
            continue
        if escape:
            escape = False
            buf.append(ch)
            continue
        if first:
            if _go_space(ch):
                continue
            first = False
            if ch in _QUOTES:
                quote = ch
                continue
            if ch in _BRACKETS:
                brackets.append(_BRACKETS[ch])
                buf.append(ch)
                continue
            if ch in _SYMBOLS:
                return ch + line[pos:], len(line)
        if not brackets:
            if quote is None and _go_space(ch) or ch == quote:
                return "".join(buf), pos
            buf.append(ch)
            continue
        buf.append(ch)
        if quote is not None:
            quote = None if ch == quote else quote
        elif ch == brackets[-1]:
            brackets.pop()
            if not brackets:
                return "".join(buf), pos
        elif ch in _QUOTES:
            quote = ch
        elif ch in _BRACKETS:
            brackets.append(_BRACKETS[ch])
    return ("".join(buf) if buf else None), pos


# ---------------------------------------------------------------- loading as the daemon does

def register(config):
    """(registered [(job, schedule)], failed [(job, reason)]) as ofelia's scheduler.AddJob: a job without a
    schedule is left out silently, one whose schedule does not parse with a warning."""
    registered, failed = [], []
    for job in config.jobs:
        if not job.schedule:
            continue
        try:
            registered.append((job, parse_schedule(job.schedule)))
        except ScheduleError as exc:
            failed.append((job, str(exc)))
    return registered, failed


class Logger:
    def __init__(self, stream=None, zone=timezone.utc):
        self.stream, self.zone, self.lock = stream or sys.stdout, zone, threading.Lock()

    def log(self, level, msg):
        now = datetime.now(self.zone).isoformat(timespec="milliseconds")
        with self.lock:
            self.stream.write("%s \u25b6 %s %s\n" % (now, level, msg))
            self.stream.flush()


def _announce(log, config):
    """Registers the jobs, logging each as ofelia's scheduler does; the registered (job, schedule) pairs."""
    registered, failed = register(config)
    for level, text, jobs in (("NOTICE", "New job registered", registered), ("WARNING", "Failed to register job", failed)):
        for job, _ in jobs:
            log.log(level, "%s %s - %s - %s" % (text, go_quote(job.name), go_quote(job.command), go_quote(job.schedule)))
    return registered


def go_duration(nanos):
    """Go's Duration.String(): 1.5s, 2m3.25s, 1h0m0s, 250ms, 0s."""
    def frac(value, unit):
        whole, rest = divmod(value, unit)
        digits = str(rest).rjust(len(str(unit)) - 1, "0").rstrip("0")
        return "%d.%s" % (whole, digits) if digits else str(whole)

    if nanos == 0:
        return "0s"
    sign, nanos = ("-" if nanos < 0 else ""), abs(nanos)
    if nanos < 10**3:
        return "%s%dns" % (sign, nanos)
    if nanos < 10**6:
        return sign + frac(nanos, 10**3) + "\u00b5s"
    if nanos < 10**9:
        return sign + frac(nanos, 10**6) + "ms"
    hours, rest = divmod(nanos, 3600 * 10**9)
    minutes, rest = divmod(rest, 60 * 10**9)
    text = frac(rest, 10**9) + "s"
    if hours or minutes:
        text = "%dm%s" % (minutes, text)
    return sign + ("%dh" % hours if hours else "") + text


# ---------------------------------------------------------------- the daemon

_MAX_STREAM = 10 * 1024 * 1024  # ofelia keeps the last 10 MiB of each stream


class Daemon:
    def __init__(self, config, log, zone, environ=None):
        self.config, self.log, self.zone = config, log, zone
        self.environ = dict(os.environ if environ is None else environ)
        self.stop = threading.Event()
        self.lock = threading.Lock()
        self.running = {}  # job key -> executions in flight
        self.threads = []

    def run(self):
        """Registers the jobs and runs them until stop is set; 1 when no job could be registered."""
        entries = [[job, schedule, None] for job, schedule in _announce(self.log, self.config)]
        if not entries:
            self.log.log("ERROR", "unable to start a empty scheduler.")
            return 1
        self.log.log("DEBUG", "Starting scheduler with %d jobs" % len(entries))
        if any(self.config.global_.get(k) or any(j.get(k) for j in self.config.jobs)
               for k in ("slack-webhook", "smtp-host", "email-to")):
            self.log.log("WARNING", "stand-in: slack and mail notifications are not sent")
        now = datetime.now(self.zone)
        for entry in entries:
            entry[2] = entry[1].next(now)
        while not self.stop.is_set():
            due = [e for e in entries if e[2] is not None]
            wait = min(e[2].timestamp() for e in due) - time.time() if due else 3600.0
            if wait > 0 and self.stop.wait(min(wait, 3600.0)):
                break
            now = datetime.now(self.zone)
            for entry in sorted(due, key=lambda e: e[2].timestamp()):
                if entry[2].timestamp() > now.timestamp():
                    break
                thread = threading.Thread(target=self.execute, args=(entry[0],), daemon=True)
                thread.start()
                self.threads.append(thread)
                entry[2] = entry[1].next(now)
            self.threads = [t for t in self.threads if t.is_alive()]
        self.log.log("WARNING", "Waiting running jobs.")
        for thread in self.threads:
            thread.join()
        return 0

    def execute(self, job):
        key = (job.kind, job.name)
        execution = {"ID": secrets.token_hex(6), "Date": datetime.now(self.zone), "Failed": False,
                     "Skipped": False, "Error": None}
        started = time.monotonic()
        with self.lock:
            self.running[key] = self.running.get(key, 0) + 1
            in_flight = self.running[key]
        prefix = "[Job %s (%s)] " % (go_quote(job.name), execution["ID"])
        self.log.log("NOTICE", prefix + "Started - " + job.command)
        out = err = b""
        try:
            if job.get("no-overlap") and in_flight > 1:
                execution["Skipped"] = True
            else:
                out, err, execution["Error"] = self.run_job(job)
                execution["Failed"] = execution["Error"] is not None
        finally:
            with self.lock:
                self.running[key] -= 1
        execution["Duration"] = int((time.monotonic() - started) * 1e9)
        self.save(job, execution, out[-_MAX_STREAM:], err[-_MAX_STREAM:])
        level = "ERROR" if execution["Failed"] else "WARNING" if execution["Skipped"] else "NOTICE"
        if out:
            self.log.log(level, prefix + "StdOut: " + out[-_MAX_STREAM:].decode("utf-8", "replace"))
        if err:
            self.log.log(level, prefix + "StdErr: " + err[-_MAX_STREAM:].decode("utf-8", "replace"))
        self.log.log(level, prefix + "Finished in %s, failed: %s, skipped: %s, error: %s" % (
            go_quote(go_duration(execution["Duration"])), str(execution["Failed"]).lower(),
            str(execution["Skipped"]).lower(), execution["Error"] or "none"))

    def run_job(self, job):
        """(stdout, stderr, error or None) of one run of the job."""
        argv = split_args(job.command)
        if job.kind == "job-exec":
            docker = ["docker", "exec"] + (["-t"] if job.get("tty") else []) + ["-u", job.get("user")]
            for entry in job.get("environment", []):
                docker += ["-e", entry]
            # the docker CLI sees only its own settings: an `environment` entry without `=` stays unset
            env = {k: v for k, v in self.environ.items() if k.startswith("DOCKER_")}
            env["PATH"] = self.environ.get("PATH", os.defpath)
            res = self._run(docker + [job.get("container", "")] + argv, env=env)
            if isinstance(res, str):
                return b"", b"", "error creating exec: " + res
            error = None if res.returncode == 0 else "error non-zero exit code: %d" % res.returncode
            return res.stdout, res.stderr, error
        if job.kind == "job-local":
            if not argv:
                return b"", b"", "runtime error: index out of range [0] with length 0"
            binary = shutil.which(argv[0], path=self.environ.get("PATH", os.defpath))
            if binary is None:
                return b"", b"", "exec: %s: executable file not found in $PATH" % go_quote(argv[0])
            env = dict(self.environ)
            env.update(e.split("=", 1) for e in job.get("environment", []) if "=" in e)
            res = self._run([binary] + argv[1:], env=env, cwd=job.get("dir") or None, argv0=argv[0])
            if isinstance(res, str):
                return b"", b"", res
            if res.returncode < 0:
                return res.stdout, res.stderr, "signal: %s" % signal.strsignal(-res.returncode).lower()
            return res.stdout, res.stderr, None if res.returncode == 0 else "exit status %d" % res.returncode
        return b"", b"", "%s jobs are not run by the lab's ofelia stand-in" % job.kind

    @staticmethod
    def _run(argv, env, cwd=None, argv0=None):
        try:
            return subprocess.run([argv0 or argv[0]] + argv[1:], executable=argv[0], env=env, cwd=cwd,
                                  stdin=subprocess.DEVNULL, capture_output=True, check=False)
        except OSError as exc:
            return str(exc)

    def save(self, job, execution, out, err):
        """ofelia's save middleware: the job's own save settings, else [global]'s."""
        own = {k: job.get(k) for k in ("save-folder", "save-only-on-error") if job.get(k)}
        settings = own or {k: self.config.global_.get(k) for k in ("save-folder", "save-only-on-error")}
        if not any(settings.values()) or settings.get("save-only-on-error") and not execution["Failed"]:
            return
        stamp = execution["Date"].strftime("%Y%m%d_%H%M%S")
        root = os.path.join(settings.get("save-folder") or "", "%s_%s" % (stamp, job.name))
        record = {"Job": {"Kind": job.kind, "Name": job.name, **{k: v for k, v in job.keys.items()
                                                                   if not k.startswith(("smtp-", "slack-"))}},
                  "Execution": dict(execution, Date=execution["Date"].isoformat(), IsRunning=False)}
        try:
            for suffix, data in ((".stderr.log", err), (".stdout.log", out),
                                 (".json", json.dumps(record, indent=2).encode())):
                with open(root + suffix, "wb") as handle:
                    handle.write(data)
        except OSError as exc:
            self.log.log("ERROR", "Save error: %s" % go_quote(str(exc)))


# ---------------------------------------------------------------- the command line

USAGE = "Usage: ofelia [OPTIONS] <daemon | validate> [--config=FILE]"


def main(argv, environ=None, stream=None):
    environ = os.environ if environ is None else environ
    zone = local_zone(environ)
    log = Logger(stream, zone)
    if not argv or argv[0] not in ("daemon", "validate"):
        print(USAGE, file=sys.stderr)
        return 1
    command, config_file, rest = argv[0], "/etc/ofelia.conf", list(argv[1:])
    while rest:
        arg = rest.pop(0)
        if arg.startswith("--config="):
            config_file = arg[len("--config="):]
        elif arg == "--config" and rest:
            config_file = rest.pop(0)
        else:
            print("unknown argument %s (the stand-in reads only --config)\n%s" % (go_quote(arg), USAGE), file=sys.stderr)
            return 1
    if command == "validate":
        log.log("DEBUG", "Validating %s ... " % go_quote(config_file))
    try:
        with open(config_file, "rb") as handle:
            config = load_config(handle.read())
    except (OSError, ConfigError) as exc:
        if command == "validate":
            log.log("ERROR", "ERROR")
        print(exc, file=stream or sys.stdout, flush=True)
        return 1
    if command == "validate":
        _announce(log, config)
        log.log("DEBUG", "OK")
        return 0
    daemon = Daemon(config, log, zone, environ)

    def on_signal(signum, _frame):
        log.log("WARNING", "Signal received: %s, shutting down the process" % signal.strsignal(signum).lower())
        daemon.stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    return daemon.run()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
