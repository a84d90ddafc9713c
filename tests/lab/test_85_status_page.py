"""The status page in a real browser. Two VMs of their own (p85a: source www; p85b: source alice), rolled out and
backed up once; p85b is then made failing the real way (every pack of its repository in the lab's S3 tampered
with, which its restore drill detects: drill.json failed, its drill check down). playbooks/status.yml writes the
HTML report before and after; headless Chromium (Debian's chromium, lab/chromium.sh installs it) renders both.
From the rendered DOM: each host's row shows its verdict, its newest snapshot (the one restic lists, just taken)
and its checks. From the screenshot: the failing host's row is a band of an alarm (red) colour, which no row of
the all-ok report of the same two hosts has, and which the ok host's row has not."""

import collections
import datetime as dt
import json
import shutil
import struct
import subprocess
import time
import uuid
import zlib
from html.parser import HTMLParser

import boto3
import pytest

from labkit import REPO, hc_api, playbook, vm_exec

HOSTS = {"p85a": ("www", "/srv/www"), "p85b": ("alice", "/home/alice")}
FAILING = "p85b"
S3 = dict(endpoint_url="http://127.0.0.1:59000", aws_access_key_id="lab-access-key",
          aws_secret_access_key="lab-secret-key", region_name="us-east-1")
BUCKET = "lab-backups"
WINDOW = "1200,800"


def chromium(tmp, *args):
    """Headless Chromium (its own profile under TMP); a Popen, its output read by finish()."""
    binary = shutil.which("chromium")
    assert binary, "chromium is not installed: run bash lab/chromium.sh (scripts/test.sh does)"
    argv = [binary, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--user-data-dir=%s" % tmp]
    return subprocess.Popen(argv + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def finish(proc):
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, "%s exited %s: %s" % (" ".join(proc.args[:2]), proc.returncode, err[-2000:])
    return out


def delete_checks():
    for host in HOSTS:
        for check in hc_api("/api/v3/checks/?tag=host-%s" % host)["checks"]:
            hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")


def s3_keys(client, prefix):
    pages = client.get_paginator("list_objects_v2").paginate(Bucket=BUCKET, Prefix=prefix + "/")
    return [o["Key"] for page in pages for o in page.get("Contents", [])]


def epoch(stamp):
    """Seconds since the epoch of restic's RFC 3339 time (nanoseconds, any offset)."""
    head, dot, rest = stamp.partition(".")
    text = head + rest.lstrip("0123456789") if dot else stamp
    return dt.datetime.fromisoformat(text.replace("Z", "+00:00")).timestamp()


@pytest.fixture(scope="module")
def reports(tmp_path_factory):
    # The lab's S3 and Healthchecks must be up and chromium installed (never skipped); the lab's own VMs are not used.
    assert shutil.which("chromium"), "chromium is not installed: run bash lab/chromium.sh (scripts/test.sh does)"
    for service in ("infn-lab-s3", "infn-lab-hc"):
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", service], capture_output=True, text=True, check=False)
        assert state.stdout.strip() == "true", "%s is not running: start the lab (lab/lab.sh up)" % service
    run = uuid.uuid4().hex[:6]
    vms = {host: "infn-lab-%s-%s" % (host, run) for host in HOSTS}
    prefixes = {host: "status-page-%s-%s" % (run, host) for host in HOSTS}
    s3 = boto3.client("s3", **S3)
    tmp = tmp_path_factory.mktemp("status_page")
    delete_checks()  # left over by an interrupted earlier run
    try:
        starts = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", vm, "with-image"], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE) for vm in vms.values()]
        for proc in starts:
            assert proc.wait(timeout=600) == 0, proc.stderr.read()
        hosts = {host: {"ansible_host": vms[host], "cloud_backup_sources": [{"name": name, "path": path}],
                        "cloud_backup_destination": {"type": "s3", "endpoint": "http://172.31.240.10:5000", "bucket": BUCKET,
                                                     "path": prefixes[host], "access_key_id": "lab-access-key",
                                                     "secret_access_key": "lab-secret-key", "region": "us-east-1"}}
                 for host, (name, path) in HOSTS.items()}
        inventory = tmp / "hosts.yml"
        inventory.write_text(json.dumps({"all": {"children": {"cloud_backup": {"hosts": hosts}}}}))

        def play(path, *args, limit=",".join(HOSTS)):
            # the lab's group_vars apply through the lab inventory; --limit keeps the lab's own VMs out
            return playbook("-i", str(inventory), "--limit", limit, *args, playbook_path=path)

        rollout = play("playbooks/site.yml")
        assert rollout.rc == 0, rollout.out[-5000:]
        started = time.time()
        backup = play("playbooks/backup_now.yml")
        assert backup.rc == 0, backup.out[-4000:]
        newest = {host: json.loads(vm_exec(vm, "docker exec -u user cloud-backup restic snapshots --json --latest 1 --host %s"
                                           % host).stdout)[-1] for host, vm in vms.items()}

        def status(name):
            page, doc = tmp / ("%s.html" % name), tmp / ("%s.json" % name)
            result = play("playbooks/status.yml", "-e", "cloud_backup_status_html=%s" % page, "-e", "cloud_backup_status_json=%s" % doc)
            assert page.exists() and doc.exists(), result.out[-5000:]
            return result, page, {row["host"]: row["verdict"] for row in json.loads(doc.read_text())["hosts"]}

        all_ok, ok_page, verdicts = status("all-ok")
        assert all_ok.rc == 0 and verdicts == {"p85a": "ok", "p85b": "ok"}, all_ok.out[-4000:]
        # the failing host, the real way: every pack of its repository tampered with; its restore drill finds out
        for key in [k for k in s3_keys(s3, prefixes[FAILING]) if "/data/" in k]:
            body = bytearray(s3.get_object(Bucket=BUCKET, Key=key)["Body"].read())
            for i in range(0, len(body), 512):
                body[i] ^= 0xFF
            s3.put_object(Bucket=BUCKET, Key=key, Body=bytes(body))
        drill = play("playbooks/restore_drill.yml", limit=FAILING)
        assert drill.rc != 0 and "restore drill failed" in drill.out, drill.out[-4000:]
        failing, page, verdicts = status("failing")
        # the play fails once for the fleet (exit status 2), naming the failing host
        assert failing.rc == 2 and verdicts == {"p85a": "ok", FAILING: "failing"}, failing.out[-4000:]
        assert "1 of 2 host(s) not ok: %s failing" % FAILING in failing.out, failing.out[-4000:]
        yield {"tmp": tmp, "ok_page": ok_page, "page": page, "newest": newest, "started": started}
    finally:
        for vm in vms.values():
            subprocess.run(["docker", "rm", "-f", vm], capture_output=True, check=False)
        for prefix in prefixes.values():
            for key in s3_keys(s3, prefix):
                s3.delete_object(Bucket=BUCKET, Key=key)
        delete_checks()


@pytest.fixture(scope="module")
def rendered(reports):
    """Both reports through headless Chromium at once: the failing report's DOM and screenshot, the all-ok one's
    screenshot."""
    tmp = reports["tmp"]
    shots = {"page": tmp / "failing.png", "ok_page": tmp / "all-ok.png"}
    procs = {"dom": chromium(tmp / "profile-dom", "--dump-dom", reports["page"].as_uri())}
    for name, shot in shots.items():
        procs[name] = chromium(tmp / ("profile-" + name), "--window-size=%s" % WINDOW, "--screenshot=%s" % shot,
                               reports[name].as_uri())
    out = {name: finish(proc) for name, proc in procs.items()}
    return {"dom": table_of(out["dom"]), "shot": png_pixels(shots["page"]), "ok_shot": png_pixels(shots["ok_page"])}


class _Table(HTMLParser):
    """The header titles and the rows of the page's table: per row, per cell, its text pieces."""

    def __init__(self):
        super().__init__()
        self.head, self.rows, self.cell, self.where = [], [], None, None

    def handle_starttag(self, tag, attrs):
        if tag in ("thead", "tbody"):
            self.where = tag
        elif tag == "tr" and self.where == "tbody":
            self.rows.append([])
        elif tag in ("th", "td"):
            self.cell = []

    def handle_endtag(self, tag):
        if tag in ("th", "td") and self.cell is not None:
            if tag == "th":
                self.head.append(" ".join(self.cell))
            else:
                self.rows[-1].append(self.cell)
            self.cell = None

    def handle_data(self, data):
        if self.cell is not None and data.strip():
            self.cell.append(data.strip())


def table_of(dom):
    """{host: {column title: [text pieces]}} of the rendered page's table, in the page's order."""
    parser = _Table()
    parser.feed(dom)
    assert parser.rows, "no table rows in the rendered page: %s" % dom[:2000]
    return collections.OrderedDict((row[0][0], dict(zip(parser.head, row))) for row in parser.rows)


def png_pixels(path):
    """The rows of (r, g, b) pixels of an 8-bit RGB(A) PNG, as Chromium writes its screenshots (pure Python)."""
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n", "%s is not a PNG" % path
    pos, idat, header = 8, [], None
    while pos < len(data):
        length, kind = struct.unpack(">I4s", data[pos:pos + 8])
        if kind == b"IHDR":
            header = struct.unpack(">IIBBBBB", data[pos + 8:pos + 8 + length])
        elif kind == b"IDAT":
            idat.append(data[pos + 8:pos + 8 + length])
        pos += 12 + length
    width, height, depth, colour, dummy, dummy, interlace = header
    assert depth == 8 and colour in (2, 6) and interlace == 0, "unexpected PNG format %r" % (header,)
    bpp = 3 if colour == 2 else 4
    stride, raw = width * bpp, zlib.decompress(b"".join(idat))
    prev, rows = bytearray(stride), []
    for y in range(height):
        start = y * (stride + 1)
        kind, line = raw[start], bytearray(raw[start + 1:start + 1 + stride])
        if kind == 1:
            for i in range(bpp, stride):
                line[i] = (line[i] + line[i - bpp]) & 0xFF
        elif kind == 2:
            line = bytearray((a + b) & 0xFF for a, b in zip(line, prev))
        elif kind == 3:
            for i in range(stride):
                line[i] = (line[i] + ((line[i - bpp] if i >= bpp else 0) + prev[i]) // 2) & 0xFF
        elif kind == 4:
            for i in range(stride):
                a, b, c = (line[i - bpp] if i >= bpp else 0), prev[i], (prev[i - bpp] if i >= bpp else 0)
                p = a + b - c
                pa, pb, pc = abs(p - a), abs(p - b), abs(p - c)
                line[i] = (line[i] + (a if pa <= pb and pa <= pc else b if pb <= pc else c)) & 0xFF
        rows.append([tuple(line[x:x + 3]) for x in range(0, stride, bpp)])
        prev = line
    return rows


def bands(pixels, min_height=8):
    """The page's horizontal bands of one background colour, top to bottom, as (colour, first y, last y + 1): a pixel
    line belongs to a band when one colour other than the page's white fills at least a quarter of it (a table row's
    background between its text; text never does). The table's header, then one band per row."""
    width, runs = len(pixels[0]), []
    for y, line in enumerate(pixels):
        counts = collections.Counter(p for p in line if p != (255, 255, 255)).most_common(1)
        colour = counts[0][0] if counts and counts[0][1] >= width // 4 else None
        if runs and runs[-1][0] == colour and runs[-1][2] == y:
            runs[-1][2] = y + 1
        else:
            runs.append([colour, y, y + 1])
    return [tuple(run) for run in runs if run[0] is not None and run[2] - run[1] >= min_height]


def alarming(colour):
    """A clearly red colour: red well above green and blue (the page's failing rows are #f8d0d0; the ok, late and
    header backgrounds are green, yellow and grey)."""
    r, g, b = colour
    return r - max(g, b) >= 32


def row_bands(pixels, hosts):
    """{host: its row's band colour}, the hosts in the page's order; fails unless the screenshot shows the header and
    exactly one band per row, the whole table inside the window."""
    found = bands(pixels)
    assert len(found) == 1 + len(hosts), "expected the header and %d row bands, found %s" % (len(hosts), found)
    assert found[-1][2] < len(pixels) - 1, "the table does not fit the window: %s" % found
    assert not alarming(found[0][0]), "the header band is alarm-coloured: %s" % found
    return dict(zip(hosts, [band[0] for band in found[1:]]))


def assert_stands_out(pixels, hosts, failing):
    colours = row_bands(pixels, hosts)
    assert alarming(colours[failing]), "the failing host %s's row is not alarm-coloured: %s" % (failing, colours)
    others = [c for host, c in colours.items() if host != failing]
    assert not [c for c in others if alarming(c) or c == colours[failing]], "the failing row does not stand out: %s" % colours


def test_each_row_shows_verdict_newest_snapshot_and_checks(reports, rendered):
    table = rendered["dom"]
    assert sorted(table) == sorted(HOSTS), table
    for host, (source, dummy) in HOSTS.items():
        row = table[host]
        verdict = row["VERDICT"]
        assert verdict[0] == ("failing" if host == FAILING else "ok"), row
        # the newest snapshot: the one restic lists for the host, taken by backup_now a moment ago
        snap = reports["newest"][host]["time"]
        assert row["LAST SNAPSHOT"] == [snap[:19].replace("T", " ")], (row, snap)
        assert reports["started"] - 5 <= epoch(snap) <= time.time(), (snap, reports["started"])
        assert row["SNAPS"] == ["1"], row
        checks = " ".join(row["HEALTHCHECKS"]).split()
        assert "backup-%s:up" % source in checks, row
        if host == FAILING:
            assert "restore-drill:down" in checks, row
            assert "last restore drill failed" in " ".join(verdict[1:]), row
        else:
            assert verdict == ["ok"] and not [c for c in checks if c.endswith(":down")], row


def test_the_failing_host_stands_out(rendered):
    assert_stands_out(rendered["shot"], list(rendered["dom"]), FAILING)


def test_no_row_is_alarm_coloured_when_every_host_is_ok(rendered):
    """The same two hosts, both ok, before the repository was tampered with: no alarm anywhere, and the host that
    fails later has the ok host's colour then."""
    ok = row_bands(rendered["ok_shot"], list(rendered["dom"]))
    assert not [c for c in ok.values() if alarming(c)], ok
    failing = row_bands(rendered["shot"], list(rendered["dom"]))
    assert ok[FAILING] == ok["p85a"] == failing["p85a"], (ok, failing)
