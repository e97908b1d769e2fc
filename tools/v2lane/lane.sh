#!/usr/bin/env bash
# `make test-v2`: build the v2 lane's VM image once (cached, see build.sh),
# then boot it and run the tests listed in tests.txt (or V2LANE_TESTS,
# space-separated) inside it on a cgroup v2-only kernel (run.sh). Exit code:
# pytest's inside the VM, or non-zero when the build or the boot fails.
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
[[ $(id -u) -eq 0 ]] || { echo "v2lane: needs root" >&2; exit 1; }
need=()
command -v qemu-system-x86_64 >/dev/null || need+=(qemu-system-x86)
command -v debootstrap >/dev/null || need+=(debootstrap)
command -v mkfs.ext4 >/dev/null || need+=(e2fsprogs)
if ((${#need[@]})); then
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq && apt-get install -y -qq --no-install-recommends \
    "${need[@]}" >/dev/null || exit 1
fi
t0=$(date +%s)
img=$(bash "$here/build.sh" | tail -n1) || { echo "v2lane: image build failed" >&2; exit 1; }
[[ -f $img/done ]] || { echo "v2lane: image build failed" >&2; exit 1; }
echo "v2lane: image ready in $(( $(date +%s) - t0 )) s: $img"
if [[ -n ${V2LANE_TESTS:-} ]]; then
  read -r -a tests <<< "$V2LANE_TESTS"
else
  mapfile -t tests < <(grep -v '^\s*\(#\|$\)' "$here/tests.txt")
fi
bash "$here/run.sh" "$img" "${tests[@]}"
rc=$?
echo "v2lane: exit $rc after $(( $(date +%s) - t0 )) s in all"
exit $rc
