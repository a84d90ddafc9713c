"""Benchmarks on the lab fleet: rollout scaling, Healthchecks module cost, backup throughput.

Run with `bash bench/run.sh` (it installs the tooling and starts the lab). Prints a table and writes
bench/results/results.json. Ratios are measured side by side in one run, so the machine's noise
cancels out. Nothing is asserted here: bench/RESULTS.md records a run against the targets.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BIN = os.path.dirname(sys.executable)
HC = "http://127.0.0.1:58000"
HC_KEY = "hcw_labfleetreadwritekey00000001"
S3_FROM_VMS = "http://172.31.240.10:5000"


def sh(argv, **kw):
    kw.setdefault("check", True)
    return subprocess.run(argv, cwd=REPO, capture_output=True, text=True, **kw)


def vm(name, script, check=True):
    return sh(["docker", "exec", name, "sh", "-c", script], check=check)


def _children_cpu():
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def playbook(*args, cpu=None):
    """Run ansible-playbook: wall seconds and the recap; with CPU (a dict), also the controller's CPU seconds
    (user + system of ansible-playbook and everything it ran on the controller: workers, the docker CLI of the
    Docker connection, ssh), under cpu["s"]."""
    start, cpu_start = time.monotonic(), _children_cpu()
    result = sh([os.path.join(BIN, "ansible-playbook"), *args], check=False)
    elapsed = time.monotonic() - start
    if cpu is not None:
        cpu["s"] = _children_cpu() - cpu_start
    if result.returncode != 0:
        sys.exit("ansible-playbook %s failed:\n%s" % (" ".join(args), (result.stdout + result.stderr)[-4000:]))
    recap = {m.group(1): {k: int(v) for k, v in re.findall(r"(\w+)=(\d+)", m.group(2))}
             for m in re.finditer(r"^(\S+)\s+:\s+(ok=.*)$", result.stdout, re.M)}
    return elapsed, recap


def lab(*args):
    sh(["bash", "lab/lab.sh", *args])


# ------------------------------------------------------------------ rollout scaling

INVENTORIES = {"docker": "inventories/lab", "ssh": "inventories/lab-ssh"}


def bench_rollout(sizes, connections=("docker",)):
    """Per size and connection: fresh VMs, the reference's first run and rerun, the role's first run and rerun. The
    SSH rows use the same VMs' image and the lab's SSH inventory (user ubuntu, become through sudo)."""
    rows = []
    for n in sizes:
        for connection in connections:
            rows.append(_rollout_row(n, connection))
    return rows


def _fresh_vms(n):
    sh(["bash", "-c", "docker rm -f $(docker ps -aq --filter name=infn-lab-vm) >/dev/null 2>&1 || true"])
    lab("up", str(n))


CONTROLLER_CACHE = os.path.join(tempfile.gettempdir(), "infn-bench-images")


def _forget_controller_images():
    """The controller mode's first run builds from scratch: its archive cache and the images the role built on the
    controller's engine are removed (the lab's own build of the image, tagged latest, is kept: its package layer
    has other build arguments, so the role's build does not reuse it)."""
    shutil.rmtree(CONTROLLER_CACHE, ignore_errors=True)
    keep = sh(["docker", "image", "inspect", "-f", "{{.Id}}", "infn-cloud/cloud-backup:latest"], check=False).stdout.strip()
    listed = sh(["docker", "images", "--no-trunc", "--format", "{{.Repository}}:{{.Tag}} {{.ID}}", "infn-cloud/cloud-backup"])
    for line in listed.stdout.split("\n"):
        if line.strip() and line.split()[1] != keep:
            sh(["docker", "rmi", line.split()[0]], check=False)


def _rollout_row(n, connection):
    """Fresh VMs: the reference's first run and rerun, then the role's first run and rerun with the image built on
    every host; fresh VMs again: the role's first run and rerun with the image built once on the controller
    (cloud_backup_image_source: controller, from an empty cache). Wall and controller CPU seconds of each."""
    _fresh_vms(n)
    inventory = ["-i", INVENTORIES[connection]]
    cpu = {}
    ref_first, _ = playbook(*inventory, "bench/reference.yml")
    ref_rerun, _ = playbook(*inventory, "bench/reference.yml")
    build = ["-e", "cloud_backup_image_source=build"]
    role_first, _ = playbook(*inventory, "playbooks/site.yml", *build, cpu=cpu)
    cpu_first = cpu["s"]
    role_rerun, recap = playbook(*inventory, "playbooks/site.yml", *build, cpu=cpu)
    cpu_rerun = cpu["s"]
    changed = sum(r["changed"] for r in recap.values())
    tasks = max(r["ok"] + r["changed"] + r["skipped"] for r in recap.values())
    _fresh_vms(n)
    _forget_controller_images()
    controller = ["-e", "cloud_backup_image_source=controller", "-e", "cloud_backup_image_cache_dir=" + CONTROLLER_CACHE]
    ctl_first, _ = playbook(*inventory, "playbooks/site.yml", *controller, cpu=cpu)
    ctl_cpu_first = cpu["s"]
    ctl_rerun, ctl_recap = playbook(*inventory, "playbooks/site.yml", *controller, cpu=cpu)
    ctl_cpu_rerun = cpu["s"]
    ids = {vm("infn-lab-vm%d" % i, "docker inspect -f '{{.Image}}' cloud-backup").stdout.strip() for i in range(1, n + 1)}
    # fresh VMs once more, the image already on the controller (built by the run above): adding hosts to a fleet
    _fresh_vms(n)
    warm_first, _ = playbook(*inventory, "playbooks/site.yml", *controller, cpu=cpu)
    row = {"hosts": n, "connection": connection, "reference_first_s": ref_first, "reference_rerun_s": ref_rerun,
           "role_first_s": role_first, "role_rerun_s": role_rerun, "role_rerun_changed": changed,
           "role_tasks_per_host": tasks, "cpu_first_s": cpu_first, "cpu_rerun_s": cpu_rerun,
           "controller_first_s": ctl_first, "controller_rerun_s": ctl_rerun, "controller_cpu_first_s": ctl_cpu_first,
           "controller_cpu_rerun_s": ctl_cpu_rerun, "controller_rerun_changed": sum(r["changed"] for r in ctl_recap.values()),
           "controller_image_ids": len(ids), "controller_warm_first_s": warm_first, "controller_warm_cpu_first_s": cpu["s"]}
    print("  rollout n=%-2d %-6s  ref %.1fs/%.1fs  role %.1fs/%.1fs (cpu %.1fs/%.1fs)  rerun changed=%d  tasks/host=%d"
          "  controller image %.1fs/%.1fs (cpu %.1fs/%.1fs) changed=%d, %d image ID(s); image already built %.1fs"
          % (n, connection, ref_first, ref_rerun, role_first, role_rerun, cpu_first, cpu_rerun, changed, tasks,
             ctl_first, ctl_rerun, ctl_cpu_first, ctl_cpu_rerun, row["controller_rerun_changed"], len(ids),
             warm_first), flush=True)
    return row


# ------------------------------------------------------------------ Healthchecks module cost

def _hc_admin(path, method="GET"):
    with urllib.request.urlopen(urllib.request.Request(HC + "/_admin/" + path, method=method), timeout=10) as r:
        body = r.read()
    return json.loads(body) if body else None


def bench_healthchecks(count):
    checks = [{"name": "bench-%02d" % i, "tags": ["bench"], "schedule": "%d 2 * * *" % i, "tz": "UTC",
               "grace": 3600, "channels": ["ops-email"]} for i in range(count)]
    play = [{"name": "Ensure %d checks" % count, "hosts": "localhost", "gather_facts": False,
             "vars": {"ansible_python_interpreter": sys.executable},
             "tasks": [{"name": "Ensure the checks", "infn_cloud.backup.healthchecks_checks": {
                 "api_url": HC, "api_key": HC_KEY, "checks": checks}, "no_log": True}]}]
    with tempfile.NamedTemporaryFile("w", suffix=".yml", delete=False) as handle:
        json.dump(play, handle)
    rows = []
    for label in ("first", "rerun"):
        _hc_admin("requests", "DELETE")
        elapsed, _ = playbook("-i", "localhost,", "-c", "local", handle.name)
        api = [r for r in _hc_admin("requests")["requests"] if r["path"].startswith("/api/")]
        rows.append({"run": label, "checks": count, "wall_s": elapsed, "requests": len(api),
                     "writes": len([r for r in api if r["method"] != "GET"]),
                     "redirects": len([r for r in api if r["status"] in (301, 302, 307, 308)])})
        print("  healthchecks %-5s %d checks: %.1fs, %d requests, %d writes" %
              (label, count, elapsed, rows[-1]["requests"], rows[-1]["writes"]), flush=True)
    os.unlink(handle.name)
    return rows


# ------------------------------------------------------------------ backup throughput

DATA_SCRIPT = r"""
set -e
rm -rf /srv/bench && mkdir -p /srv/bench/big /srv/bench/text /srv/bench/small
i=0; total=0
while [ $total -lt BIG_MIB ]; do s=$(( (i % 19) + 2 )); head -c ${s}M /dev/urandom > /srv/bench/big/f$i.bin; total=$((total+s)); i=$((i+1)); done
i=0
while [ $(du -sm /srv/bench/text | cut -f1) -lt TEXT_MIB ]; do
  seq 1 40000 | sed "s/$/ log line of file $i: the quick brown fox jumps over the lazy dog/" > /srv/bench/text/t$i.log; i=$((i+1)); done
for d in $(seq 1 40); do mkdir -p /srv/bench/small/d$d; for f in $(seq 1 60); do head -c $(( (f * 977) % 60000 + 500 )) /dev/urandom > /srv/bench/small/d$d/s$f; done; done
du -sm /srv/bench | cut -f1; find /srv/bench -type f | wc -l
"""


def _timed_with_peak_memory(vm_name, script, container=None):
    """Run script in the VM; sample the container's memory every 0.2 s while it runs."""
    peak = [0]
    done = threading.Event()

    def sample():
        while not done.is_set():
            out = vm(vm_name, "docker stats --no-stream --format '{{.MemUsage}}' %s" % container, check=False).stdout
            match = re.match(r"([\d.]+)\s*([KMG]i?B)", out.strip())
            if match:
                factor = {"KiB": 1 / 1024, "KB": 1 / 1000, "MiB": 1, "MB": 1, "GiB": 1024, "GB": 1000}[match.group(2)]
                peak[0] = max(peak[0], float(match.group(1)) * factor)
            done.wait(0.2)

    sampler = threading.Thread(target=sample, daemon=True) if container else None
    if sampler:
        sampler.start()
    start = time.monotonic()
    result = vm(vm_name, script, check=False)
    elapsed = time.monotonic() - start
    done.set()
    if sampler:
        sampler.join()
    if result.returncode != 0:
        sys.exit("%s failed in %s:\n%s" % (script, vm_name, (result.stdout + result.stderr)[-3000:]))
    return elapsed, peak[0]


def bench_backup(data_mib):
    name = "infn-lab-vm1"
    lab("up", "1")
    big, text = int(data_mib * 0.65), int(data_mib * 0.3)
    # the stack without the benchmark source first: a container still holding /srv/bench from an earlier run would
    # keep the directory that the generator removes (a bind mount follows the inode, not the path)
    playbook("-i", "inventories/lab", "playbooks/site.yml", "--limit", "vm1")
    out = vm(name, DATA_SCRIPT.replace("BIG_MIB", str(big)).replace("TEXT_MIB", str(text))).stdout.split()
    size_mib, files = int(out[0]), int(out[1])
    # the stack, with the benchmark data as its source
    playbook("-i", "inventories/lab", "playbooks/site.yml", "--limit", "vm1", "-e",
             '{"cloud_backup_sources": [{"name": "bench", "path": "/srv/bench"}]}')
    image = vm(name, "docker inspect -f '{{.Config.Image}}' cloud-backup").stdout.strip()
    stack = "docker exec -u user cloud-backup backup --tag bench /backup/bench >/dev/null"
    direct_env = ("-e RESTIC_PASSWORD=bench-direct -e AWS_ACCESS_KEY_ID=lab-access-key "
                  "-e AWS_SECRET_ACCESS_KEY=lab-secret-key -e RESTIC_REPOSITORY=s3:%s/lab-backups/bench-direct-%d"
                  % (S3_FROM_VMS, int(time.time())))
    direct = ("docker run --rm --network host -v /srv/bench:/backup/bench:ro -v bench-direct-cache:/home/user/.cache "
              "%s --entrypoint restic %s backup --tag bench /backup/bench >/dev/null" % (direct_env, image))
    vm(name, "docker run --rm --network host %s --entrypoint restic %s init >/dev/null" % (direct_env, image))
    results = {"data_mib": size_mib, "files": files}
    # alternate the two so that neither always runs on a warmer machine
    results["direct_first_s"], _ = _timed_with_peak_memory(name, direct)
    results["stack_first_s"], results["stack_peak_mib"] = _timed_with_peak_memory(name, stack, "cloud-backup")
    vm(name, "find /srv/bench -type f | awk 'NR % 100 == 0' | while read f; do echo changed >> \"$f\"; done")
    results["stack_incremental_s"], _ = _timed_with_peak_memory(name, stack, "cloud-backup")
    results["direct_incremental_s"], _ = _timed_with_peak_memory(name, direct)
    results["ratio_stack_vs_direct"] = results["stack_first_s"] / results["direct_first_s"]
    results["stack_mb_s"] = size_mib * 1.048576 / results["stack_first_s"]
    results["direct_mb_s"] = size_mib * 1.048576 / results["direct_first_s"]
    results["incremental_fraction"] = results["stack_incremental_s"] / results["stack_first_s"]
    print("  backup %d MiB, %d files: stack %.1fs (%.0f MB/s), restic alone %.1fs (%.0f MB/s), ratio %.2f; "
          "incremental %.1fs (%.0f%%); peak memory %.0f MiB"
          % (size_mib, files, results["stack_first_s"], results["stack_mb_s"], results["direct_first_s"],
             results["direct_mb_s"], results["ratio_stack_vs_direct"], results["stack_incremental_s"],
             100 * results["incremental_fraction"], results["stack_peak_mib"]), flush=True)
    vm(name, "rm -rf /srv/bench; docker volume rm -f bench-direct-cache >/dev/null 2>&1 || true", check=False)
    playbook("-i", "inventories/lab", "playbooks/site.yml", "--limit", "vm1")
    return results


def table(report):
    lines = ["", "Rollout (wall seconds; reference = 5 bare tasks; build = the image built on every host, controller ="
             " built once on the controller and loaded on every host)",
             "| hosts | connection | reference first | reference rerun | role first (build) | role rerun | rerun changed"
             " | role rerun / reference first | tasks/host | role first (controller, built now) | / build first"
             " | role first (controller, already built) | / build first | rerun (controller) | changed | image IDs |",
             "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    rows = report.get("rollout", [])
    for r in rows:
        lines.append("| %d | %s | %.1f | %.1f | %.1f | %.1f | %d | %.2f | %d | %.1f | %.2f | %.1f | %.2f | %.1f | %d | %d |" % (
            r["hosts"], r.get("connection", "docker"), r["reference_first_s"], r["reference_rerun_s"],
            r["role_first_s"], r["role_rerun_s"], r["role_rerun_changed"], r["role_rerun_s"] / r["reference_first_s"],
            r["role_tasks_per_host"], r["controller_first_s"], r["controller_first_s"] / r["role_first_s"],
            r["controller_warm_first_s"], r["controller_warm_first_s"] / r["role_first_s"],
            r["controller_rerun_s"], r["controller_rerun_changed"], r["controller_image_ids"]))
    for connection in INVENTORIES:
        picked = [r for r in rows if r.get("connection", "docker") == connection]
        if len(picked) > 1:
            first, last = picked[0], picked[-1]
            lines.append("T(%d)/T(%d) over %s: role rerun %.2f, reference %.2f" % (
                last["hosts"], first["hosts"], connection, last["role_rerun_s"] / first["role_rerun_s"],
                last["reference_first_s"] / first["reference_first_s"]))
    if rows:
        lines += ["", "Controller CPU seconds per host (ansible-playbook and all it runs on the controller)",
                  "| hosts | connection | first (build) | rerun | first (controller image, incl. its build) | rerun (controller) |",
                  "|---:|---|---:|---:|---:|---:|"]
        for r in rows:
            lines.append("| %d | %s | %.2f | %.2f | %.2f | %.2f |" % (
                r["hosts"], r.get("connection", "docker"), r["cpu_first_s"] / r["hosts"], r["cpu_rerun_s"] / r["hosts"],
                r["controller_cpu_first_s"] / r["hosts"], r["controller_cpu_rerun_s"] / r["hosts"]))
        big = max(rows, key=lambda r: r["hosts"])
        one = min(rows, key=lambda r: r["hosts"])
        per_host = big["cpu_rerun_s"] / big["hosts"]
        # one core busy all the time: 500 hosts cost 500 x the CPU per host; enough forks to keep it busy while
        # each host waits on its own round trips (Little's law: a host's wall time alone / its CPU time)
        forks = max(1, int(round(one["role_rerun_s"] / (one["cpu_rerun_s"] / one["hosts"]))))
        lines.append("Extrapolation (not measured): a 500-host rerun on one controller core needs about %.0f CPU s, "
                     "so at least %.0f min of wall time, with forks >= %d to keep the core busy (%.2f CPU s/host at "
                     "%d hosts; one host alone takes %.1f s of wall for %.2f CPU s)."
                     % (500 * per_host, 500 * per_host / 60, forks, per_host, big["hosts"], one["role_rerun_s"],
                        one["cpu_rerun_s"] / one["hosts"]))
    if report.get("healthchecks"):
        lines += ["", "Healthchecks module (healthchecks_checks, one call)",
                  "| run | checks | wall s | HTTP requests | writes | redirects |", "|---|---:|---:|---:|---:|---:|"]
        for r in report["healthchecks"]:
            lines.append("| %s | %d | %.1f | %d | %d | %d |" % (r["run"], r["checks"], r["wall_s"], r["requests"],
                                                              r["writes"], r["redirects"]))
    b = report.get("backup")
    if b:
        lines += ["", "Backup of %d MiB in %d files (VM: container -> rclone REST -> S3, vs restic alone -> S3)"
                  % (b["data_mib"], b["files"]),
                  "| | first s | MB/s | incremental (1% files changed) s |", "|---|---:|---:|---:|",
                  "| stack | %.1f | %.0f | %.1f |" % (b["stack_first_s"], b["stack_mb_s"], b["stack_incremental_s"]),
                  "| restic alone | %.1f | %.0f | %.1f |" % (b["direct_first_s"], b["direct_mb_s"], b["direct_incremental_s"]),
                  "ratio stack/alone %.2f; incremental/first %.0f%%; backup container peak memory %.0f MiB" % (
                      b["ratio_stack_vs_direct"], 100 * b["incremental_fraction"], b["stack_peak_mib"])]
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sizes", default="1,3,6,10")
    parser.add_argument("--checks", type=int, default=30)
    parser.add_argument("--data-mib", type=int, default=1024)
    parser.add_argument("--only", choices=["rollout", "healthchecks", "backup"], action="append")
    parser.add_argument("--connections", default="docker,ssh",
                        help="rollout rows over the Docker connection, over SSH (user ubuntu, sudo), or both")
    args = parser.parse_args()
    only = set(args.only or ["rollout", "healthchecks", "backup"])
    report = {"date": dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds"),
              "machine": {"cpus": os.cpu_count(), "platform": platform.platform(),
                          "memory_gib": round(os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30, 1)},
              "versions": {"ansible-core": sh([os.path.join(BIN, "ansible"), "--version"]).stdout.split("\n")[0],
                           "python": platform.python_version()}}
    if "rollout" in only:
        report["rollout"] = bench_rollout([int(n) for n in args.sizes.split(",")], args.connections.split(","))
    if "healthchecks" in only:
        report["healthchecks"] = bench_healthchecks(args.checks)
    if "backup" in only:
        report["backup"] = bench_backup(args.data_mib)
    os.makedirs(os.path.join(REPO, "bench", "results"), exist_ok=True)
    with open(os.path.join(REPO, "bench", "results", "results.json"), "w") as handle:
        json.dump(report, handle, indent=2)
    print(table(report))


if __name__ == "__main__":
    main()
