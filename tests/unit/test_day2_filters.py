"""The day-2 filters: verdicts of the status report, restic times, the redaction of restic's messages."""

import pytest
from ansible.errors import AnsibleFilterError

from ansible_collections.infn_cloud.backup.plugins.filter import cloud_backup_day2 as f

NOW = 1_800_000_000.0


def snap(age_hours, paths=("/backup/www",), size=1000, short="abcd1234"):
    import datetime as dt
    when = dt.datetime.fromtimestamp(NOW - age_hours * 3600, dt.timezone.utc)
    return {"time": when.strftime("%Y-%m-%dT%H:%M:%S.000000000Z"), "short_id": short, "paths": list(paths),
            "summary": {"total_bytes_processed": size}}


def facts(**over):
    base = {"running": True, "snapshots": {"snapshots": [snap(30), snap(2)], "latest": snap(2)},
            "checks": [{"name": "h1-backup-www", "status": "up"}, {"name": "h1-forget", "status": "new"}],
            "prefix": "h1", "oidc": False}
    base.update(over)
    return base


def row(**over):
    return f.cloud_backup_status_row("h1", facts(**over), NOW, 26, 7)


def test_ok():
    r = row()
    assert r["verdict"] == "ok" and r["reasons"] == []
    assert r["snapshots"] == 2 and r["age"] == "2h00m" and r["token"] == "n/a"
    assert r["data_bytes"] == 1000  # newest snapshot of the one source only
    assert r["checks_text"] == "backup-www:up forget:new"


def test_late_on_a_down_check_or_an_old_snapshot():
    r = row(checks=[{"name": "h1-backup-www", "status": "down"}])
    assert r["verdict"] == "late" and r["reasons"] == ["check backup-www is down"]
    old = snap(30)
    assert row(snapshots={"snapshots": [old], "latest": old})["verdict"] == "late"
    assert row(snapshots={"snapshots": [], "latest": None})["reasons"] == ["no snapshot yet"]


def test_failing_beats_late_and_token():
    r = row(running=False, checks=[{"name": "h1-backup-www", "status": "down"}], oidc=True, days_left=1.0)
    assert r["verdict"] == "failing"
    assert r["reasons"][0] == "the backup container is not running" and len(r["reasons"]) == 3
    assert row(snapshots=None, snapshots_error="wrong password")["verdict"] == "failing"
    assert row(drill={"last_result": "failed", "last_run": "x"})["verdict"] == "failing"
    assert row(checks=[{"name": "h1-restore-drill", "status": "down"}])["verdict"] == "failing"


def test_token_expiring():
    assert row(oidc=True, days_left=3.2)["verdict"] == "token expiring"
    assert row(oidc=True, days_left=20)["token"] == "20.0 d"
    assert row(oidc=True, days_left=None)["verdict"] == "token expiring"
    assert row(oidc=True, days_left=20)["verdict"] == "ok"


def test_restic_times():
    assert f.cloud_backup_epoch("2026-11-28T02:44:39.347841296Z") == f.cloud_backup_epoch("2026-11-28T03:44:39.347841+01:00")
    assert f.cloud_backup_epoch(None) is None
    with pytest.raises(AnsibleFilterError):
        f.cloud_backup_epoch("yesterday")


def test_redact_masks_the_secrets_of_a_one_off_environment_and_url_credentials():
    """restic's and rclone's messages are shown to the user (never under no_log): every secret value of the one-off
    container's environment is masked, in any spelling restic may print it, and so are URL credentials."""
    from ansible_collections.infn_cloud.backup.plugins.plugin_utils import _model
    dest = {"type": "s3", "endpoint": "http://s3:5000", "bucket": "b", "access_key_id": "AKIA-lab-key",
            "secret_access_key": "s3cr/et+key"}
    env = _model.repository_env(dest, "the restic pw", "h1")
    line = ("Fatal: the restic pw s3cr/et+key s3cr%2Fet%2Bkey AKIA-lab-key rest:https://u:p%40ss@rest.example.org/h1 "
            "rclone:dest:b/h1")
    out = f.cloud_backup_redact(line, env)
    for secret in ("the restic pw", "s3cr/et+key", "s3cr%2Fet%2Bkey", "AKIA-lab-key", "p%40ss"):
        assert secret not in out
    assert "rclone:dest:b/h1" in out and "rest.example.org/h1" in out  # what is not secret stays readable
    pem = "-----BEGIN OPENSSH PRIVATE KEY-----\\nb3BlbnNzaC1rZXktdjEAAAAA\\n-----END OPENSSH PRIVATE KEY-----"
    assert "b3BlbnNzaC1rZXktdjEAAAAA" not in f.cloud_backup_redact("key b3BlbnNzaC1rZXktdjEAAAAA", {"RCLONE_CONFIG_DEST_KEY_PEM": pem})
    assert f.cloud_backup_redact(None) == "" and f.cloud_backup_redact("plain", {"RESTIC_PASSWORD": "x"}) == "plain"


def test_reports():
    rows = [row(), row(running=False)]
    lines = f.cloud_backup_status_table(rows)
    assert lines[0].startswith("HOST") and "2 host(s), 1 ok, 1 not ok" in lines
    page = f.cloud_backup_status_html([dict(rows[0], host="<b>")], "now")
    assert "&lt;b&gt;" in page and "<b>" not in page.split("<tbody>")[1].split("</td>")[0]
    assert '"ok": false' in f.cloud_backup_status_json(rows, "now")


# ---- unmonitored: a job of the inventory whose check is paused or missing (issue 17) ------------

EXPECTED = [{"name": "h1-backup-www", "state": "active"}, {"name": "h1-forget", "state": "active"}]


def test_a_paused_or_missing_check_of_a_job_makes_the_host_unmonitored():
    r = row(monitored=True, expected=EXPECTED, checks=[{"name": "h1-backup-www", "status": "paused"},
                                                       {"name": "h1-forget", "status": "up"}])
    assert r["verdict"] == "unmonitored"
    assert r["reasons"] == ["check backup-www is paused: roll out to resume it"]
    assert r["checks_text"] == "backup-www:paused forget:up"
    r = row(monitored=True, expected=EXPECTED, checks=[{"name": "h1-forget", "status": "up"}])  # deleted
    assert r["verdict"] == "unmonitored" and r["reasons"] == ["check backup-www is missing: roll out to create it"]
    assert r["checks_text"] == "backup-www:missing forget:up"
    # without monitoring nothing is missing; with Healthchecks unreadable nothing is known to be missing
    assert row(monitored=False, expected=EXPECTED, checks=[])["verdict"] == "ok"
    r = row(monitored=True, expected=EXPECTED, checks=[], checks_error="HTTP 500")
    assert r["verdict"] == "late" and r["reasons"] == ["Healthchecks unreadable: HTTP 500"]


def test_unmonitored_is_between_late_and_token_expiring():
    paused = [{"name": "h1-backup-www", "status": "paused"}, {"name": "h1-forget", "status": "up"}]
    assert row(monitored=True, expected=EXPECTED, checks=paused, oidc=True, days_left=1.0)["verdict"] == "unmonitored"
    old = snap(30)
    late = row(monitored=True, expected=EXPECTED, checks=paused, snapshots={"snapshots": [old], "latest": old})
    assert late["verdict"] == "late" and len(late["reasons"]) == 2
    assert f.VERDICTS.index("token expiring") < f.VERDICTS.index("unmonitored") < f.VERDICTS.index("late")


def test_checks_of_removed_sources_are_retired_and_do_not_count():
    r = row(monitored=True, expected=EXPECTED,
            checks=[{"name": "h1-backup-www", "status": "up"}, {"name": "h1-forget", "status": "up"},
                    {"name": "h1-backup-old", "status": "paused"}, {"name": "h1-restore-drill", "status": "up"}])
    assert r["verdict"] == "ok" and r["reasons"] == []
    assert r["checks_text"] == "backup-www:up forget:up restore-drill:up; retired: backup-old (paused)"
    assert [c["job"] for c in r["retired_checks"]] == ["backup-old"]


def test_a_check_kept_paused_on_purpose_is_shown_but_does_not_count():
    expected = [{"name": "h1-backup-www", "state": "paused"}, {"name": "h1-forget", "state": "active"}]
    r = row(monitored=True, expected=expected, checks=[{"name": "h1-backup-www", "status": "paused"},
                                                       {"name": "h1-forget", "status": "up"}])
    assert r["verdict"] == "ok" and r["checks_text"] == "backup-www:paused(kept) forget:up"
    assert r["checks"][0]["kept_paused"] is True


def test_the_table_is_plain_aligned_text_with_one_summary():
    rows = [row(), dict(row(monitored=True, expected=EXPECTED, checks=[{"name": "h1-forget", "status": "up"}]),
                        host="h2-long-name")]
    lines = f.cloud_backup_status_table(rows)
    assert all(isinstance(line, str) and "\n" not in line and '"' not in line for line in lines)
    header, first, second = lines[:3]
    assert header.split()[:2] == ["HOST", "DESTINATION"]
    for column in ("DESTINATION", "VERDICT"):  # every row's cell starts under its title
        at = header.index(column)
        assert first[at - 2:at] == "  " and second[at - 2:at] == "  " and first[at] != " " and second[at] != " "
    assert second.endswith("unmonitored") and first.endswith("ok")
    assert lines[3:] == ["2 host(s), 1 ok, 1 not ok",
                         "h2-long-name: unmonitored: check backup-www is missing: roll out to create it"]
