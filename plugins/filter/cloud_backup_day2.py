# -*- coding: utf-8 -*-
# Copyright (c) 2026, infn_cloud.backup contributors
# GNU General Public License v3.0+ (see COPYING or https://www.gnu.org/licenses/gpl-3.0.txt)
"""Filters of the role's day-2 entry points (status, restore, drill, decommission): the fleet status verdicts, the
report as text and HTML, and the redaction of restic's messages before they are shown."""

from __future__ import annotations

import datetime as dt
import html
import json
import os
import re

from urllib.parse import quote

from ansible.errors import AnsibleFilterError

VERDICTS = ("ok", "token expiring", "unmonitored", "late", "failing")  # from best to worst


def cloud_backup_abspath(path):
    """A controller path: ~ expanded, a relative path taken from the directory ansible-playbook was run in."""
    return os.path.abspath(os.path.expanduser(str(path)))


# Environment variables whose values are secrets (passwords, keys, tokens, the SFTP key).
SECRET_NAME_RE = re.compile(r"PASSWORD|SECRET|KEY|TOKEN|PASS$|_PEM$", re.I)
URL_CREDENTIALS_RE = re.compile(r"(?<=://)[^/@\s]+@")
MASK = "********"


def cloud_backup_redact(text, env=None):
    """TEXT (e.g. a line restic or rclone printed) with every secret value of ENV (a one-off container's environment)
    and any credentials in a URL (scheme://user:password@host) masked."""
    text = str(text if text is not None else "")
    values = set()
    for name, value in (env or {}).items():
        value = str(value if value is not None else "")
        if SECRET_NAME_RE.search(str(name)) and len(value) >= 4:
            values.update({value, quote(value, safe="")})
            values.update(line for line in value.replace("\\n", "\n").splitlines() if len(line) >= 8)
    for value in sorted(values, key=len, reverse=True):
        text = text.replace(value, MASK)
    return URL_CREDENTIALS_RE.sub(MASK + "@", text)


def cloud_backup_epoch(stamp):
    """Seconds since the epoch of an RFC 3339 time (restic's nanoseconds and any offset accepted); None for none."""
    if not stamp:
        return None
    text = re.sub(r"\.(\d+)", lambda m: "." + (m.group(1) + "000000")[:6], str(stamp).strip()).replace("Z", "+00:00")
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AnsibleFilterError("not an RFC 3339 time: %r" % stamp)
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.timezone.utc)
    return when.timestamp()


def cloud_backup_age(seconds):
    """A duration in seconds as 3d4h, 5h12m or 42m (n/a for none)."""
    if seconds is None:
        return "n/a"
    seconds = max(0, int(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes = rest // 60
    if days:
        return "%dd%dh" % (days, hours)
    if hours:
        return "%dh%02dm" % (hours, minutes)
    return "%dm" % minutes


def cloud_backup_size(num):
    """Bytes in binary units (n/a for none)."""
    if num is None:
        return "n/a"
    num = float(num)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if num < 1024 or unit == "TiB":
            return ("%d %s" % (num, unit)) if unit == "B" else ("%.1f %s" % (num, unit))
        num /= 1024
    return "n/a"


def _checks_text(jobs, retired):
    """backup-www:up forget:paused(kept) ...; retired: backup-old (paused): each job's check, (kept) when the inventory
    keeps it paused, then the checks of removed sources."""
    text = " ".join("%s:%s%s" % (j["job"], j["status"], "(kept)" if j.get("kept_paused") and j["status"] in ("paused", "missing")
                                 else "") for j in jobs) or "n/a"
    if retired:
        text += "; retired: %s" % ", ".join("%s (%s)" % (j["job"], j["status"]) for j in retired)
    return text


def cloud_backup_status_row(host, facts, now, max_age_hours=26, token_warn_days=7):
    """One host's status and verdict from what the status playbook gathered.

    facts: destination, running (bool), snapshots (restic_snapshots_info result or None), snapshots_error,
    stored_bytes, checks (list of {name, status, last_ping}: the host's checks in Healthchecks), checks_error,
    monitored (bool), expected (the host model's checks, [{name, state}]: one per job of the inventory, state paused
    when the inventory keeps it paused), drill_check (its name), prefix, days_left (float or None), oidc (bool),
    oidc_error, drill (dict from drill.json or None), auth (the model's auth mode), client (bool: a service account's
    client-credentials client), client_error (why it obtains no token; empty when it does). Without expected, every check of the host counts as a job's.
    Verdict, worst first: failing (stack down, repository unreadable, last restore drill failed),
    late (no snapshot younger than max_age_hours, or a job's Healthchecks check down),
    unmonitored (the check of a job of the inventory is paused, missing or deleted: nobody would be told if the job
    stopped; not for a job the inventory keeps paused), token expiring (refresh token expires within token_warn_days,
    or cannot be read), ok. Checks of the host that belong to no job of the inventory (removed sources) are listed
    apart as retired and do not count.
    """
    now = float(now)
    reasons = {v: [] for v in VERDICTS}
    snaps = facts.get("snapshots") or {}
    items = snaps.get("snapshots") or []
    latest = snaps.get("latest")
    last_epoch = cloud_backup_epoch(latest["time"]) if latest else None
    age = (now - last_epoch) if last_epoch is not None else None
    # Per source (tag = source name, as the role's backup jobs tag them): the newest snapshot's size.
    newest = {}
    for snap in items:
        key = tuple(snap.get("paths") or [])
        newest[key] = snap  # oldest first: the last one wins
    data_bytes = sum(((s.get("summary") or {}).get("total_bytes_processed") or 0) for s in newest.values()) if newest else None

    if not facts.get("running"):
        reasons["failing"].append("the backup container is not running")
    if facts.get("snapshots_error"):
        reasons["failing"].append("repository unreadable: %s" % facts["snapshots_error"])
    elif not latest:
        reasons["late"].append("no snapshot yet")
    elif age > float(max_age_hours) * 3600:
        reasons["late"].append("newest snapshot is %s old (limit %sh)" % (cloud_backup_age(age), max_age_hours))
    prefix = facts.get("prefix") or host

    def job_of(name):
        return name[len(prefix) + 1:] if name.startswith(prefix + "-") else name

    found = [c for c in facts.get("checks") or [] if isinstance(c, dict)]
    expected = facts.get("expected") if facts.get("monitored") else None
    jobs, retired = [], []
    if expected is None:  # no model to compare with: every check of the host is a job's
        wanted, known = [], [c.get("name") or "" for c in found]
    else:
        wanted = [e for e in expected if isinstance(e, dict) and e.get("name")]
        known = [e["name"] for e in wanted] + [facts.get("drill_check") or "%s-restore-drill" % prefix]
    by_name = dict((c.get("name") or "", c) for c in found)
    for spec in wanted:
        check = by_name.get(spec["name"])
        kept = spec.get("state") == "paused"
        status = (check.get("status") or "?") if check else ("?" if facts.get("checks_error") else "missing")
        jobs.append({"job": job_of(spec["name"]), "status": status, "last_ping": (check or {}).get("last_ping"),
                     "kept_paused": kept})
        if status in ("paused", "missing") and not kept:
            reasons["unmonitored"].append("check %s is %s: roll out to %s it" % (
                job_of(spec["name"]), status, "resume" if status == "paused" else "create"))
    for check in found:
        name = check.get("name") or ""
        status = check.get("status") or "?"
        if name not in known:
            retired.append({"job": job_of(name), "status": status, "last_ping": check.get("last_ping")})
        elif expected is None or name not in [e["name"] for e in wanted]:  # the drill, or every check without a model
            jobs.append({"job": job_of(name), "status": status, "last_ping": check.get("last_ping"), "kept_paused": False})
    for job in jobs:
        if job["status"] == "down":
            (reasons["failing"] if job["job"] == "restore-drill" else reasons["late"]).append("check %s is down" % job["job"])
    if facts.get("checks_error"):
        reasons["late"].append("Healthchecks unreadable: %s" % facts["checks_error"])
    days_left = facts.get("days_left")
    if facts.get("oidc"):
        if days_left is None:
            reasons["token expiring"].append("refresh token unreadable: %s" % (facts.get("oidc_error") or "no account"))
        elif float(days_left) < float(token_warn_days):
            reasons["token expiring"].append("refresh token expires in %.1f days" % float(days_left))
    if facts.get("client") and facts.get("client_error"):
        reasons["failing"].append("the client cannot obtain a token: %s" % facts["client_error"])
    drill = facts.get("drill") or {}
    if drill.get("last_result") == "failed":
        reasons["failing"].append("last restore drill failed (%s)" % drill.get("last_run"))
    verdict = "ok"
    for name in VERDICTS:
        if reasons[name]:
            verdict = name
    return {
        "host": host,
        "destination": facts.get("destination") or "n/a",
        "last_snapshot": latest["time"] if latest else None,
        "last_snapshot_id": latest["short_id"] if latest else None,
        "age_seconds": int(age) if age is not None else None,
        "age": cloud_backup_age(age),
        "snapshots": len(items) if not facts.get("snapshots_error") else None,
        "data_bytes": data_bytes,
        "stored_bytes": facts.get("stored_bytes"),
        "size": "%s / %s" % (cloud_backup_size(data_bytes), cloud_backup_size(facts.get("stored_bytes"))),
        "checks": jobs,
        "retired_checks": retired,
        "checks_text": _checks_text(jobs, retired),
        "token_days_left": round(float(days_left), 1) if facts.get("oidc") and days_left is not None else None,
        "token": _token_cell(facts, days_left),
        "auth": facts.get("auth") or "n/a",
        # the image the backup container runs (short ID): one ID across a fleet shipped from the controller
        "image": (str(facts.get("image") or "").rsplit(":", maxsplit=1)[-1][:12] or None),
        "drill_last_passed": drill.get("last_passed"),
        "verdict": verdict,
        "reasons": [r for name in reversed(VERDICTS) for r in reasons[name]],
    }


def _token_cell(facts, days_left):
    """The TOKEN cell: days left on an oidc-agent refresh token, `client` for a service account whose client obtains
    a token (`client failing` when it does not), n/a without either."""
    if facts.get("client"):
        return "client failing" if facts.get("client_error") else "client"
    if facts.get("oidc"):
        return ("%.1f d" % float(days_left)) if days_left is not None else "?"
    return "n/a"


COLUMNS = [("HOST", "host"), ("DESTINATION", "destination"), ("AUTH", "auth"), ("LAST SNAPSHOT", "last_snapshot"), ("AGE", "age"),
           ("SIZE data/stored", "size"), ("SNAPS", "snapshots"), ("IMAGE", "image"),
           ("HEALTHCHECKS", "checks_text"),
           ("TOKEN", "token"), ("DRILL PASSED", "drill_last_passed"), ("VERDICT", "verdict")]


def _cell(row, key):
    value = row.get(key)
    if key == "last_snapshot" and value:
        value = str(value)[:19].replace("T", " ")
    if key == "drill_last_passed" and value:
        value = str(value)[:16].replace("T", " ")
    return "n/a" if value is None else str(value)


def cloud_backup_status_table(rows):
    """The fleet status as aligned text lines, one per host, then the reasons of hosts that are not ok."""
    cells = [[title for title, dummy in COLUMNS]] + [[_cell(r, key) for dummy, key in COLUMNS] for r in rows]
    widths = [max(len(line[i]) for line in cells) for i in range(len(COLUMNS))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(line, widths)).rstrip() for line in cells]
    bad = [r for r in rows if r["verdict"] != "ok"]
    lines.append("%d host(s), %d ok, %d not ok" % (len(rows), len(rows) - len(bad), len(bad)))
    for row in bad:
        lines.append("%s: %s: %s" % (row["host"], row["verdict"], "; ".join(row["reasons"])))
    return lines


def cloud_backup_status_json(rows, generated):
    return json.dumps({"generated": generated, "ok": all(r["verdict"] == "ok" for r in rows), "hosts": rows},
                      indent=2, sort_keys=True) + "\n"


CSS = """body{font-family:system-ui,sans-serif;margin:2em;color:#222}table{border-collapse:collapse}
th,td{border:1px solid #ccc;padding:.3em .6em;text-align:left;vertical-align:top;font-size:.9em}
th{background:#f0f0f0}.ok{background:#d9f2d9}.late,.unmonitored,.token-expiring{background:#fff1c2}
.failing{background:#f8d0d0}
.reasons{color:#555;font-size:.85em}"""


def cloud_backup_status_html(rows, generated):
    """A self-contained HTML page (no external resources) of the fleet status."""
    esc = html.escape
    head = "".join("<th>%s</th>" % esc(title) for title, dummy in COLUMNS)
    body = []
    for row in rows:
        cls = row["verdict"].replace(" ", "-")
        cells = "".join("<td>%s</td>" % esc(_cell(row, key)) for dummy, key in COLUMNS[:-1])
        reasons = "<div class=\"reasons\">%s</div>" % esc("; ".join(row["reasons"])) if row["reasons"] else ""
        body.append("<tr class=\"%s\">%s<td><b>%s</b>%s</td></tr>" % (esc(cls), cells, esc(row["verdict"]), reasons))
    bad = len([r for r in rows if r["verdict"] != "ok"])
    return ("<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\"><title>Backup status</title>"
            "<style>%s</style></head><body><h1>Backup status of the fleet</h1><p>Generated %s: %d host(s), %d not ok.</p>"
            "<table><thead><tr>%s</tr></thead><tbody>\n%s\n</tbody></table></body></html>\n"
            % (CSS, esc(str(generated)), len(rows), bad, head, "\n".join(body)))


class FilterModule:
    def filters(self):
        return {
            "cloud_backup_abspath": cloud_backup_abspath,
            "cloud_backup_epoch": cloud_backup_epoch,
            "cloud_backup_redact": cloud_backup_redact,
            "cloud_backup_status_row": cloud_backup_status_row,
            "cloud_backup_status_table": cloud_backup_status_table,
            "cloud_backup_status_json": cloud_backup_status_json,
            "cloud_backup_status_html": cloud_backup_status_html,
        }
