# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""ofelia (mcuadros/ofelia 0.3.x) schedules and configuration files.

Pure Python, no Ansible imports: used by the filter plugins on the controller, by the tests to
validate rendered configs, and by the lab's ofelia stand-in. It reproduces what the real daemon
does with a config (see REFERENCE.md, section 4):
- schedules are robfig/cron v1 specs: six fields, seconds first, or a descriptor;
- the file is gcfg (git-config style): quoted job names, case-insensitive keys, `;`/`#` comments
  outside double quotes, backslash escapes, unknown sections or keys are fatal.
"""

from __future__ import annotations

import re

# ---------------------------------------------------------------- schedules (robfig/cron v1)

_FIELDS = (
    # name, low, high, names
    ("seconds", 0, 59, None),
    ("minutes", 0, 59, None),
    ("hours", 0, 23, None),
    ("day of month", 1, 31, None),
    ("month", 1, 12, ("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec")),
    ("day of week", 0, 6, ("sun", "mon", "tue", "wed", "thu", "fri", "sat")),
)
_DESCRIPTORS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_DURATION_UNITS = {"ns": 1e-9, "us": 1e-6, "\u00b5s": 1e-6, "ms": 1e-3, "s": 1, "m": 60, "h": 3600}
_DURATION_RE = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|\u00b5s|ms|s|m|h)")


class ScheduleError(ValueError):
    """An ofelia schedule that the daemon would reject or misread."""


def parse_duration(text):
    """Seconds of a Go duration string (time.ParseDuration), e.g. '1h30m'."""
    pos, total = 0, 0.0
    if not text:
        raise ScheduleError("empty duration")
    for match in _DURATION_RE.finditer(text):
        if match.start() != pos:
            break
        total += float(match.group(1)) * _DURATION_UNITS[match.group(2)]
        pos = match.end()
    if pos != len(text):
        raise ScheduleError("'%s' is not a Go duration such as 30m, 1h or 1h30m" % text)
    return total


def _parse_value(text, field):
    name, low, high, names = field
    if names and text.lower() in names:
        return names.index(text.lower()) + low
    if not text.isdigit():
        raise ScheduleError("%s: '%s' is not a number" % (name, text))
    value = int(text)
    if not low <= value <= high:
        raise ScheduleError("%s: %d is out of range %d-%d" % (name, value, low, high))
    return value


def _check_field(text, field):
    name = field[0]
    if text in ("*", "?"):
        if text == "?" and name not in ("day of month", "day of week"):
            raise ScheduleError("%s: '?' is only allowed in the day fields" % name)
        return
    for part in text.split(","):
        rng, dummy, step = part.partition("/")
        if step and (not step.isdigit() or int(step) == 0):
            raise ScheduleError("%s: bad step '%s'" % (name, step))
        if rng in ("*", "?"):
            continue
        start, dash, end = rng.partition("-")
        first = _parse_value(start, field)
        if dash:
            if _parse_value(end, field) < first:
                raise ScheduleError("%s: range '%s' ends before it starts" % (name, rng))


def validate_schedule(spec):
    """Raise ScheduleError unless ``spec`` means the same on every ofelia version.

    Six fields (seconds first) or a descriptor. A five-field spec is refused: ofelia 0.3.x reads
    it with seconds first (``0 2 * * *`` runs every hour at minute 2) while later versions read it
    as classic cron.
    """
    if not isinstance(spec, str) or not spec.strip():
        raise ScheduleError("the schedule is empty")
    spec = spec.strip()
    if spec.startswith("@"):
        if spec.startswith("@every "):
            if parse_duration(spec[len("@every "):].strip()) < 1:
                raise ScheduleError("@every needs a duration of at least 1s")
            return
        if spec not in _DESCRIPTORS:
            raise ScheduleError("unknown descriptor '%s' (use %s or @every <duration>)"
                                % (spec, ", ".join(sorted(_DESCRIPTORS))))
        return
    fields = spec.split()
    if len(fields) != 6:
        raise ScheduleError(
            "'%s' has %d fields; ofelia needs 6 (seconds minutes hours day-of-month month day-of-week), "
            "e.g. '0 30 2 * * *' for 02:30 every day, or a descriptor such as @daily" % (spec, len(fields)))
    for text, field in zip(fields, _FIELDS):
        _check_field(text, field)


def schedule_error(spec):
    """The reason ``spec`` is invalid, or '' when it is valid."""
    try:
        validate_schedule(spec)
    except ScheduleError as exc:
        return str(exc)
    return ""


def to_cron(spec):
    """The five-field cron expression (minute first) that fires when ofelia's ``spec`` fires.

    Used for host crontabs and for Healthchecks' cron checks. Raises ScheduleError when there is
    no exact equivalent (a seconds field other than 0, an @every that does not divide an hour or
    a day).
    """
    validate_schedule(spec)
    spec = spec.strip()
    if spec in _DESCRIPTORS:
        return _DESCRIPTORS[spec]
    if spec.startswith("@every "):
        seconds = int(parse_duration(spec[len("@every "):].strip()))
        if seconds % 3600 == 0 and 24 % (seconds // 3600) == 0:
            hours = seconds // 3600
            return "0 0 * * *" if hours == 24 else ("0 * * * *" if hours == 1 else "0 */%d * * *" % hours)
        if seconds % 60 == 0 and 60 % (seconds // 60) == 0:
            minutes = seconds // 60
            return "* * * * *" if minutes == 1 else "*/%d * * * *" % minutes
        raise ScheduleError("'%s' has no cron equivalent (use a duration that divides an hour or a day)" % spec)
    fields = spec.split()
    if fields[0] not in ("0", "00"):
        raise ScheduleError("'%s' fires at second %s; cron only knows whole minutes (use 0 seconds)"
                            % (spec, fields[0]))
    return " ".join("*" if f == "?" else f for f in fields[1:])


def to_healthchecks(spec):
    """How Healthchecks should expect a job of schedule ``spec``: ``{"schedule": cron}`` or ``{"timeout": s}``.

    ``@every`` runs count from the daemon's start, not the wall clock, so they become a period
    (timeout). Six-field specs become their cron minute (a seconds field only shifts the run within
    that minute, which the grace time covers).
    """
    validate_schedule(spec)
    spec = spec.strip()
    if spec.startswith("@every "):
        return {"timeout": max(60, int(parse_duration(spec[len("@every "):].strip())))}
    if spec in _DESCRIPTORS:
        return {"schedule": _DESCRIPTORS[spec]}
    return {"schedule": " ".join("*" if f == "?" else f for f in spec.split()[1:])}


# ---------------------------------------------------------------- config files (gcfg)

# Keys that mcuadros/ofelia 0.3.x knows (gcfg maps Go field names case-insensitively).
_MIDDLEWARE_KEYS = {
    "slack-webhook", "slack-only-on-error", "save-folder", "save-only-on-error", "smtp-host",
    "smtp-port", "smtp-user", "smtp-password", "smtp-tls-skip-verify", "email-to", "email-from",
    "mail-only-on-error",
}
_JOB_KEYS = {"schedule", "command", "no-overlap"} | _MIDDLEWARE_KEYS
SECTION_KEYS = {
    "global": _MIDDLEWARE_KEYS,
    "job-exec": _JOB_KEYS | {"container", "user", "tty", "environment"},
    "job-local": _JOB_KEYS | {"dir", "environment"},
    "job-run": _JOB_KEYS | {"image", "network", "user", "container", "tty", "delete", "pull",
                            "volume", "environment"},
    "job-service-run": _JOB_KEYS | {"image", "network", "user", "tty", "delete"},
}
MULTI_VALUED = {"environment", "volume"}
_BOOL_KEYS = {"no-overlap", "tty", "delete", "pull", "slack-only-on-error", "save-only-on-error",
              "mail-only-on-error", "smtp-tls-skip-verify"}
_BOOL_VALUES = {"", "true", "yes", "on", "1", "false", "no", "off", "0"}


class ConfigError(ValueError):
    """A config that ofelia would refuse to load."""


def quote(value):
    """A gcfg value that reads back as ``value`` (double-quoted when it holds ; # " \\ or edge blanks)."""
    value = str(value)
    if "\n" in value or "\r" in value:
        raise ConfigError("a value cannot span lines: %r" % value)
    if value != value.strip() or any(c in value for c in ';#"\\'):
        return '"%s"' % value.replace("\\", "\\\\").replace('"', '\\"')
    return value


def _unquote(raw, lineno):
    """gcfg value semantics: strip comments and blanks outside quotes, process escapes."""
    out, quoted, pending_ws, i = [], False, "", 0
    raw = raw.strip()
    while i < len(raw):
        c = raw[i]
        if c == "\\":
            if i + 1 >= len(raw):
                raise ConfigError("line %d: value ends with a backslash" % lineno)
            esc = {"\\": "\\", '"': '"', "n": "\n", "t": "\t", "b": "\b"}.get(raw[i + 1])
            if esc is None:
                raise ConfigError("line %d: invalid escape '\\%s'" % (lineno, raw[i + 1]))
            out.append(pending_ws + esc)
            pending_ws, i = "", i + 2
            continue
        if c == '"':
            quoted = not quoted
        elif not quoted and c in ";#":
            break
        elif not quoted and c.isspace():
            pending_ws += c
        else:
            out.append(pending_ws + c)
            pending_ws = ""
        i += 1
    if quoted:
        raise ConfigError("line %d: unterminated double quote" % lineno)
    return "".join(out)


_SECTION_RE = re.compile(r'^\[\s*([A-Za-z][A-Za-z0-9-]*)\s*(?:"((?:[^"\\]|\\.)*)")?\s*\]\s*(?:[;#].*)?$')
_KEY_RE = re.compile(r"^([A-Za-z][A-Za-z0-9-]*)\s*(?:=(.*))?$")


def parse_config(text):
    """Parse an ofelia config like mcuadros/ofelia 0.3.x does; raise ConfigError where it would fail.

    Returns ``{"global": {key: value}, "jobs": {(kind, name): {key: value or [values]}}}``.
    Schedules are checked too: 0.3.x only logs a bad schedule and skips the job, which for a backup
    is a silent failure, so it is an error here.
    """
    result = {"global": {}, "jobs": {}}
    section = None
    for lineno, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped[0] in ";#":
            continue
        if stripped.startswith("["):
            match = _SECTION_RE.match(stripped)
            if not match:
                raise ConfigError("line %d: bad section header %s" % (lineno, stripped))
            kind, name = match.group(1).lower(), match.group(2)
            if kind not in SECTION_KEYS:
                raise ConfigError("line %d: unknown section [%s]" % (lineno, kind))
            if kind == "global":
                if name is not None:
                    raise ConfigError("line %d: [global] takes no name" % lineno)
                section = ("global", None, result["global"])
            else:
                if not name:
                    raise ConfigError('line %d: [%s] needs a double-quoted job name' % (lineno, kind))
                section = (kind, name, result["jobs"].setdefault((kind, name), {}))
            continue
        if section is None:
            raise ConfigError("line %d: a key outside of any section" % lineno)
        match = _KEY_RE.match(stripped)
        if not match:
            raise ConfigError("line %d: cannot parse %r" % (lineno, stripped))
        key, raw = match.group(1).lower(), match.group(2)
        if key not in SECTION_KEYS[section[0]]:
            raise ConfigError("line %d: unknown key '%s' in [%s]" % (lineno, key, section[0]))
        value = "" if raw is None else _unquote(raw, lineno)
        if key in _BOOL_KEYS and value.lower() not in _BOOL_VALUES:
            raise ConfigError("line %d: %s must be a boolean, not %r" % (lineno, key, value))
        if key in MULTI_VALUED:
            section[2].setdefault(key, []).append(value)
        else:
            section[2][key] = value
    for (kind, name), keys in result["jobs"].items():
        for required in ("schedule", "command"):
            if not keys.get(required):
                raise ConfigError('[%s "%s"] has no %s' % (kind, name, required))
        if kind == "job-exec" and not keys.get("container"):
            raise ConfigError('[job-exec "%s"] has no container' % name)
        try:
            validate_schedule(keys["schedule"])
        except ScheduleError as exc:
            raise ConfigError('[%s "%s"] schedule: %s' % (kind, name, exc))
    return result


def split_command(command):
    """argv of a job command as ofelia splits it (gobs/args: blanks, quotes, backslashes; no shell)."""
    argv, cur, quote_char, has_token, i = [], [], None, False, 0
    while i < len(command):
        c = command[i]
        if quote_char:
            if c == quote_char:
                quote_char = None
            elif c == "\\" and quote_char == '"' and i + 1 < len(command):
                i += 1
                cur.append(command[i])
            else:
                cur.append(c)
        elif c in "\"'":
            quote_char, has_token = c, True
        elif c == "\\" and i + 1 < len(command):
            i += 1
            cur.append(command[i])
            has_token = True
        elif c.isspace():
            if has_token:
                argv.append("".join(cur))
                cur, has_token = [], False
        else:
            cur.append(c)
            has_token = True
        i += 1
    if has_token:
        argv.append("".join(cur))
    return argv
