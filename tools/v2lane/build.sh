#!/usr/bin/env bash
# Build (once) the v2 lane's VM: a Debian bookworm root made by debootstrap
# natively in a chroot on the host, with Debian's kernel (linux-image-amd64,
# whose initrd initramfs-tools makes in the chroot) and pyct's venv, packed
# into an ext4 image with mkfs.ext4 -d (no loop mount). The result is cached
# under $V2LANE_CACHE/<hash of the inputs>/ and reused while the inputs (this
# file, the package list, the requirements) are unchanged. Prints the cache
# directory on its last line.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
tree=$(cd "$here/../.." && pwd)
cache=${V2LANE_CACHE:-/var/cache/pyct-test}
mirror=${V2LANE_MIRROR:-http://deb.debian.org/debian}
# what pyct's real-kernel tests call on a host (gcc: the escape suite's
# static probe), plus the kernel and python
packages=python3,python3-venv,busybox-static,lxcfs,linux-image-amd64,initramfs-tools,kmod,iproute2,e2fsprogs,mount,util-linux,procps,iptables,nftables,openssh-client,ca-certificates,gcc,libc6-dev

# Bump when a change here changes what the image holds: the cache key is
# this, the package list, guest-init and the requirements (not this file's
# text, so fixing the build's plumbing keeps the cached image).
recipe=1
key=$( { echo "$recipe $packages"; cat "$here/guest-init" \
         "$tree/requirements.txt" "$tree/test-requirements.txt"; } \
       | sha256sum | cut -c1-16)
out=$cache/v2lane-$key
if [[ -f $out/done ]]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
# one build at a time on a machine; a second lane waits, then reuses it
exec 9>"$cache/v2lane.lock"
flock 9
if [[ -f $out/done ]]; then echo "$out"; exit 0; fi
# what a build killed without its trap (power loss, SIGKILL) left
for stale in "$cache"/build-*; do
  [[ -d $stale ]] || continue
  grep -q " $stale/" /proc/mounts || rm -rf --one-file-system "$stale"
done
work=$(mktemp -d "$cache/build-$key.XXXXXX")
root=$work/root
bgpid=""
cleanup() {
  local m
  # a build stopped half-way: end its debootstrap/chroot (its own process
  # group, by id) before unmounting what they mounted below $work and removing it
  [[ -n $bgpid ]] && kill -KILL -- "-$bgpid" 2>/dev/null && wait 2>/dev/null
  for m in $(awk -v w="$work/" 'index($2, w) == 1 {print $2}' /proc/mounts \
             | sort -r); do
    umount -l "$m" 2>/dev/null || true
  done
  rm -rf --one-file-system "$work"
}
trap cleanup EXIT
trap 'exit 130' INT TERM
# long steps run in a session of their own, waited for in the background,
# so that a signal reaches the trap at once (bash defers traps while a
# foreground job runs) and the trap can end the whole step by its group id
bg() { setsid "$@" & bgpid=$!; wait $bgpid; local rc=$?; bgpid=""; return $rc; }
start=$(date +%s)
echo "v2lane: building $out (debootstrap bookworm, kernel, venv)" >&2
bg debootstrap --variant=minbase --include="$packages" bookworm "$root" "$mirror" \
  > "$work/debootstrap.log" 2>&1 || { tail -30 "$work/debootstrap.log" >&2; exit 1; }
echo "v2lane: debootstrap done in $(( $(date +%s) - start )) s" >&2

cp /etc/resolv.conf "$root/etc/resolv.conf"
mount -t proc proc "$root/proc"
chroot "$root" python3 -m venv /opt/pyct-venv
cp "$tree/requirements.txt" "$tree/test-requirements.txt" "$root/tmp/"
# the host's CA bundle (it may trust a proxy's CA) for pip, only while
# building: it is removed from the image below
ca=${PIP_CERT:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}
cp "$ca" "$root/tmp/host-ca.crt"
# (requests lets REQUESTS_CA_BUNDLE/CURL_CA_BUNDLE override pip's --cert)
bg env -u PIP_FIND_LINKS PIP_CERT=/tmp/host-ca.crt \
  SSL_CERT_FILE=/tmp/host-ca.crt REQUESTS_CA_BUNDLE=/tmp/host-ca.crt \
  CURL_CA_BUNDLE=/tmp/host-ca.crt chroot "$root" \
  /opt/pyct-venv/bin/pip install -q --no-cache-dir \
  -r /tmp/requirements.txt -r /tmp/test-requirements.txt >&2
umount "$root/proc"
echo "v2lane: venv done at $(( $(date +%s) - start )) s" >&2

# the VM's fixed start: mounts, then the lane's per-run script from the tree
install -m 0755 "$here/guest-init" "$root/sbin/v2lane-init"
echo "v2lane" > "$root/etc/hostname"
printf '/dev/vda / ext4 rw 0 1\n' > "$root/etc/fstab"
rm -f "$root/etc/resolv.conf" "$root"/tmp/*.txt "$root/tmp/host-ca.crt"
rm -rf "$root"/var/cache/apt/archives/*.deb "$root"/var/lib/apt/lists/*

mkdir -p "$work/out"
cp "$root"/boot/vmlinuz-* "$work/out/vmlinuz"
cp "$root"/boot/initrd.img-* "$work/out/initrd.img"
mb=$(( $(du -sm "$root" | cut -f1) + 1024 ))
mkfs.ext4 -q -F -L v2lane -d "$root" "$work/out/root.ext4" "${mb}M" >&2
touch "$work/out/done"
rm -rf "$out"; mv "$work/out" "$out"
# older images (other inputs) are not used again: only the current one stays
for old in "$cache"/v2lane-*; do
  [[ $old == "$out" ]] || rm -rf "$old"
done
echo "v2lane: built in $(( $(date +%s) - start )) s" >&2
echo "$out"
