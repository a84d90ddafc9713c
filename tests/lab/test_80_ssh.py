"""The fleet reached as a real one is (issue 18): over SSH as the user ubuntu (key-only, passwordless sudo, root login
refused), host keys pinned in the lab's known_hosts, and ansible-playbook run by an unprivileged controller user
(infn-ctl: no sudo, no Docker, like AWX's runner) from a directory of its own.

Two VMs of their own, each with a local destination, one per way of asking for become:
- vars: ansible_become: true in group_vars/all.yml (it reaches localhost too), the collection's playbooks;
- play: the administrator's own plays, become: true around the role (roles:) and around each day-2 entry point
  (include_role tasks_from).
Each gets one rollout, then: a rerun changes nothing, check mode changes nothing, backup_now, status (its JSON and HTML
written by the controller user), restore_drill, decommission."""

import json
import os
import pwd
import shutil
import subprocess
import sys
import tempfile
import urllib.request
import uuid

import pytest
import yaml

from labkit import REPO, Run, hc_api, host_state, vm_exec

RUN = uuid.uuid4().hex[:6]
VARIANTS = ("vars", "play")
HOSTS = {"vars": "s80v%s" % RUN, "play": "s80p%s" % RUN}
VMS = {v: "infn-lab-s80-%s-%s" % (v, RUN) for v in VARIANTS}
USER = "infn-ctl"
LAB_SSH = os.path.join(REPO, ".lab", "ssh")
BIN = os.path.dirname(sys.executable)
HC = "http://127.0.0.1:58000"
API_KEY = "hcw_labfleetreadwritekey00000001"
REPOSITORY = "/srv/backup-repository"

# The administrator's own plays (variant "play"): become: true around the role and around each day-2 entry point.
OWN_SITE = [{"name": "Our rollout: the role with become", "hosts": "cloud_backup", "become": True,
             "gather_facts": False, "roles": ["infn_cloud.backup.cloud_backup"]}]


def own_day2(entry, hosts="cloud_backup"):
    return [{"name": "Our %s: the entry point with become" % entry, "hosts": hosts, "become": True,
             "gather_facts": False,
             "tasks": [{"name": "Run %s" % entry, "ansible.builtin.include_role": {
                 "name": "infn_cloud.backup.cloud_backup", "tasks_from": entry}}]}]


def docker(*args, check=True):
    res = subprocess.run(("docker",) + args, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0 or not check, "docker %s: %s" % (" ".join(args[:3]), res.stderr[-2000:])
    return res


def checks(host):
    return {c["name"]: c for c in hc_api("/api/v3/checks/?tag=host-%s" % host)["checks"]}


def controller_user():
    """The unprivileged controller user, made once: a system user with a home of its own, no sudo, no docker group."""
    try:
        return pwd.getpwnam(USER)
    except KeyError:
        subprocess.run(["useradd", "--system", "--user-group", "--create-home", "--home-dir", "/var/lib/%s" % USER,
                        "--shell", "/usr/sbin/nologin", USER], check=True, capture_output=True)
        return pwd.getpwnam(USER)


def as_controller(work, argv, timeout=1500):
    """ARGV as the controller user, with a clean environment (HOME in its own directory), from its directory."""
    return subprocess.run(["runuser", "-u", USER, "--", "env", "-i"] + controller_env(work) + list(argv), cwd=work,
                          capture_output=True, text=True, timeout=timeout)


def grant_traverse(paths):
    """The controller user must reach the Python running ansible-playbook, the venv and the checkout (read only): any
    directory on their way it cannot enter (here /root, which holds the pyenv interpreter of the venv) gets o+x, the
    right to pass through (no listing), until the end of the module. Returns what to restore."""
    changed = {}
    for path in paths:
        parts = os.path.realpath(path).split(os.sep)
        for i in range(2, len(parts)):
            folder = os.sep.join(parts[:i])
            mode = os.stat(folder).st_mode
            if os.path.isdir(folder) and not mode & 0o001 and folder not in changed:
                changed[folder] = mode & 0o7777
                os.chmod(folder, changed[folder] | 0o001)
    return changed


def chown_tree(path, user):
    for root, dirs, files in os.walk(path):
        for name in [root] + [os.path.join(root, n) for n in dirs + files]:
            os.lchown(name, user.pw_uid, user.pw_gid)


@pytest.fixture(scope="module")
def fleet():
    for service in ("infn-lab-hc",):
        state = docker("inspect", "-f", "{{.State.Running}}", service, check=False)
        assert state.stdout.strip() == "true", "%s is not running: start the lab (lab/lab.sh up)" % service
    user = controller_user()
    work = tempfile.mkdtemp(prefix="infn-ctl-s80-", dir="/var/tmp")
    granted = {}
    try:
        granted = grant_traverse([sys.executable, os.path.join(BIN, "ansible-playbook"), REPO])
        starts = [subprocess.Popen(["bash", "lab/lab.sh", "extra-vm", vm], cwd=REPO, stdout=subprocess.DEVNULL,
                                   stderr=subprocess.PIPE) for vm in VMS.values()]
        for proc in starts:
            assert proc.wait(timeout=900) == 0, proc.stderr.read()
        os.makedirs(os.path.join(work, "home"))
        key = os.path.join(work, "id_ed25519")  # the controller's copy of the lab key, as AWX injects a credential
        shutil.copy(os.path.join(LAB_SSH, "id_ed25519"), key)
        os.chmod(key, 0o600)
        for variant in VARIANTS:
            vm = VMS[variant]
            vm_exec(vm, "mkdir -p /srv/data/sub && seq 1 30000 > /srv/data/numbers.txt"
                        " && head -c 100000 /dev/urandom > /srv/data/sub/random.bin")
            inventory = os.path.join(work, variant, "inventory")
            os.makedirs(os.path.join(work, variant, "report"))  # where the controller user writes the status files
            shutil.copytree(os.path.join(REPO, "inventories", "lab", "group_vars"), os.path.join(inventory, "group_vars"))
            address = docker("inspect", "-f", '{{(index .NetworkSettings.Networks "infn-lab").IPAddress}}', vm).stdout.strip()
            # how the hosts are reached: group_vars of their group (a group's vars in hosts.yml would lose to all.yml)
            with open(os.path.join(inventory, "group_vars", "cloud_backup.yml"), "w") as handle:
                # the controller user has no Docker: the image is built on each VM (cloud_backup_image_source: build)
                yaml.safe_dump({"ansible_connection": "ansible.builtin.ssh", "ansible_user": "ubuntu",
                                "cloud_backup_image_source": "build",
                                "ansible_ssh_private_key_file": key,
                                "ansible_ssh_common_args": "-o UserKnownHostsFile=%s/known_hosts"
                                                           " -o StrictHostKeyChecking=yes" % LAB_SSH}, handle)
            hosts = {"all": {"children": {"cloud_backup": {
                "hosts": {HOSTS[variant]: {
                    "ansible_host": address,
                    "cloud_backup_sources": [{"name": "data", "path": "/srv/data"}],
                    "cloud_backup_destination": {"type": "local", "path": REPOSITORY}}}}}}}
            with open(os.path.join(inventory, "hosts.yml"), "w") as handle:
                yaml.safe_dump(hosts, handle)
            if variant == "vars":
                # in group_vars/all.yml: the variable reaches localhost too (a variable beats the become keyword)
                with open(os.path.join(inventory, "group_vars", "all.yml"), "a") as handle:
                    handle.write("\nansible_become: true\n")
            else:
                plays = os.path.join(work, variant, "plays")
                os.makedirs(plays)
                for name, doc in (("site", OWN_SITE), ("backup_now", own_day2("backup_now")),
                                  ("status", own_day2("status")), ("restore_drill", own_day2("drill")),
                                  ("decommission", own_day2("decommission", "{{ decommission_hosts }}"))):
                    with open(os.path.join(plays, name + ".yml"), "w") as handle:
                        yaml.safe_dump(doc, handle, sort_keys=False)
        chown_tree(work, user)
        os.chmod(work, 0o700)
        fleet = {"work": work, "user": user, "rollout": {}}
        # one rollout per variant, both at once (most of it is the image build on each VM)
        runs = {v: subprocess.Popen(["runuser", "-u", USER, "--", "env", "-i"] + controller_env(work)
                                    + playbook_argv(fleet, v, "site"),
                                    cwd=work, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
                for v in VARIANTS}
        for variant, proc in runs.items():
            out = proc.communicate(timeout=1800)[0]
            fleet["rollout"][variant] = Run(proc.returncode, out)
        yield fleet
    finally:
        docker("rm", "-f", *VMS.values(), check=False)
        for host in HOSTS.values():
            for check in checks(host).values():
                hc_api("/api/v3/checks/%s" % check["uuid"], method="DELETE")
        shutil.rmtree(work, ignore_errors=True)
        for folder, mode in granted.items():
            os.chmod(folder, mode)


def controller_env(work):
    return ["HOME=%s" % os.path.join(work, "home"), "PATH=%s:/usr/local/bin:/usr/bin:/bin" % BIN, "LANG=C.UTF-8",
            "ANSIBLE_CONFIG=%s" % os.path.join(REPO, "ansible.cfg"),
            "ANSIBLE_COLLECTIONS_PATH=%s" % os.path.join(REPO, ".cache", "collections"),
            "ANSIBLE_NOCOLOR=1", "ANSIBLE_FORCE_COLOR=0"]


def playbook_argv(fleet, variant, operation, *args):
    """variant vars: the collection's playbook; variant play: the administrator's own play around the entry point."""
    path = ("infn_cloud.backup.%s" % operation if variant == "vars"
            else os.path.join(fleet["work"], variant, "plays", operation + ".yml"))
    return [os.path.join(BIN, "ansible-playbook"), "-i", os.path.join(fleet["work"], variant, "inventory"), path] + list(args)


def run(fleet, variant, operation, *args):
    res = as_controller(fleet["work"], playbook_argv(fleet, variant, operation, *args))
    return Run(res.returncode, res.stdout + res.stderr)


def snapshots(variant):
    out = vm_exec(VMS[variant], "docker exec -u user cloud-backup restic snapshots --json --host %s" % HOSTS[variant])
    return json.loads(out.stdout)


def ssh(fleet, variant, user, command, *options, known_hosts=os.path.join(LAB_SSH, "known_hosts")):
    address = docker("inspect", "-f", '{{(index .NetworkSettings.Networks "infn-lab").IPAddress}}', VMS[variant]).stdout.strip()
    return as_controller(fleet["work"], ["ssh", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=%s" % known_hosts,
                                         "-o", "StrictHostKeyChecking=yes", "-i", os.path.join(fleet["work"], "id_ed25519")]
                         + list(options) + ["%s@%s" % (user, address), command], timeout=60)


def test_the_controller_user_is_unprivileged(fleet):
    assert fleet["user"].pw_uid != 0
    who = as_controller(fleet["work"], ["id", "-u"])
    assert who.stdout.strip() == str(fleet["user"].pw_uid)
    assert as_controller(fleet["work"], ["sh", "-c", "sudo -n true"]).returncode != 0
    assert as_controller(fleet["work"], ["docker", "info"]).returncode != 0  # no Docker connection possible either


def test_vms_take_the_lab_key_for_ubuntu_only_with_pinned_host_keys(fleet):
    ok = ssh(fleet, "vars", "ubuntu", "id -un; sudo -n id -un")
    assert ok.returncode == 0 and ok.stdout.split() == ["ubuntu", "root"], ok.stderr
    assert ssh(fleet, "vars", "ubuntu", "docker ps").returncode != 0  # ubuntu itself reaches no Docker: become it is
    # root is refused even with the lab key authorized for it; passwords are never asked
    vm_exec(VMS["vars"], "install -d -m 0700 /root/.ssh && cp /home/ubuntu/.ssh/authorized_keys /root/.ssh/")
    try:
        root = ssh(fleet, "vars", "root", "true")
        assert root.returncode == 255 and "Permission denied" in root.stderr, root.stderr
    finally:
        vm_exec(VMS["vars"], "rm -rf /root/.ssh")
    password = ssh(fleet, "vars", "ubuntu", "true", "-o", "PreferredAuthentications=password,keyboard-interactive")
    assert password.returncode == 255 and "Permission denied (publickey)" in password.stderr, password.stderr
    # the lab pinned each VM's own keys (read from the VM, not trusted on first use): another key for the address,
    # or no entry at all, is refused
    address = docker("inspect", "-f", '{{(index .NetworkSettings.Networks "infn-lab").IPAddress}}', VMS["play"]).stdout.strip()
    pinned = [line for line in open(os.path.join(LAB_SSH, "known_hosts")) if line.split()[0] == address]
    assert sorted(line.split()[2] for line in pinned) == sorted(
        line.split()[1] for line in vm_exec(VMS["play"], "cat /etc/ssh/ssh_host_*_key.pub").stdout.splitlines())
    other = vm_exec(VMS["play"], "ssh-keygen -q -t ed25519 -N '' -f /tmp/other && cat /tmp/other.pub && rm /tmp/other*")
    wrong = os.path.join(fleet["work"], "wrong_known_hosts")
    with open(wrong, "w") as handle:
        handle.write("%s %s\n" % (address, " ".join(other.stdout.split()[:2])))
    empty = os.path.join(fleet["work"], "empty_known_hosts")
    open(empty, "w").close()
    for path in (wrong, empty):
        os.chmod(path, 0o644)
    changed = ssh(fleet, "play", "ubuntu", "true", "-o", "HostKeyAlgorithms=ssh-ed25519", known_hosts=wrong)
    assert changed.returncode == 255 and "HOST IDENTIFICATION HAS CHANGED" in changed.stderr, changed.stderr
    unknown = ssh(fleet, "play", "ubuntu", "true", known_hosts=empty)
    assert unknown.returncode == 255 and "Host key verification failed" in unknown.stderr, unknown.stderr


@pytest.mark.parametrize("variant", VARIANTS)
def test_rollout_over_ssh_with_become(fleet, variant):
    rollout = fleet["rollout"][variant]
    assert rollout.rc == 0, rollout.out[-6000:]
    assert rollout.changed(HOSTS[variant]) > 0
    assert "sudo" not in rollout.out.lower(), rollout.out[-3000:]
    vm = VMS[variant]
    assert "cloud-backup" in vm_exec(vm, "docker ps --format '{{.Names}}'").stdout
    assert vm_exec(vm, "stat -c %U /opt/cloud-backup/.env").stdout.strip() == "root"
    assert checks(HOSTS[variant])["%s-backup-data" % HOSTS[variant]]["status"] != "paused"


@pytest.mark.parametrize("variant", VARIANTS)
def test_rerun_changes_nothing(fleet, variant):
    again = run(fleet, variant, "site")
    assert again.rc == 0 and again.changed(HOSTS[variant]) == 0, again.out[-4000:]


@pytest.mark.parametrize("variant", VARIANTS)
def test_check_mode_changes_nothing(fleet, variant):
    before = host_state([VMS[variant]])
    check = run(fleet, variant, "site", "--check", "--diff")
    assert check.rc == 0 and check.changed(HOSTS[variant]) == 0, check.out[-4000:]
    assert host_state([VMS[variant]]) == before


@pytest.mark.parametrize("variant", VARIANTS)
def test_backup_now(fleet, variant):
    before = len(snapshots(variant))
    backup = run(fleet, variant, "backup_now")
    assert backup.rc == 0, backup.out[-4000:]
    assert len(snapshots(variant)) == before + 1
    assert checks(HOSTS[variant])["%s-backup-data" % HOSTS[variant]]["status"] == "up"


@pytest.mark.parametrize("variant", VARIANTS)
def test_status_files_are_written_by_the_controller_user(fleet, variant):
    out = os.path.join(fleet["work"], variant, "report")
    status = run(fleet, variant, "status", "-e", "cloud_backup_status_json=%s/status.json" % out,
                 "-e", "cloud_backup_status_html=%s/status.html" % out)
    assert status.rc == 0, status.out[-4000:]
    rows = {row["host"]: row for row in json.load(open(os.path.join(out, "status.json")))["hosts"]}
    row = rows[HOSTS[variant]]
    assert row["verdict"] == "ok" and row["snapshots"] == len(snapshots(variant)), row
    assert row["destination"].endswith(REPOSITORY), row["destination"]
    for name in ("status.json", "status.html"):
        assert os.stat(os.path.join(out, name)).st_uid == fleet["user"].pw_uid
    assert open(os.path.join(out, "status.html")).read().startswith("<!doctype html>")


@pytest.mark.parametrize("variant", VARIANTS)
def test_restore_drill(fleet, variant):
    drill = run(fleet, variant, "restore_drill")
    assert drill.rc == 0, drill.out[-4000:]
    record = json.loads(vm_exec(VMS[variant], "cat /opt/cloud-backup/drill.json").stdout)
    assert record["last_result"] == "passed" and record["files"] >= 1, record
    assert checks(HOSTS[variant])["%s-restore-drill" % HOSTS[variant]]["status"] == "up"


@pytest.mark.parametrize("variant", VARIANTS)
def test_decommission_keeps_the_local_repository(fleet, variant):
    host, vm = HOSTS[variant], VMS[variant]
    taken = len(snapshots(variant))
    gone = run(fleet, variant, "decommission", "-e", "decommission_hosts=%s" % host)
    assert gone.rc == 0, gone.out[-4000:]
    assert "kept with %d snapshot(s) of %s" % (taken, host) in gone.out, gone.out[-3000:]
    left = vm_exec(vm, "docker ps -aq; docker volume ls -q; ls -d /opt/cloud-backup /etc/cron.d/cloud-backup"
                       " 2>/dev/null; true").stdout.split()
    assert left == []
    assert len(vm_exec(vm, "ls %s/snapshots" % REPOSITORY).stdout.split()) == taken
    assert {c["status"] for c in checks(host).values()} == {"paused"}
