"""Helpers for the lab tests: the lab's VMs (started by lab/lab.sh up), playbook runs, host state."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import urllib.request

import yaml

REPO = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
LAB_INVENTORY = os.path.join(REPO, "inventories", "lab")
BIN = os.path.dirname(sys.executable)


def lab_vms():
    """{inventory name: container name} of the running lab; fails (never skips) when the lab is down."""
    hosts_file = os.path.join(LAB_INVENTORY, "hosts.yml")
    assert os.path.exists(hosts_file), "the lab is not up: run lab/lab.sh up (scripts/test.sh does)"
    hosts = yaml.safe_load(open(hosts_file))["all"]["children"]["cloud_backup"]["hosts"]
    vms = {name: spec["ansible_host"] for name, spec in hosts.items()}
    for container in vms.values():
        state = subprocess.run(["docker", "inspect", "-f", "{{.State.Running}}", container],
                               capture_output=True, text=True)
        assert state.stdout.strip() == "true", "lab VM %s is not running" % container
    return vms


def docker(*args, check=True, timeout=300):
    """`docker ARGS` on the lab's engine; fails with the command and its stderr unless check is false."""
    res = subprocess.run(("docker",) + args, capture_output=True, text=True, timeout=timeout)
    assert res.returncode == 0 or not check, "docker %s: %s" % (" ".join(args[:3]), res.stderr[-2000:])
    return res


def ip_of(container):
    """The address of a lab container on the lab network."""
    return docker("inspect", "-f", '{{(index .NetworkSettings.Networks "infn-lab").IPAddress}}', container).stdout.strip()


def vm_exec(container, command, check=True, user=None):
    argv = ["docker", "exec"] + (["-u", user] if user else []) + [container, "sh", "-c", command]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, "%s: %s failed: %s%s" % (container, command, result.stdout, result.stderr)
    return result


def copy_inventory(tmp_path):
    """A private copy of the lab inventory that a test may edit."""
    dest = tmp_path / "inventory"
    shutil.copytree(LAB_INVENTORY, dest)
    return dest


def edit_yaml(path, change):
    data = yaml.safe_load(open(path)) if os.path.exists(path) else {}
    change(data)
    with open(path, "w") as handle:
        yaml.safe_dump(data, handle)


class Run:
    def __init__(self, rc, out):
        self.rc, self.out = rc, out
        self.recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
                      for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", out, re.M)}

    def changed(self, host):
        return self.recap[host]["changed"]


def playbook(*args, inventory=LAB_INVENTORY, playbook_path="playbooks/site.yml", env=None, timeout=1500):
    """ansible-playbook with the lab inventory (its group_vars) plus any further -i given in args."""
    argv = [os.path.join(BIN, "ansible-playbook"), "-i", str(inventory), playbook_path] + list(args)
    full_env = dict(os.environ, ANSIBLE_FORCE_COLOR="0", ANSIBLE_NOCOLOR="1", **(env or {}))
    result = subprocess.run(argv, cwd=REPO, capture_output=True, text=True, env=full_env, timeout=timeout)
    return Run(result.returncode, result.stdout + result.stderr)


def host_state(containers):
    """What a rollout could change on each VM: the stack's files, cron, containers, images."""
    script = (
        "find /opt/cloud-backup /etc/cron.d /srv/backup-repository -xdev -printf '%p %s %T@ %m %u\\n' 2>/dev/null | sort;"
        "docker ps -a --no-trunc --format '{{.ID}} {{.Names}} {{.State}}' | sort;"
        "docker images -q --no-trunc | sort;"
        "docker volume ls -q | sort"
    )
    return {c: vm_exec(c, script, check=False).stdout for c in containers}


HC_ADMIN = "http://127.0.0.1:58000/_admin"


HC_API_KEY = "hcw_labfleetreadwritekey00000001"  # the lab fleet's read-write key (inventories/lab/group_vars)


def hc_api(path, method="GET"):
    """A call of the lab's Healthchecks (its API with the fleet's key, or a ping path): the JSON answer, None if empty."""
    request = urllib.request.Request(HC_ADMIN[:-len("/_admin")] + path, method=method,
                                     headers={"X-Api-Key": HC_API_KEY})
    with urllib.request.urlopen(request, timeout=10) as response:
        body = response.read()
    return json.loads(body) if body else None


def hc_requests():
    """The lab Healthchecks' log of API calls, oldest first: method, path, status and `check`, the name of the check
    a call is about (None for lists and channels). Test modules run side by side and share the server: a test reads
    the calls about its own checks made after a cursor (the log's length before), and never clears the log."""
    with urllib.request.urlopen(HC_ADMIN + "/requests", timeout=10) as res:
        return [r for r in json.load(res)["requests"] if r["path"].startswith("/api/")]


def hc_writes(since, hosts):
    """The API write calls (method, path) after the cursor SINCE about the checks of HOSTS (named <host>-<job>)."""
    return [(r["method"], r["path"]) for r in hc_requests()[since:]
            if r["method"] != "GET" and any((r["check"] or "").startswith(host + "-") for host in hosts)]


def hc_pings(check):
    """Every ping the lab's Healthchecks received for the check named CHECK (<host>-<job>), oldest first."""
    with urllib.request.urlopen(HC_ADMIN + "/pings", timeout=10) as res:
        return [p for p in json.load(res)["pings"] if p["check"] == check]


def _standin():
    """The lab's ofelia stand-in (lab/images/ofelia-standin): its own reading of ofelia's config format, which
    shares no code with the role that writes the configs."""
    import importlib
    folder = os.path.join(REPO, "lab", "images", "ofelia-standin")
    if folder not in sys.path:
        sys.path.insert(0, folder)
    sys.dont_write_bytecode = True  # no __pycache__ in the image's build context
    try:
        return importlib.import_module("standin")
    finally:
        sys.dont_write_bytecode = False


def scheduled_job(container, job, env=None, project_dir="/opt/cloud-backup", command=None):
    """The shell command that runs JOB on the VM exactly as its scheduler does: from the deployed ofelia config
    (docker exec with the job's user, environment and argv, as ofelia's job-exec does) or, with the cron scheduler,
    from the deployed cron line. ENV adds -e NAME=VALUE flags (e.g. a wrong password); COMMAND (a string) replaces
    the job's own command, keeping its user and environment."""
    import shlex
    extra = [x for name, value in (env or {}).items() for x in ("-e", "%s=%s" % (name, value))]
    ofelia = vm_exec(container, "cat %s/ofelia/config.ini" % project_dir, check=False)
    if ofelia.returncode == 0:
        standin = _standin()
        spec = standin.load_config(ofelia.stdout).job("job-exec", job)
        argv = ["docker", "exec", "-u", spec.get("user")]
        for item in spec.get("environment") or []:
            argv += ["-e", item]
        argv += extra + [spec.get("container")] + (shlex.split(command) if command else standin.split_args(spec.command))
        return " ".join(shlex.quote(a) for a in argv)
    cron = vm_exec(container, "cat /etc/cron.d/cloud-backup").stdout
    line = next(line for line in cron.splitlines() if "cloud-backup-%s.lock " % job in line)
    argv = shlex.split(line.split(".lock ", 1)[1].split(" >> ", 1)[0].replace("\\%", "%"))
    at, name_at = argv.index("exec") + 1, argv.index("cloud-backup")
    argv = argv[:at] + extra + argv[at:name_at + 1] + (shlex.split(command) if command else argv[name_at + 1:])
    return " ".join(shlex.quote(a) for a in argv)


def run_job(container, job, env=None, check=False, command=None):
    """Run JOB on the VM as its scheduler does (see scheduled_job)."""
    return vm_exec(container, scheduled_job(container, job, env, command=command), check=check)
