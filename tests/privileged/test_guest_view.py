"""Inside a busybox guest, the usual tools report its flavor, and its
mount table names no host path and no other guest.

The views come from the host's one lxcfs (``process.caller.viewservice``) bound
over the guest's /proc and /sys files; the CPU count from the guest's
cpuset (``cgroups.cpuset``). Killing the service (SIGKILL, as a crash)
must not break a running guest: the driver's watcher starts a new one and
stacks its files on the guest's views within its interval.
"""

from __future__ import annotations

import errno
import os
import re
import signal
import time

from pyct_driver.virt.rootfs import overlay
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, flavor, guest_exec, guests, read_group)
from tests.waiting import wait_for


def _sh(drv, uuid: str, script: str) -> str:
    return guest_exec(drv, uuid, ["/bin/sh", "-c", script]).stdout


def _free_total_mb(drv, uuid: str, free: bool = False) -> int:
    """``free -m``'s total (procps reads /proc/meminfo); busybox's free
    asks sysinfo(2), a system call no file view can change (README), so
    for busybox the test reads MemTotal as procps would."""
    if not free:
        kb = _sh(drv, uuid, "grep ^MemTotal: /proc/meminfo").split()[1]
        return int(kb) // 1024
    for line in _sh(drv, uuid, "free -m").splitlines():
        if line.startswith("Mem:"):
            return int(line.split()[1])
    raise AssertionError("free -m printed no Mem: line")


def check_flavor_view(drv, spec, age: float, free: bool = False) -> None:
    """What a tenant runs first, against the flavor of ``spec``."""
    uuid, fl = spec.uuid, spec.flavor
    total = _free_total_mb(drv, uuid, free)
    assert abs(total - fl.memory_mb) <= fl.memory_mb / 100, total
    assert _sh(drv, uuid, "nproc").strip() == str(fl.vcpus)
    assert _sh(drv, uuid, "grep -c ^processor /proc/cpuinfo").strip() == \
        str(fl.vcpus)
    online = _sh(drv, uuid, "cat /sys/devices/system/cpu/online").strip()
    assert online == ("0" if fl.vcpus == 1 else f"0-{fl.vcpus - 1}")
    uptime = float(_sh(drv, uuid, "cat /proc/uptime").split()[0])
    assert 0 <= uptime < age + 2, (uptime, age)
    swap = _sh(drv, uuid, "cat /proc/swaps").splitlines()
    assert len(swap) <= 1 + (1 if fl.swap_mb else 0), swap
    df = _sh(drv, uuid, "df -k /").splitlines()[-1].split()
    size_kb = int(df[1])
    want = fl.root_gb * (1 << 20)
    # ext4's own metadata (journal, inode tables) is not the tenant's
    assert 0.90 * want <= size_kb <= want, (size_kb, want)


def test_busybox_guest_sees_its_flavor(driver, guests):
    booted = time.monotonic()
    spec = guests.boot(flavor(vcpus=1, memory_mb=256, root_gb=1))
    check_flavor_view(driver, spec, time.monotonic() - booted)
    loadavg = _sh(driver, spec.uuid, "cat /proc/loadavg").split()
    assert float(loadavg[0]) < 2.0  # its own tasks, not the host's
    assert driver.views.live()


def test_two_vcpus_and_the_host_view_when_opted_out(driver, guests):
    two = guests.boot(flavor(vcpus=2, memory_mb=192, root_gb=1))
    assert _sh(driver, two.uuid, "nproc").strip() == "2"
    assert _free_total_mb(driver, two.uuid) in range(190, 195)
    shared = guests.boot(flavor(vcpus=1, memory_mb=128, root_gb=1, **{
        "pyct:dedicated_cpuset": "false"}))
    # no cpuset of its own: nproc shows every host CPU; cpuinfo (lxcfs
    # --enable-cfs) still counts the vCPUs its CPU quota allows
    assert _sh(driver, shared.uuid, "nproc").strip() == str(os.cpu_count())
    assert _sh(driver, shared.uuid,
               "grep -c ^processor /proc/cpuinfo").strip() == "1"


def test_cpusets_balance_and_rebalance(driver, guests):
    if os.cpu_count() < 2:
        return  # one CPU: nothing to balance (never on the 2-CPU hosts)
    specs = [guests.boot(flavor(vcpus=1, memory_mb=64, root_gb=0))
             for _ in range(3)]

    def cpus(spec):
        return read_group(driver, "cpuset", spec.uuid, "cpuset.cpus")

    first = [cpus(s) for s in specs]
    assert len(set(first[:2])) == 2, first  # the idle CPU first
    # free the CPU that one guest has alone: the other two share one CPU
    # until re-balanced
    lonely = next(s for s in specs if first.count(cpus(s)) == 1)
    driver.destroy(lonely)
    guests.specs.remove(lonely)
    rest = [cpus(s) for s in guests.specs]
    assert len(set(rest)) == 2, rest


def test_views_after_a_restart_of_the_view_service(driver, guests):
    """A crashed service is started again within the watcher's interval.
    A privileged guest running across the crash gets the new files
    (``views.rebind``); an unprivileged one keeps running, its views fail
    fast (ENOTCONN, locked binds: README) until it reboots, or on kernels
    that let the rebind through (6.1) show the flavor again; guests booted
    after the restart bind the new service directly."""
    booted = time.monotonic()
    unpriv = guests.boot(flavor(vcpus=1, memory_mb=320, root_gb=1))
    privileged = guests.boot(flavor(vcpus=1, memory_mb=288, root_gb=1, **{
        "pyct:privileged": "true"}))
    pid = driver.views.service_pid()
    assert pid
    restarts = driver.views.restarts
    os.kill(pid, signal.SIGKILL)  # a crash; this driver started it
    wait_for(lambda: driver.views.restarts > restarts
             and driver.views.live(), timeout=10)
    assert driver.views.service_pid() not in (None, pid)
    wait_for(lambda: guest_exec(driver, privileged.uuid, [
        "cat", "/proc/meminfo"], check=False).returncode == 0, timeout=10)
    check_flavor_view(driver, privileged, time.monotonic() - booted)
    started = time.monotonic()
    stale = guest_exec(driver, unpriv.uuid, ["cat", "/proc/meminfo"],
                       check=False)
    assert time.monotonic() - started < 5  # never a hang
    # this kernel: ENOTCONN until a reboot; Debian 12's 6.1 (the v2 lane)
    # lets the rebind through: then it must show the flavor
    assert stale.returncode != 0 or re.search(
        r"^MemTotal:\s+327680 kB", stale.stdout, re.M), stale
    assert _sh(driver, unpriv.uuid, "echo alive").strip() == "alive"
    rebooted = time.monotonic()
    driver.reboot(unpriv, hard=True)
    check_flavor_view(driver, unpriv, time.monotonic() - rebooted)
    later = guests.boot(flavor(vcpus=1, memory_mb=160, root_gb=1))
    check_flavor_view(driver, later, time.monotonic() - booted)


def test_mount_table_names_no_host_path_and_no_other_guest(driver, guests):
    one = guests.boot(flavor(vcpus=1, memory_mb=64, root_gb=1))
    other = guests.boot(flavor(vcpus=1, memory_mb=64, root_gb=1))
    privileged = guests.boot(flavor(vcpus=1, memory_mb=64, root_gb=1, **{
        "pyct:privileged": "true"}))
    uuids = [one.uuid, other.uuid, privileged.uuid]
    secrets = [driver.test_tmp, driver.base_dir, os.path.realpath(
        driver.base_dir), "/work", "pyct-drvtest", driver.cgroups.parent,
        *uuids, *[uuid[:8] for uuid in uuids]]
    for spec in (one, privileged):
        for path in ("/proc/self/mountinfo", "/proc/mounts"):
            lines = guest_exec(driver, spec.uuid, ["cat", path]).stdout
            assert lines.strip()
            for line in lines.splitlines():
                for secret in secrets:
                    assert secret not in line, (path, secret, line)


def test_staged_layers_of_older_kernels_name_no_host_path(
        driver, guests, monkeypatch):
    """Before Linux 6.8 overlayfs takes no layer fds: the idmapped layers
    are staged at host paths and named by descriptor instead (forced
    here as on Debian 12's 6.1)."""
    real = overlay._fsconfig_overlay

    def no_layer_fds(target, lowers, upper, work):
        if any(isinstance(lower, int) for lower in lowers):
            raise OSError(errno.EINVAL, "lowerdir+ fd: as on Linux 6.1")
        return real(target, lowers, upper, work)

    monkeypatch.setattr(overlay, "_fsconfig_overlay", no_layer_fds)
    spec = guests.boot(flavor(vcpus=1, memory_mb=64, root_gb=1))
    root = next(line for line in guest_exec(
        driver, spec.uuid, ["cat", "/proc/self/mountinfo"]).stdout.splitlines()
        if line.split()[4] == "/")
    assert "lowerdir=/proc/self/fd/" in root, root
    assert driver.test_tmp not in root and spec.uuid not in root, root


def test_a_resize_gives_the_running_guest_its_new_vcpus(driver, guests):
    if os.cpu_count() < 2:
        return  # one CPU: one vCPU is all a guest can see
    spec = guests.boot(flavor(vcpus=1, memory_mb=128, root_gb=1))
    assert _sh(driver, spec.uuid, "nproc").strip() == "1"
    driver.apply_flavor(spec, flavor(vcpus=2, memory_mb=256, root_gb=1))
    assert _sh(driver, spec.uuid, "nproc").strip() == "2"
    assert _sh(driver, spec.uuid, "grep -c ^processor /proc/cpuinfo"
               ).strip() == "2"
    assert _free_total_mb(driver, spec.uuid) == 256
