#!/usr/bin/env bash
# Boot the v2 lane's VM (built by build.sh) once and run the selected
# tests inside it: Debian's kernel with the unified cgroup hierarchy only
# (cgroup_no_v1=all), 2 vCPUs, 4 GiB, KVM when a short probe shows it works
# and TCG otherwise. The root image is opened with snapshot=on (writes go to
# a temporary file QEMU deletes), the tree is shared read-only over 9p and
# the serial console is the only output. A hard timeout kills QEMU by its
# pid. Exit code: pytest's inside the VM; 97 when the VM gave no result
# (did not boot, hung, timed out).
set -uo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "$here/../.." && pwd)
img=$1; shift
timeout_s=${V2LANE_TIMEOUT:-1200}
tmp=$(mktemp -d /tmp/pyct-v2lane.XXXXXX)
qpid=""
cleanup() {
  if [[ -n $qpid ]] && kill -0 "$qpid" 2>/dev/null; then
    kill -KILL "$qpid" 2>/dev/null; wait "$qpid" 2>/dev/null
  fi
  rm -rf "$tmp"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

accel=${V2LANE_ACCEL:-}
if [[ -z $accel ]]; then
  accel=$(bash "$here/probe-kvm.sh" "$img/vmlinuz" 2>/dev/null)
fi
cpu=max; [[ $accel == kvm ]] && cpu=host
[[ $accel == tcg ]] && accel=tcg,thread=multi
mkdir "$tmp/results"
printf '%s\n' "$@" > "$tmp/results/tests"
log=$tmp/serial.log
truncate -s "${V2LANE_SCRATCH:-16G}" "$tmp/scratch.img"
mkfs.ext4 -q -F -E nodiscard "$tmp/scratch.img"
# the host's cached Debian guest image (pyct_driver/virt/rootfs/debian.py),
# read-only: debootstrap under TCG would take many minutes in the VM
images=${V2LANE_IMAGES:-/var/cache/pyct/images}
extra=()
[[ -d $images ]] && extra+=(-virtfs "local,path=$images,mount_tag=images,security_model=none,readonly=on")
start=$(date +%s)
echo "v2lane: booting $(basename "$img") with ${accel%%,*} (timeout ${timeout_s} s): $*"
qemu-system-x86_64 -name pyct-v2lane -machine q35 -accel "$accel" -cpu "$cpu" \
  -smp 2 -m "${V2LANE_MEM:-4096}" -nodefaults -display none -no-reboot \
  -chardev "file,id=ser,path=$log" -serial chardev:ser \
  -kernel "$img/vmlinuz" -initrd "$img/initrd.img" \
  -append "console=ttyS0 root=/dev/vda rw init=/sbin/v2lane-init quiet loglevel=3 panic=-1 cgroup_no_v1=all systemd.unified_cgroup_hierarchy=1" \
  -drive "file=$img/root.ext4,format=raw,if=virtio,snapshot=on,cache=unsafe" \
  -drive "file=$tmp/scratch.img,format=raw,if=virtio,cache=unsafe" \
  -virtfs "local,path=$tree,mount_tag=src,security_model=none,readonly=on" \
  -virtfs "local,path=$tmp/results,mount_tag=results,security_model=none" \
  "${extra[@]}" -device virtio-rng-pci &
qpid=$!
: > "$log"
tail -n +1 -f --pid="$qpid" "$log" &
deadline=$(( start + timeout_s ))
while kill -0 "$qpid" 2>/dev/null; do
  if (( $(date +%s) > deadline )); then
    echo "v2lane: timeout after ${timeout_s} s, killing QEMU (pid $qpid)"
    kill -KILL "$qpid"; break
  fi
  sleep 1
done
wait "$qpid" 2>/dev/null; qpid=""
sleep 0.3
echo "v2lane: VM ran $(( $(date +%s) - start )) s"
[[ -n ${V2LANE_JUNIT:-} && -f $tmp/results/junit.xml ]] && cp "$tmp/results/junit.xml" "$V2LANE_JUNIT"
rc=$(sed -n 's/^V2LANE-EXIT=\([0-9]*\).*/\1/p' "$log" | tail -n1)
if ! grep -q '^V2LANE-BOOTED' "$log"; then
  echo "v2lane: FAILED: the VM did not boot to the lane's script" >&2; exit 97
fi
if [[ -z $rc ]]; then
  echo "v2lane: FAILED: no result from the VM (hung or crashed)" >&2; exit 97
fi
exit "$rc"
