"""The container driver's resize on a real guest: ``apply_flavor`` changes
the running guest's cgroup limits in place (its init keeps its pid, no
restart), grows its root disk online (the guest's ``df`` sees it), and
applying the old flavor again restores the old limits exactly."""

from __future__ import annotations

import dataclasses
import os

from pyct_driver.virt.cgroups.v2 import V2Backend
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    CGROUP_ROOT, busybox_image, driver, flavor, guest_exec, guests,
    init_pid)


def _has_cap_sys_resource() -> bool:
    with open("/proc/self/status") as f:
        eff = next(line for line in f if line.startswith("CapEff:"))
    return bool(int(eff.split()[1], 16) & (1 << 24))


# growing a mounted ext4 needs CAP_SYS_RESOURCE (a container may lack it)
ONLINE_GROW = _has_cap_sys_resource()


def limits(drv, uuid: str) -> dict:
    """Memory, CPU and pids limits as the kernel has them."""
    if isinstance(drv.cgroups, V2Backend):
        path = os.path.join(CGROUP_ROOT, drv.cgroups.parent, uuid)
        names = {"mem": "memory.max", "cpu": "cpu.max",
                 "weight": "cpu.weight", "pids": "pids.max"}
        return {k: open(os.path.join(path, v)).read().strip()
                for k, v in names.items()}
    names = {"mem": ("memory", "memory.limit_in_bytes"),
             "cpu": ("cpu", "cpu.cfs_quota_us"),
             "weight": ("cpu", "cpu.shares"), "pids": ("pids", "pids.max")}
    return {k: open(os.path.join(CGROUP_ROOT, c, drv.cgroups.parent, uuid,
                                 f)).read().strip()
            for k, (c, f) in names.items()}


def root_kib(drv, uuid: str) -> int:
    out = guest_exec(drv, uuid, ["df", "-k", "/"]).stdout.splitlines()
    return int(out[-1].split()[1])


def test_resize_in_place_and_back(driver, guests):
    small = flavor(vcpus=1, memory_mb=128, root_gb=1)
    big = flavor(vcpus=2, memory_mb=256, root_gb=2,
                 **{"quota:cpu_shares": "3000"})
    spec = guests.boot(small)
    before, pid = limits(driver, spec.uuid), init_pid(driver, spec.uuid)
    size = root_kib(driver, spec.uuid)
    assert size < 1024 * 1024
    guest_exec(driver, spec.uuid, ["sh", "-c", "echo kept > /data"])

    driver.apply_flavor(spec, big)
    after = limits(driver, spec.uuid)
    assert after != before
    assert int(after["mem"]) == 256 << 20
    assert after["weight"] != before["weight"]
    assert after["cpu"] != before["cpu"]
    assert init_pid(driver, spec.uuid) == pid
    assert os.path.exists(f"/proc/{pid}")
    grown = root_kib(driver, spec.uuid)
    if ONLINE_GROW:
        assert grown > 1.9 * size, (size, grown)  # ext4 grew online
        # the guest can use the new space
        guest_exec(driver, spec.uuid, [
            "dd", "if=/dev/zero", "of=/big", "bs=1M", "count=1100"])
        guest_exec(driver, spec.uuid, ["rm", "/big"])
    else:  # deferred to the next start (no CAP_SYS_RESOURCE here)
        assert grown == size

    driver.apply_flavor(spec, small)  # revert: old limits, disk stays
    assert limits(driver, spec.uuid) == before
    assert init_pid(driver, spec.uuid) == pid
    assert root_kib(driver, spec.uuid) == grown
    assert guest_exec(driver, spec.uuid, ["cat", "/data"]).stdout == "kept\n"
    if not ONLINE_GROW:
        driver.power_off(spec, 0)
        driver.power_on(spec)
        assert root_kib(driver, spec.uuid) > 1.9 * size
        assert guest_exec(driver, spec.uuid, ["cat", "/data"]).stdout == \
            "kept\n"


def test_stopped_guest_grows_offline_and_starts_with_new_limits(
        driver, guests):
    spec = guests.boot(flavor(vcpus=1, memory_mb=128, root_gb=1))
    size = root_kib(driver, spec.uuid)
    driver.power_off(spec, 0)
    big = flavor(vcpus=1, memory_mb=192, root_gb=2)
    driver.apply_flavor(spec, big)

    resized = dataclasses.replace(spec, flavor=big)
    driver.power_on(resized)
    assert int(limits(driver, spec.uuid)["mem"]) == 192 << 20
    assert root_kib(driver, spec.uuid) > 1.9 * size
