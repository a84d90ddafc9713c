#!/usr/bin/env bash
# The local lab: a Docker engine, simulated VMs (containers running their own dockerd), an S3 server.
#   lab/lab.sh up [N]     build what is missing (cached), start N VMs (default 3, at most 10) and the S3 server,
#                         write inventories/lab/hosts.yml (Docker connection) and inventories/lab-ssh/hosts.yml (the
#                         same VMs over SSH as ubuntu with sudo, the lab key and known_hosts in .lab/ssh)
#   lab/lab.sh images     only build the images
#   lab/lab.sh prepare-vm NAME  load the lab images into a VM made elsewhere (molecule) and seed its data
#   lab/lab.sh extra-vm NAME [persistent] [with-image]  one more VM (dynamic address) outside the inventory, for tests
#   lab/lab.sh vm-volumes the volumes of a VM started elsewhere (molecule, the oidc module tests), as NAME=SPEC lines:
#                         the engine directory with the lab images it boots from, the shared compiled-code cache
#   lab/lab.sh fleet-image  name the lab fleet's backup image for `extra-vm ... with-image` (lab/fleet-image.yml)
#   lab/lab.sh down       remove the VMs, the S3 server and the network
#   lab/lab.sh status     list what runs
# Everything is named infn-lab-*; nothing but loopback and these containers is ever contacted.
source "$(dirname "${BASH_SOURCE[0]}")/lib.sh"

LAB_S3_IP="${LAB_S3_IP:-172.31.240.10}"
LAB_S3_PORT_LOCAL="${LAB_S3_PORT_LOCAL:-59000}"
LAB_HC_IP="${LAB_HC_IP:-172.31.240.11}"
LAB_HC_PORT_LOCAL="${LAB_HC_PORT_LOCAL:-58000}"
LAB_INVENTORY="${REPO_ROOT}/inventories/lab/hosts.yml"
LAB_SSH_INVENTORY="${REPO_ROOT}/inventories/lab-ssh/hosts.yml"
VM_RUN_FLAGS=(
  --cap-add=ALL --cap-drop=SYS_RESOURCE
  --security-opt seccomp=unconfined --security-opt apparmor=unconfined
  "--device-cgroup-rule=a *:* rmw" --cgroupns=host -v /sys/fs/cgroup:/sys/fs/cgroup:rw
  --tmpfs /var/lib/docker:exec -e DOCKER_ALLOW_IPV6_ON_IPV4_INTERFACE=1
)
# The compiled code of Ansible's module payloads, kept by the VMs in /var/cache/infn-lab-pycode
# (lab/images/vm/pycode_cache.py) and shared through LAB_PYCODE; with LAB_PYCODE_CACHE=off (the benchmarks, which
# time what a real VM does) that directory is an empty one, read-only, and every run compiles its modules.
# `lab/lab.sh vm-volumes` gives this and the disk's volume to the VMs started elsewhere (molecule, the oidc tests).
LAB_PYCODE="${LAB_CACHE}/vm-pycode"
PYCODE_VOLUME="${LAB_PYCODE}:/var/cache/infn-lab-pycode"
if [ "${LAB_PYCODE_CACHE:-on}" = off ]; then
  LAB_PYCODE="${LAB_CACHE}/vm-pycode-off"
  PYCODE_VOLUME="${LAB_PYCODE}:/var/cache/infn-lab-pycode:ro"
fi
VM_RUN_FLAGS+=(-v "${PYCODE_VOLUME}")

build_images() {
  ensure_engine
  ensure_base_image
  VM_IMAGE="$(build_image infn-lab/vm "${LAB_ROOT}/images/vm")"
  S3_IMAGE="$(build_image infn-lab/s3 "${LAB_ROOT}/images/s3")"
  # the tests import the stand-in from its folder: their bytecode must not change the image's content hash
  rm -rf "${LAB_ROOT}/images/ofelia-standin/__pycache__"
  OFELIA_IMAGE="$(build_image infn-lab/ofelia-standin "${LAB_ROOT}/images/ofelia-standin")"
  docker tag "${OFELIA_IMAGE}" infn-lab/ofelia-standin:0.3.21
  # The backup image on this engine too (tagged latest): the module tests run restic and oidc-agent in it.
  build_image infn-cloud/cloud-backup "${REPO_ROOT}/roles/cloud_backup/files/image" >/dev/null
}

start_s3() {
  if [ "$(docker inspect -f '{{.State.Running}}' infn-lab-s3 2>/dev/null)" = true ]; then return 0; fi
  docker rm -f infn-lab-s3 >/dev/null 2>&1 || true
  log "starting the S3 server (moto) at ${LAB_S3_IP}:5000 and 127.0.0.1:${LAB_S3_PORT_LOCAL}"
  docker run -d --name infn-lab-s3 --network "${LAB_NET}" --ip "${LAB_S3_IP}" \
    -p "127.0.0.1:${LAB_S3_PORT_LOCAL}:5000" --label infn-lab=1 "${S3_IMAGE}" >/dev/null
  wait_http infn-lab-s3 "http://127.0.0.1:${LAB_S3_PORT_LOCAL}/" "the S3 server"
}

# wait_http CONTAINER URL WHAT: wait up to 30 s for URL to answer, else show CONTAINER's log and fail.
wait_http() {
  for _ in $(seq 1 60); do
    curl -fsS -o /dev/null "$2" 2>/dev/null && return 0
    sleep 0.5
  done
  docker logs "$1" >&2
  die "$3 did not answer"
}

# The lab's Healthchecks: the project's faithful fake of the Management API and ping endpoints
# (tests/fakes/healthchecks_fake.py; no Healthchecks server can be installed here).
start_healthchecks() {
  if [ "$(docker inspect -f '{{.State.Running}}' infn-lab-hc 2>/dev/null)" = true ]; then return 0; fi
  docker rm -f infn-lab-hc >/dev/null 2>&1 || true
  log "starting the Healthchecks fake at ${LAB_HC_IP}:8000 and 127.0.0.1:${LAB_HC_PORT_LOCAL}"
  docker run -d --name infn-lab-hc --network "${LAB_NET}" --ip "${LAB_HC_IP}" \
    -p "127.0.0.1:${LAB_HC_PORT_LOCAL}:8000" --label infn-lab=1 \
    -v "${REPO_ROOT}/tests/fakes:/opt/fake:ro" -v "${LAB_ROOT}/healthchecks:/etc/fake:ro" \
    --entrypoint python3 "${S3_IMAGE}" /opt/fake/healthchecks_fake.py --host 0.0.0.0 --port 8000 \
    --config /etc/fake/config.json >/dev/null
  wait_http infn-lab-hc "http://127.0.0.1:${LAB_HC_PORT_LOCAL}/_admin/checks" "the Healthchecks fake"
}

# vm_disk [IMAGE]: the Docker engine's directory (/var/lib/docker) of a VM into which the lab's images (the base image
# and the ofelia stand-in, and IMAGE when given: the fleet's backup image) have been loaded, as a tar made once per set
# of images (LAB_CACHE/vm-disk-<hash>[-<hash of IMAGE>].tar, the engine stopped first). Each new VM starts from it
# (disk_volume) instead of a `docker save | docker load` of those images: the same images in its engine, for a fraction
# of the CPU (every VM shares this machine's two cores).
vm_disk() {
  local extra="${1:-}" base key file
  base="$(docker image inspect -f '{{.Id}}' "${VM_IMAGE}" "${LAB_BASE_IMAGE}" infn-lab/ofelia-standin:0.3.21 | sha256sum | cut -c1-12)"
  key="${base}"
  [ -z "${extra}" ] || key="${base}-$(docker image inspect -f '{{.Id}}' "${extra}" | sha256sum | cut -c1-12)"
  file="${LAB_CACHE}/vm-disk-${key}.tar"
  mkdir -p -m 0755 "${LAB_PYCODE}"
  (
    flock 9
    [ -s "${file}" ] && exit 0
    log "making the VMs' engine directory with the lab images${extra:+ and ${extra}} loaded (${file})"
    docker save "${LAB_BASE_IMAGE}" infn-lab/ofelia-standin:0.3.21 ${extra:+"${extra}"} \
      | docker run -i --rm --label infn-lab=1 "${VM_RUN_FLAGS[@]}" --entrypoint /bin/sh "${VM_IMAGE}" -c '
          dockerd --host=unix:///var/run/docker.sock >/tmp/dockerd.log 2>&1 & pid=$!
          for _ in $(seq 1 120); do docker info >/dev/null 2>&1 && break; sleep 0.5; done
          docker load -q >&2 || { cat /tmp/dockerd.log >&2; exit 1; }
          kill "${pid}"; wait "${pid}" || true
          rm -f /var/lib/docker/engine-id
          tar --xattrs --xattrs-include="*" -cf - -C /var/lib/docker .' >"${file}.tmp.$$" \
      && mv "${file}.tmp.$$" "${file}" || { rm -f "${file}.tmp.$$"; die "could not make ${file}"; }
    # older disks are removed: those of other sets of lab images, and those with another backup image
    find "${LAB_CACHE}" -maxdepth 1 -name 'vm-disk-*.tar' ! -name "vm-disk-${base}.tar" ! -name "vm-disk-${key}.tar" -delete
  ) 9>"${LAB_CACHE}/vm-disk.lock" || die "no engine directory for the VMs"
  printf '%s' "${file}"
}

# disk_volume DISK: the volume that mounts DISK where a VM's boot (lab/images/vm/vm-init) unpacks it into an empty
# engine directory (a new VM; a persistent one at its first boot).
disk_volume() { printf '%s:/var/lib/docker-disk.tar:ro' "$1"; }

# vm_volumes: the volumes of a VM started outside this script, as NAME=SPEC lines (docker run -v SPEC)
vm_volumes() {
  VM_IMAGE="$(build_image infn-lab/vm "${LAB_ROOT}/images/vm")"
  printf 'LAB_VM_DISK_VOLUME=%s\nLAB_VM_PYCODE_VOLUME=%s\n' "$(disk_volume "$(vm_disk)")" "${PYCODE_VOLUME}"
}

# start_vm I: the VM infn-lab-vmI at 172.31.240.(100+I), with the lab's images in its engine.
start_vm() {
  local i="$1" name="infn-lab-vm$1" disk
  if [ "$(docker inspect -f '{{.State.Running}}' "${name}" 2>/dev/null)" != true ]; then
    docker rm -f "${name}" >/dev/null 2>&1 || true
    disk="$(vm_disk)"
    docker run -d --name "${name}" --hostname "vm${i}" --network "${LAB_NET}" --ip "172.31.240.$((100 + i))" \
      --label infn-lab=1 "${VM_RUN_FLAGS[@]}" -v "$(disk_volume "${disk}")" "${VM_IMAGE}" >/dev/null
  fi
  for _ in $(seq 1 60); do
    docker exec "${name}" docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  docker exec "${name}" docker info >/dev/null 2>&1 || { docker logs "${name}" | tail -20 >&2; die "dockerd in ${name} did not start"; }
  prepare_vm "${name}"
}

# prepare_vm NAME: load the base image (the role builds the backup image on it) and the ofelia
# stand-in into the VM's engine, and seed the sample data. Also used by molecule's prepare step.
prepare_vm() {
  local name="$1" want have
  # loaded when missing or different (a rebuilt stand-in reaches VMs that were started before it)
  want="$(docker image inspect -f '{{.Id}}' "${LAB_BASE_IMAGE}" infn-lab/ofelia-standin:0.3.21)"
  have="$(docker exec "${name}" docker image inspect -f '{{.Id}}' "${LAB_BASE_IMAGE}" infn-lab/ofelia-standin:0.3.21 2>/dev/null || true)"
  if [ "${want}" != "${have}" ]; then
    docker save "${LAB_BASE_IMAGE}" infn-lab/ofelia-standin:0.3.21 | docker exec -i "${name}" docker load -q >/dev/null
  fi
  seed_data "${name}"
  ssh_access "${name}"
}

# ssh_access NAME: what cloud-init does for a real VM, and what its owner then checks on the console: the lab key
# authorized for the user ubuntu, and the VM's own host keys (made at its first boot) pinned in the lab's known_hosts
# under its address, read through docker exec (never trusted on first use). A VM started from an image without SSH
# (older than lab/images/vm's sshd) is left alone.
ssh_access() {
  local name="$1" ip keys=""
  if ! docker exec "${name}" id -u ubuntu >/dev/null 2>&1; then
    log "${name} has no user ubuntu (started from an older image): not reachable over SSH"
    return 0
  fi
  ensure_ssh_key
  docker exec -i "${name}" sh -c 'install -d -m 0700 -o ubuntu -g ubuntu /home/ubuntu/.ssh \
    && cat >/home/ubuntu/.ssh/authorized_keys && chown ubuntu:ubuntu /home/ubuntu/.ssh/authorized_keys \
    && chmod 0600 /home/ubuntu/.ssh/authorized_keys' <"${LAB_SSH}/id_ed25519.pub"
  for _ in $(seq 1 60); do
    keys="$(docker exec "${name}" sh -c 'cat /etc/ssh/ssh_host_*_key.pub' 2>/dev/null)" && [ -n "${keys}" ] && break
    sleep 0.5
  done
  [ -n "${keys}" ] || die "${name} has no SSH host keys"
  ip="$(docker inspect -f "{{(index .NetworkSettings.Networks \"${LAB_NET}\").IPAddress}}" "${name}")"
  # one writer at a time (VMs start in parallel); an address given again (a removed VM's) gets the new keys only
  (
    flock 9
    ssh-keygen -R "${ip}" -f "${LAB_SSH}/known_hosts" >/dev/null 2>&1 || true
    printf '%s\n' "${keys}" | awk -v ip="${ip}" 'NF >= 2 {print ip, $1, $2}' >>"${LAB_SSH}/known_hosts"
    rm -f "${LAB_SSH}/known_hosts.old"
    chmod 0644 "${LAB_SSH}/known_hosts"
  ) 9>"${LAB_SSH}/.lock"
}

# ensure_ssh_key: the lab's SSH key pair (.lab/ssh/id_ed25519, root's, 0600) and its known_hosts (0644: an
# unprivileged controller user reads it; it copies the key into its own directory).
ensure_ssh_key() {
  command -v ssh-keygen >/dev/null 2>&1 || { apt-get update -qq && apt-get install -y -qq openssh-client >/dev/null; }
  mkdir -p "${LAB_SSH}"
  chmod 0755 "${LAB_STATE}" "${LAB_SSH}"
  (
    flock 9
    [ -s "${LAB_SSH}/id_ed25519" ] || ssh-keygen -q -t ed25519 -N '' -C infn-lab -f "${LAB_SSH}/id_ed25519"
    touch "${LAB_SSH}/known_hosts"
    chmod 0644 "${LAB_SSH}/known_hosts"
  ) 9>"${LAB_SSH}/.lock"
}

# seed_data VM: the sample data the lab inventory backs up (a few sizes, one excluded pattern).
seed_data() {
  docker exec -i "$1" sh -s <<'SEED'
set -e
[ -d /srv/projects ] && exit 0
mkdir -p /srv/www/img /srv/projects/cache /srv/projects/src /home/alice
echo '<h1>lab</h1>' > /srv/www/index.html
head -c 300000 /dev/urandom > /srv/www/img/photo.jpg
for i in $(seq 1 20); do seq 1 $((i * 500)) > "/srv/projects/src/file$i.txt"; done
head -c 2000000 /dev/urandom > /srv/projects/blob.bin
echo scratch > /srv/projects/build.tmp
echo cached > /srv/projects/cache/entry
echo 'alice notes' > /home/alice/notes.txt
SEED
}

# extra_vm NAME [persistent] [with-image]: a fresh VM named NAME with a dynamic address, prepared like the others.
# persistent: its engine's state lives in a volume instead of tmpfs, so it survives a reboot
# (docker restart NAME), like a real VM's disk.
# with-image: the fleet's backup image (named by lab/fleet-image.yml in .lab/fleet-image) is in its engine already,
# when this machine's engine has it (a rollout built it here); else the VM starts without it and the rollout loads it.
extra_vm() {
  local name="$1" flags=("${VM_RUN_FLAGS[@]}") disk option persistent=0 image=""
  shift
  for option in "$@"; do
    case "${option}" in
      persistent) persistent=1 ;;
      with-image) image="$(cat "${LAB_STATE}/fleet-image" 2>/dev/null || true)" ;;
      *) die "extra-vm: unknown option '${option}' (persistent, with-image)" ;;
    esac
  done
  if [ -n "${image}" ] && ! image_exists "${image}"; then
    log "${image} is not on this engine yet: ${name} starts without it"
    image=""
  fi
  VM_IMAGE="$(build_image infn-lab/vm "${LAB_ROOT}/images/vm")"
  docker rm -f "${name}" >/dev/null 2>&1 || true
  if [ "${persistent}" = 1 ]; then
    docker volume rm -f "${name}-disk" >/dev/null 2>&1 || true
    flags=("${flags[@]/--tmpfs/-v}")
    flags=("${flags[@]/\/var\/lib\/docker:exec/${name}-disk:/var/lib/docker}")
  fi
  disk="$(vm_disk "${image}")"
  docker run -d --name "${name}" --hostname "${name}" --network "${LAB_NET}" --label infn-lab=1 \
    "${flags[@]}" -v "$(disk_volume "${disk}")" "${VM_IMAGE}" >/dev/null
  for _ in $(seq 1 60); do
    docker exec "${name}" docker info >/dev/null 2>&1 && break
    sleep 0.5
  done
  prepare_vm "${name}"
}

write_inventory() {
  local n="$1"
  mkdir -p "$(dirname "${LAB_INVENTORY}")"
  {
    echo "---"
    echo "# Written by lab/lab.sh up: the lab's simulated VMs (containers reached through the Docker connection)."
    echo "all:"
    echo "  children:"
    echo "    cloud_backup:"
    echo "      hosts:"
    for i in $(seq 1 "${n}"); do
      echo "        vm${i}: {ansible_host: infn-lab-vm${i}}"
    done
  } >"${LAB_INVENTORY}.tmp"
  mv "${LAB_INVENTORY}.tmp" "${LAB_INVENTORY}"
  write_ssh_inventory "${n}"
}

# The same VMs as a real fleet is reached: their addresses. How they are reached (SSH as ubuntu, become, the lab key,
# host keys pinned) is in inventories/lab-ssh/group_vars/cloud_backup.yml; the rest is the lab's (links).
write_ssh_inventory() {
  local n="$1" i hosts=()
  for i in $(seq 1 "${n}"); do
    if docker exec "infn-lab-vm${i}" id -u ubuntu >/dev/null 2>&1; then
      hosts+=("        vm${i}: {ansible_host: 172.31.240.$((100 + i))}")
    else
      hosts+=("        # vm${i}: started from an image without SSH (lab/lab.sh down, then up)")
    fi
  done
  mkdir -p "$(dirname "${LAB_SSH_INVENTORY}")"
  {
    echo "---"
    echo "# Written by lab/lab.sh up: the lab's VMs over SSH, as a real fleet (see README, real fleets):"
    echo "#   ansible-playbook -i inventories/lab-ssh infn_cloud.backup.site"
    echo "all:"
    echo "  children:"
    echo "    cloud_backup:"
    echo "      hosts:"
    printf '%s\n' "${hosts[@]}"
  } >"${LAB_SSH_INVENTORY}.tmp"
  mv "${LAB_SSH_INVENTORY}.tmp" "${LAB_SSH_INVENTORY}"
}

lab_up() {
  local n="${1:-3}"
  [[ "${n}" =~ ^[0-9]+$ ]] && [ "${n}" -ge 1 ] && [ "${n}" -le 10 ] || die "the number of VMs must be 1-10, not '${n}'"
  build_images
  ensure_network
  ensure_ssh_key  # once, before the VMs start in parallel (it may install the SSH client)
  start_s3
  start_healthchecks
  # VMs beyond N from an earlier, larger lab are removed.
  for i in $(seq $((n + 1)) 10); do docker rm -f "infn-lab-vm${i}" >/dev/null 2>&1 || true; done
  local pids=()
  for i in $(seq 1 "${n}"); do start_vm "${i}" & pids+=($!); done
  for pid in "${pids[@]}"; do wait "${pid}" || die "a VM failed to start"; done
  write_inventory "${n}"
  log "lab up: ${n} VM(s), S3 at http://${LAB_S3_IP}:5000 (host: http://127.0.0.1:${LAB_S3_PORT_LOCAL}), Healthchecks at http://127.0.0.1:${LAB_HC_PORT_LOCAL}; inventories ${LAB_INVENTORY} and ${LAB_SSH_INVENTORY} (SSH)"
}

lab_down() {
  docker info >/dev/null 2>&1 || return 0
  local ids
  ids="$(docker ps -aq --filter label=infn-lab=1)"
  [ -z "${ids}" ] || docker rm -f ${ids} >/dev/null
  docker network rm "${LAB_NET}" >/dev/null 2>&1 || true
  ids="$(docker volume ls -q | grep -E '^infn-lab-.*-disk$' || true)"
  [ -z "${ids}" ] || docker volume rm ${ids} >/dev/null
  rm -f "${LAB_INVENTORY}" "${LAB_SSH_INVENTORY}" "${LAB_SSH}/known_hosts"
  log "lab down"
}

case "${1:-}" in
  up) lab_up "${2:-3}" ;;
  images) build_images ;;
  prepare-vm) prepare_vm "${2:?usage: lab/lab.sh prepare-vm NAME}" ;;
  vm-volumes) vm_volumes ;;
  fleet-image) ansible-playbook "${LAB_ROOT}/fleet-image.yml" -e "lab_fleet_image_file=${LAB_STATE}/fleet-image" ;;
  extra-vm) shift; extra_vm "${1:?usage: lab/lab.sh extra-vm NAME [persistent] [with-image]}" "${@:2}" ;;
  down) lab_down ;;
  status) docker ps --filter label=infn-lab=1 --format 'table {{.Names}}\t{{.Status}}\t{{.Image}}' ;;
  *) echo "usage: lab/lab.sh up [N] | images | prepare-vm NAME | extra-vm NAME [persistent] [with-image] | vm-volumes | fleet-image | down | status" >&2; exit 2 ;;
esac
