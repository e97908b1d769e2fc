#!/bin/sh
# Inside the v2 lane's VM (started by the image's /sbin/v2lane-init with the
# tree on /src, read-only): copy the tree to tmpfs (3-4 MB: faster than
# importing over 9p, and tests may write next to it), run the selected
# tests with the image's venv, and report pytest's exit code on the serial
# console as V2LANE-EXIT=<rc>, the line the host turns into its own result.
# The host passes the pytest arguments, one a line, in the results share
# (9p, read-write), where the junit XML goes back.
export PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8
# as systemd mounts it on a v2 host: a cgroup namespace's root is a
# delegation boundary (a guest cannot write its own group's limits)
mount -o remount,nsdelegate,memory_recursiveprot /sys/fs/cgroup
echo "V2LANE-BOOTED kernel=$(uname -r) controllers=$(cat /sys/fs/cgroup/cgroup.controllers | tr ' ' ,) $(grep cgroup2 /proc/mounts)"
# scratch space for guests' disks and images: the per-run disk the host
# made (ext4, sparse, deleted after the run); tmpfs would take the RAM
mount -t ext4 -o nodiscard /dev/vdb /tmp || echo "v2lane: no scratch disk"
chmod 1777 /tmp
modprobe loop
echo "V2LANE-READY after $(cut -d' ' -f1 /proc/uptime) s"
mkdir -p /tmp/src
(cd /src && tar --exclude=./.git --exclude=./.venv --exclude=./state -cf - .) \
  | tar -C /tmp/src -xf -
mkdir -p /results
mount -t 9p -o trans=virtio,version=9p2000.L results /results || {
  echo "V2LANE-EXIT=96 (no results share)"; exit 0; }
cd /tmp/src
# the host-wide pools a pyct host raises (tools/ensure-host.sh does it on
# the CI host; the escape suite checks them)
sysctl -q -p etc/sysctl.d/60-pyct.conf
export PYTHONPATH=/tmp/src PYCT_V2LANE=1 PYTHONDONTWRITEBYTECODE=1
export PATH=/opt/pyct-venv/bin:$PATH
# the host's cached Debian guest image, when run.sh shared it: the Debian
# guest tests import it instead of running debootstrap (minutes under TCG)
mkdir -p /images
if mount -t 9p -o trans=virtio,version=9p2000.L,ro images /images 2>/dev/null; then
  tar=$(python -c 'from pyct_driver.virt.rootfs import debian
print(debian.cached_path(cache_dir="/images"))')
  [ -f "$tar" ] && export PYCT_TEST_DEBIAN_TAR=$tar
fi
echo "v2lane: Debian guest image: ${PYCT_TEST_DEBIAN_TAR:-none}"
set --
while IFS= read -r arg; do set -- "$@" "$arg"; done < /results/tests
python -m pytest -q -rfE --color=no --durations=8 -p no:cacheprovider --junitxml=/tmp/junit.xml "$@" \
  < /dev/null
rc=$?
cp /tmp/junit.xml /results/junit.xml 2>/dev/null
umount /results
umount /images 2>/dev/null
echo "V2LANE-EXIT=$rc"
