"""Masks and read-only paths hold in every guest, and the privileged mode
is not host root.

An adversarial review found that a guest on a ``pyct:privileged`` flavor
could ``mount -o remount,bind,rw /proc/sys`` and write the host's
``core_pattern`` (a ``|program`` there runs as host root), and mknod the
host's console; and that guest root in an unprivileged guest could unmount
its masks (they were made inside its own user namespace). Here a guest of
each kind runs the attempts as real guest processes (the escape agent:
children of the guest's init, seccomp filter and all), and the host's
canaries (core_pattern and the other sysctls, cgroup limits, mounts...)
must be unchanged. Also: a host-root guest (``pyct:host_root``) is refused
by a driver whose operator did not allow it, leaving nothing behind.
"""

from __future__ import annotations

import glob
import os
import shutil

import pytest

from pyct_driver import exception
from pyct_driver.virt.process.guestinit import caps
from tests.privileged import escape_fixtures as ef
from tests.privileged.escape_fixtures import (  # noqa: F401 - fixtures
    escape_image, probe_binary)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    Guests, busybox_image, cgroup_dirs, driver, flavor, init_pid, make_spec)
from tests.privileged.test_escape_guest import _TRY, _flags

# Each line tries to undo a mask or a read-only path, or to use a
# capability the privileged mode must not have; "p" skips what the kernel
# lacks. Writes of sysctls put back their current value.
LOCK_SCRIPT = r"""
p umount_kcore /proc/kcore 'umount /proc/kcore'
p umount_timer_list /proc/timer_list 'umount /proc/timer_list'
p umount_keys /proc/keys 'umount /proc/keys'
p umount_scsi /proc/scsi 'umount /proc/scsi'
t umount_proc_sys 'umount /proc/sys'
t umount_proc_sys_lazy 'umount -l /proc/sys && [ -w /proc/sys/kernel/core_pattern ]'
t remount_proc_sys_rw 'mount -o remount,bind,rw /proc/sys'
t core_pattern 'mount -o remount,bind,rw /proc/sys; v=$(cat /proc/sys/kernel/core_pattern) && echo "$v" > /proc/sys/kernel/core_pattern'
p remount_sysrq_rw /proc/sysrq-trigger 'mount -o remount,bind,rw /proc/sysrq-trigger'
t remount_sys_rw 'mount -o remount,rw /sys'
t remount_sys_bind_rw 'mount -o remount,bind,rw /sys'
p umount_sys_firmware /sys/firmware 'umount /sys/firmware'
t umount_devpts 'umount /dev/pts'
t remount_devpts_max 'mount -o remount,max=1048576 /dev/pts'
p remount_cgroup_rw /sys/fs/cgroup/memory 'mount -o remount,bind,rw /sys/fs/cgroup/memory'
t remount_cgroupfs_rw 'mount -o remount,bind,rw /sys/fs/cgroup'
t raise_own_memory_max 'echo max > /sys/fs/cgroup/memory.max'
t raise_own_pids_max 'echo max > /sys/fs/cgroup/pids.max'
t raise_own_cpu_max 'echo max > /sys/fs/cgroup/cpu.max'
t mknod_console 'mknod /tmp/pyct-console c 5 1 && echo x > /tmp/pyct-console'
t mknod_dev_console 'rm -f /dev/pyct-c && mknod /dev/pyct-c c 5 1 && echo x > /dev/pyct-c'
t new_proc_mount 'mkdir -p /tmp/pyct-proc && mount -t proc proc /tmp/pyct-proc && [ -e /tmp/pyct-proc/kcore -o -e /tmp/pyct-proc/sysrq-trigger ]'
echo "CAPEFF $(grep CapEff /proc/self/status | cut -f2)"
echo "UIDMAP $(head -1 /proc/self/uid_map | tr -s ' ' | sed 's/^ //')"
"""
# What the guest may still do with its own mounts (a VM's root can)
OWN_SCRIPT = r"""
t own_tmpfs 'mkdir -p /tmp/pyct-own && mount -t tmpfs own /tmp/pyct-own && umount /tmp/pyct-own'
"""

MUST_FAIL = ("umount_kcore", "umount_timer_list", "umount_keys",
             "umount_scsi", "umount_proc_sys", "umount_proc_sys_lazy",
             "remount_proc_sys_rw", "core_pattern", "remount_sysrq_rw",
             "remount_sys_rw", "remount_sys_bind_rw", "umount_sys_firmware",
             "umount_devpts", "remount_devpts_max", "remount_cgroup_rw",
             "mknod_console", "mknod_dev_console", "new_proc_mount",
             "raise_own_memory_max", "raise_own_pids_max",
             "raise_own_cpu_max")
# On v1 the guest's cgroup tree is a read-only tmpfs of read-only mounts.
# On v2 (the v2 lane) its cgroup2 mount is writable by design -- systemd
# makes its sub-groups there -- and what bounds it is the namespace root's
# delegation boundary (nsdelegate): the raise_own_* lines above.
if not os.path.exists("/sys/fs/cgroup/cgroup.subtree_control"):
    MUST_FAIL += ("remount_cgroupfs_rw",)


def _capeff(text: str) -> int:
    for line in text.splitlines():
        if line.startswith("CAPEFF "):
            return int(line.split()[1], 16)
    raise AssertionError(text)


@pytest.fixture(scope="module")
def modes(driver, busybox_image, escape_image, probe_binary):
    """Boot an unprivileged and a privileged agent guest, run the
    attempts in each; return their outputs and the host's changes."""
    can = ef.Canaries([os.path.join("*", driver.cgroups.parent)])
    guests_ = Guests(driver)
    out: dict = {}
    try:
        unpriv = ef.boot_agent(guests_)
        priv = ef.boot_agent(guests_, flavor(**{"pyct:privileged": "true"}))
        can.take()
        for name, spec in (("unprivileged", unpriv), ("privileged", priv)):
            out[name] = ef.agent_run(driver, spec.uuid,
                                     _TRY + LOCK_SCRIPT + OWN_SCRIPT)
    finally:
        guests_.close()
        out["host_changes"] = can.changes() if can.before else \
            ["no snapshot taken: the guests did not boot"]
        shutil.rmtree(can.dir, ignore_errors=True)
    yield out


@pytest.mark.parametrize("mode", ["unprivileged", "privileged"])
@pytest.mark.parametrize("item", MUST_FAIL)
def test_masks_and_read_only_paths_cannot_be_undone(modes, mode, item):
    flags = _flags(modes[mode])
    assert flags.get(item) in ("denied", "absent"), (item, modes[mode])
    assert not modes["host_changes"], modes["host_changes"]


def test_unprivileged_guest_still_mounts_its_own(modes):
    assert _flags(modes["unprivileged"])["own_tmpfs"] == "ALLOWED", \
        modes["unprivileged"]


def test_privileged_guest_has_dockers_capabilities_only(modes):
    text = modes["privileged"]
    assert _capeff(text) == caps.mask(caps.DOCKER_DEFAULT), text
    assert "UIDMAP 0 0 4294967295" in text  # no user namespace: host ids
    # no CAP_SYS_ADMIN: not even a tmpfs of its own
    assert _flags(text)["own_tmpfs"] == "denied", text
    assert not modes["host_changes"], modes["host_changes"]


def test_host_root_guest_refused_unless_allowed(driver, busybox_image):
    assert driver.guest_limits.allow_host_root is False
    spec = make_spec(flavor(**{"pyct:host_root": "true"}))
    assert spec.host_root and spec.privileged and spec.id_range is None
    with pytest.raises(exception.VirtError, match="allow_host_root_guests"):
        driver.spawn(spec)
    assert spec.uuid not in driver.list_instances()
    assert cgroup_dirs(driver, spec.uuid) == []
    assert not glob.glob(os.path.join(driver.roots.base_dir, "instances",
                                      spec.uuid))
    assert not os.path.exists(driver.records.dir(spec.uuid))
