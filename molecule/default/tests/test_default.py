"""Verify the converged lab VMs: files, modes, containers, mounts, the scheduler's jobs, and a real
backup → S3 → restore round trip triggered through each scheduler's own command line."""

import importlib.util
import json
import os
import shlex
import sys

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))


def _load_standin():
    """The lab's ofelia stand-in: ofelia 0.3.x's loading rules, written independently of the generator."""
    sys.dont_write_bytecode = True  # no __pycache__ in the image's build context
    path = os.path.join(REPO, "lab", "images", "ofelia-standin", "standin.py")
    spec = importlib.util.spec_from_file_location("ofelia_standin", path)
    module = sys.modules[spec.name] = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


standin = _load_standin()

PROJECT = "/opt/cloud-backup"
SOURCES = {
    "molecule-vm1": {"www": "/srv/www", "projects": "/srv/projects"},
    "molecule-vm2": {"alice": "/home/alice"},
    "molecule-vm3": {"projects": "/srv/projects"},
}
CRON_HOSTS = {"molecule-vm2"}
EXCLUDED = {("molecule-vm1", "projects"): ("build.tmp", "cache/entry")}  # its exclude patterns


def _name(host):
    return host.backend.get_hostname()


def _inspect(host, container):
    out = host.check_output("docker inspect %s", container)
    return json.loads(out)[0]


def test_env_file_is_private(host):
    env = host.file(PROJECT + "/.env")
    assert env.exists and env.user == "root" and env.group == "root"
    assert env.mode == 0o600
    content = env.content_string
    assert "RESTIC_PASSWORD_FILE='/run/secrets/RESTIC_PASSWORD'" in content
    assert "RESTIC_REPOSITORY='rest:http://127.0.0.1:8089/'" in content


def test_secrets_are_private_files(host):
    secrets = host.file(PROJECT + "/secrets")
    assert secrets.is_directory and secrets.mode == 0o700 and secrets.uid == 1000
    password = host.file(PROJECT + "/secrets/RESTIC_PASSWORD")
    assert password.mode == 0o600 and password.uid == 1000 and password.size > 0
    assert "RESTIC_PASSWORD=" not in host.file(PROJECT + "/.env").content_string  # the value is in the file only


def test_project_files(host):
    assert host.file(PROJECT).mode == 0o750
    compose = host.file(PROJECT + "/compose.yaml")
    assert compose.exists and compose.mode == 0o644
    assert "RESTIC_PASSWORD" not in compose.content_string  # secrets only in private files


def test_backup_container_runs_unprivileged(host):
    info = _inspect(host, "cloud-backup")
    assert info["State"]["Running"] is True
    assert info["Config"]["User"] == "user"
    assert info["HostConfig"]["Init"] is True
    assert not info["HostConfig"]["PortBindings"], "the REST server must not be published on the host"


def test_sources_are_mounted_read_only(host):
    mounts = {m["Destination"]: m for m in _inspect(host, "cloud-backup")["Mounts"]}
    for name, path in SOURCES[_name(host)].items():
        mount = mounts["/backup/" + name]
        assert mount["Source"] == path
        assert mount["RW"] is False


def test_scheduler(host):
    name = _name(host)
    if name in CRON_HOSTS:
        cron = host.file("/etc/cron.d/cloud-backup")
        assert cron.mode == 0o600 and cron.user == "root"
        assert not host.file(PROJECT + "/ofelia/config.ini").exists
        assert host.check_output("docker ps -q --filter name=cloud-backup-ofelia") == ""
        assert host.process.filter(comm="cron"), "the host cron daemon must run"
    else:
        config = standin.load_config(host.file(PROJECT + "/ofelia/config.ini").content_string)
        jobs = {job.name for job in config.jobs}
        assert jobs == {"backup-" + s for s in SOURCES[name]} | {"forget", "check", "clean-logs"}
        assert _inspect(host, "cloud-backup-ofelia")["State"]["Running"] is True
        assert not host.file("/etc/cron.d/cloud-backup").exists


def _scheduled_commands(host):
    """{job name: shell command} exactly as the host's scheduler would run each job."""
    name = _name(host)
    commands = {}
    if name in CRON_HOSTS:
        for line in host.file("/etc/cron.d/cloud-backup").content_string.splitlines():
            if line and not line.startswith("#") and "=" not in line.split()[0]:
                fields = line.split(None, 6)
                command = fields[6]
                job = [w for w in shlex.split(command.replace("\\%", "%")) if w.startswith("/run/lock/")]
                if job:
                    commands[job[0][len("/run/lock/cloud-backup-"):-len(".lock")]] = command.replace("\\%", "%")
    else:
        config = standin.load_config(host.file(PROJECT + "/ofelia/config.ini").content_string)
        for job in config.jobs:
            if job.kind != "job-exec":
                continue
            # ofelia's job-exec: the Docker exec API with the job's user, environment and argv.
            argv = ["docker", "exec", "-u", job.get("user")]
            for env in job.get("environment", []):
                argv += ["-e", env]
            argv += [job.get("container")] + standin.split_args(job.command)
            commands[job.name] = " ".join(shlex.quote(a) for a in argv)
    return commands


def _checksums(host, root):
    out = host.check_output(
        "docker exec -u user cloud-backup sh -c %s",
        "cd %s && find . -type f -exec sha256sum {} + | sort -k2" % shlex.quote(root))
    return dict(reversed(line.split(None, 1)) for line in out.splitlines())


def _s3_snapshot_objects(prefix):
    """Snapshot objects of a repository in the lab's S3 server (moto, reached on loopback)."""
    import boto3  # in the test venv (moto's dependency)

    s3 = boto3.client("s3", endpoint_url="http://127.0.0.1:59000", region_name="us-east-1",
                      aws_access_key_id="lab-access-key", aws_secret_access_key="lab-secret-key")
    listing = s3.list_objects_v2(Bucket="lab-backups", Prefix=prefix + "/snapshots/")
    return [obj["Key"] for obj in listing.get("Contents", [])]


def _hc_status(check_name):
    """Status of a check in the lab's Healthchecks (the fake, reached on loopback)."""
    import urllib.request

    with urllib.request.urlopen("http://127.0.0.1:58000/_admin/checks", timeout=10) as response:
        return {c["name"]: c["status"] for c in json.load(response)["checks"]}.get(check_name)


def test_backup_jobs_round_trip(host):
    """Each source's job, run through the scheduler's own command line, lands a snapshot in the
    destination; a restore of it gives files with identical checksums (excluded files left out)."""
    name = _name(host)
    commands = _scheduled_commands(host)
    s3_before = None if name == "molecule-vm3" else set(_s3_snapshot_objects(name))
    for source in SOURCES[name]:
        result = host.run(commands["backup-" + source])
        assert result.rc == 0, result.stderr + result.stdout
        assert _hc_status("%s-backup-%s" % (name, source)) == "up"

        snapshots = json.loads(host.check_output(
            "docker exec -u user cloud-backup restic snapshots --json --tag %s", source))
        assert snapshots and snapshots[-1]["hostname"] == name
        assert snapshots[-1]["paths"] == ["/backup/" + source]

        target = "/tmp/restore-" + source
        host.check_output("docker exec -u user cloud-backup rm -rf %s", target)
        host.check_output(
            "docker exec -u user cloud-backup restic restore latest --tag %s --target %s", source, target)
        original = _checksums(host, "/backup/" + source)
        restored = _checksums(host, target + "/backup/" + source)
        expected = {path: digest for path, digest in original.items()
                    if not any(path.endswith(x) for x in EXCLUDED.get((name, source), ()))}
        assert len(expected) >= 1 and restored == expected
    if s3_before is None:
        # the local destination: the repository is a directory on the host
        assert host.file("/srv/backup-repository/config").exists
        assert host.check_output("ls /srv/backup-repository/snapshots | wc -l") == str(len(SOURCES[name]))
    else:
        assert len(set(_s3_snapshot_objects(name)) - s3_before) == len(SOURCES[name])


def test_forget_and_check_jobs_run(host):
    commands = _scheduled_commands(host)
    for job in ("forget", "check"):
        result = host.run(commands[job])
        assert result.rc == 0, result.stderr + result.stdout
        assert _hc_status("%s-%s" % (_name(host), job)) == "up"
