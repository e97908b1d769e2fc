"""Flavor limits on real busybox guests on a cgroup v2 kernel (the v2 lane).

The counterpart of tests/privileged/test_container_limits.py's file checks
and OOM test, read from v2's files, plus what only v2 has: the guest's
cgroup namespace view of a cgroup2 mount (its own group as ``/``, the
flavor's limit files there but not writable by guest root, sub-groups
allowed), and freeze/thaw through ``cgroup.freeze`` seen from the driver.
"""

from __future__ import annotations

import os

from pyct_driver import states
from pyct_driver.virt.cgroups import v2
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, flavor, guest_exec, guests, init_pid, read_group)

_MiB = 1 << 20


def _root_device(drv, uuid: str) -> str:
    dev = os.stat(os.path.join(drv.roots.base_dir, "instances", uuid,
                               "disk")).st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def test_driver_uses_the_v2_backend(driver):
    assert isinstance(driver.cgroups, v2.V2Backend)


def test_limit_files_follow_the_flavor(driver, guests):
    fl = flavor(vcpus=2, memory_mb=192, root_gb=1, **{
        "quota:disk_write_bytes_sec": str(3 * _MiB),
        "quota:disk_read_iops_sec": "500", "pyct:pids_max": "100"})
    spec = guests.boot(fl)
    uuid = spec.uuid

    def f(name):
        return read_group(driver, "", uuid, name)
    assert f("memory.max") == str(192 * _MiB)
    assert f("memory.swap.max") == "0"
    assert f("cpu.weight") == str(v2.shares_to_weight(2048))
    assert f("cpu.max") == "200000 100000"
    assert f("pids.max") == "100"
    dev = _root_device(driver, uuid)
    assert dev.startswith("7:")  # the guest's root: a loop device
    assert f("io.max") == f"{dev} rbps=max wbps={3 * _MiB} riops=500 wiops=max"
    assert init_pid(driver, uuid) in [
        int(p) for p in f("cgroup.procs").split()]


def test_memory_hog_is_oom_killed_inside_the_guest_only(driver, guests):
    spec = guests.boot(flavor(memory_mb=64))
    pid = init_pid(driver, spec.uuid)
    result = guest_exec(driver, spec.uuid,
                        ["/bin/dd", "if=/dev/zero", "of=/dev/null",
                         "bs=256M", "count=1"], check=False)
    assert result.returncode in (-9, 137), (result.returncode, result.stderr)
    events = dict(line.split() for line in read_group(
        driver, "", spec.uuid, "memory.events").splitlines())
    assert int(events["oom_kill"]) >= 1
    assert driver.get_info(spec).power_state == states.RUNNING
    assert init_pid(driver, spec.uuid) == pid
    assert guest_exec(driver, spec.uuid, ["/bin/echo", "alive"]).stdout \
        == "alive\n"


def test_guest_sees_its_own_group_as_the_cgroup_root(driver, guests):
    spec = guests.boot(flavor(memory_mb=128))
    sh = ["/bin/sh", "-c"]
    out = guest_exec(driver, spec.uuid, sh + ["cat /proc/self/cgroup"]).stdout
    assert out.strip().startswith("0::/"), out
    assert driver.cgroups.parent not in out and spec.uuid not in out
    # the guest's cgroup2 mount: its own group's files, host groups absent
    mem = guest_exec(driver, spec.uuid,
                     sh + ["cat /sys/fs/cgroup/memory.max"], check=False)
    top = guest_exec(driver, spec.uuid,
                     sh + ["ls /sys/fs/cgroup"]).stdout.split()
    assert driver.cgroups.parent not in top
    if mem.returncode == 0:  # busybox's init mounts it; exec may not
        assert mem.stdout.strip() == str(128 * _MiB)
    # guest root cannot raise its own limit through any view of it
    raise_ = guest_exec(driver, spec.uuid, sh + [
        "echo max > /sys/fs/cgroup/memory.max"], check=False)
    assert raise_.returncode != 0
    assert read_group(driver, "", spec.uuid, "memory.max") == \
        str(128 * _MiB)


def test_freeze_and_thaw_through_cgroup_freeze(driver, guests):
    spec = guests.boot(flavor())
    driver.cgroups.freeze(spec.uuid)
    assert read_group(driver, "", spec.uuid, "cgroup.freeze") == "1"
    assert "frozen 1" in read_group(driver, "", spec.uuid, "cgroup.events")
    driver.cgroups.thaw(spec.uuid)
    assert "frozen 0" in read_group(driver, "", spec.uuid, "cgroup.events")
    assert guest_exec(driver, spec.uuid, ["/bin/echo", "up"]).stdout == "up\n"
