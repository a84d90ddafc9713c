# bash: fed to `bash -s -- SAMPLE SNAPSHOT_ID...` inside the backup container by the role's drill entry point (tasks/drill.yml).
# restore-drill SAMPLE SNAPSHOT_ID...: the restore drill, run inside the backup container (as its user,
# with the container's repository settings). For each snapshot: pick SAMPLE random files from its listing,
# restore them into a scratch directory with `restic restore --verify`, then compare the SHA-256 and size
# of every restored file with the snapshot's own content (`restic dump`). Prints one JSON line; exit 0
# only when every sampled file of every snapshot was restored and matched. The scratch directory is
# removed in every case.
set -uo pipefail
sample="${1:?usage: restore-drill SAMPLE SNAPSHOT_ID...}"
shift
scratch="$(mktemp -d /tmp/cloud-backup-drill.XXXXXX)"
trap 'rm -rf "${scratch}"' EXIT
files=0
bytes=0
errors=()

err() { errors+=("$1"); }

for id in "$@"; do
  short="${id:0:8}"
  if ! restic ls --json "${id}" >"${scratch}/ls" 2>"${scratch}/err"; then
    err "snapshot ${short}: restic ls failed: $(tail -c 300 "${scratch}/err" | tr '\n' ' ')"
    continue
  fi
  # path<TAB>size of sampled regular files (names with a tab or line break are left out of the sample).
  jq -r 'select(.struct_type == "node" and .type == "file") | select(.path | test("[\t\n]") | not)
         | [.path, (.size // 0 | tostring)] | @tsv' "${scratch}/ls" | shuf -n "${sample}" >"${scratch}/sample"
  if [ ! -s "${scratch}/sample" ]; then
    err "snapshot ${short}: no file to sample"
    continue
  fi
  # restic include patterns are globs: escape \ * ? [ so that each names exactly one file.
  cut -f1 "${scratch}/sample" | sed -e 's/[][\\*?]/\\&/g' >"${scratch}/include"
  target="${scratch}/restore-${id}"
  if ! restic restore "${id}" --target "${target}" --include-file "${scratch}/include" --verify \
      >"${scratch}/restore.out" 2>"${scratch}/err"; then
    err "snapshot ${short}: restic restore --verify failed: $(grep -v '^ignoring error' "${scratch}/err" | head -c 400 | tr '\n' ' ')"
    continue
  fi
  while IFS=$'\t' read -r path size; do
    restored="${target}${path}"
    if [ ! -f "${restored}" ]; then
      err "snapshot ${short}: ${path} was not restored"
      continue
    fi
    got_size="$(stat -c %s "${restored}")"
    if [ "${got_size}" != "${size}" ]; then
      err "snapshot ${short}: ${path}: size ${got_size}, snapshot says ${size}"
      continue
    fi
    want="$(restic dump "${id}" "${path}" 2>"${scratch}/err" | sha256sum | cut -d' ' -f1)"
    if [ "${PIPESTATUS[0]}" != 0 ]; then
      err "snapshot ${short}: restic dump ${path} failed: $(tail -c 300 "${scratch}/err" | tr '\n' ' ')"
      continue
    fi
    got="$(sha256sum "${restored}" | cut -d' ' -f1)"
    if [ "${got}" != "${want}" ]; then
      err "snapshot ${short}: ${path}: restored SHA-256 ${got} differs from the snapshot's ${want}"
      continue
    fi
    files=$((files + 1))
    bytes=$((bytes + size))
  done <"${scratch}/sample"
done

passed=false
[ "${#errors[@]}" -eq 0 ] && [ "${files}" -gt 0 ] && passed=true
[ "${files}" -gt 0 ] || [ "${#errors[@]}" -gt 0 ] || err "nothing was checked"
jq -cn --argjson passed "${passed}" --argjson files "${files}" --argjson bytes "${bytes}" \
  '{passed: $passed, files: $files, bytes: $bytes, snapshots: $ARGS.positional[0:1][0] | split(" "),
    errors: $ARGS.positional[1:]}' --args "$*" "${errors[@]}"
[ "${passed}" = true ]
