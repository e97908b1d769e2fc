#!/usr/bin/env bash
# Print "kvm" when a KVM guest really runs here, else "tcg". /dev/kvm can
# exist and still hang a nested guest, so the probe boots the lane's kernel
# with no root (it panics and, with panic=1 and -no-reboot, QEMU exits) and
# gives it a few seconds; a hung probe is killed by its pid.
kernel=$1
[[ -w /dev/kvm ]] || { echo tcg; exit 0; }
out=$(mktemp /tmp/pyct-v2lane-probe.XXXXXX)
( exec qemu-system-x86_64 -accel kvm -cpu host -m 256 -nodefaults \
  -display none -no-reboot -serial "file:$out" -kernel "$kernel" \
  -append "console=ttyS0 panic=1 root=/dev/nonexistent" ) >/dev/null 2>&1 &
pid=$!
for _ in $(seq 1 ${V2LANE_KVM_PROBE_S:-15}); do
  kill -0 "$pid" 2>/dev/null || break
  sleep 1
done
if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; wait "$pid" 2>/dev/null; fi
wait "$pid" 2>/dev/null
if grep -q "Kernel panic" "$out"; then echo kvm; else echo tcg; fi
rm -f "$out"
