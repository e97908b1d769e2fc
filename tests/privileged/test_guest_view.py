"""Inside a busybox guest, the usual tools report its flavor, and its
mount table names no host path and no other guest.

The views come from the host's one lxcfs (``process.caller.viewservice``) bound
over the guest's /proc and /sys files; the CPU count from the guest's
cpuset (``cgroups.cpuset``). Killing the service (SIGKILL, as a crash)
must not break a running guest: the driver's watcher starts a new one
and binds its files on the host's anchors, and mount propagation stacks
them on every guest's views within its interval.
"""

from __future__ import annotations

import errno
import os
import signal
import time

from pyct_driver.virt.process.caller import viewservice
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


def _meminfo_total_kb(drv, uuid: str) -> int | None:
    """MemTotal as the guest reads it; None while its view fails (a dead
    service: ENOTCONN, at once, never a hang)."""
    out = guest_exec(drv, uuid, ["grep", "^MemTotal:", "/proc/meminfo"],
                     check=False)
    return int(out.stdout.split()[1]) if out.returncode == 0 else None


def kill_and_wait_for_views(drv, specs) -> float:
    """SIGKILL the service (a crash) and wait until every guest of
    ``specs`` reads its flavor's MemTotal again; the seconds that took."""
    pid = drv.views.service_pid()
    assert pid
    restarts = drv.views.restarts
    killed = time.monotonic()
    os.kill(pid, signal.SIGKILL)  # this driver's lxcfs (pid file checked)
    for spec in specs:
        want = spec.flavor.memory_mb * 1024
        wait_for(lambda spec=spec, want=want: _meminfo_total_kb(
            drv, spec.uuid) == want, timeout=5, interval=0.05)
    took = time.monotonic() - killed
    assert drv.views.restarts > restarts
    assert drv.views.service_pid() not in (None, pid)
    return took


def test_views_after_a_restart_of_the_view_service(driver, guests):
    """A crashed service is started again within the watcher's interval
    and its files reach every running guest by mount propagation: an
    unprivileged guest (its view binds locked: it cannot unmount them,
    nor could host root) and a privileged one show their flavor again
    within a few seconds, without a reboot, and again after a second
    crash; a guest booted after the restarts binds the live service."""
    booted = time.monotonic()
    unpriv = guests.boot(flavor(vcpus=1, memory_mb=320, root_gb=1))
    privileged = guests.boot(flavor(vcpus=1, memory_mb=288, root_gb=1, **{
        "pyct:privileged": "true"}))
    locked = guest_exec(driver, unpriv.uuid, ["umount", "/proc/meminfo"],
                        check=False)
    assert locked.returncode != 0 and "not found" not in locked.stderr, locked
    for crash in (1, 2):
        took = kill_and_wait_for_views(driver, (unpriv, privileged))
        assert took < 5, (crash, took)
        for spec in (unpriv, privileged):
            check_flavor_view(driver, spec, time.monotonic() - booted)
        assert _sh(driver, unpriv.uuid, "echo alive").strip() == "alive"
    # each crash stacked a pair of binds (the guest can unmount neither:
    # its path reaches the locked upper one) on the dead layers
    table = _sh(driver, unpriv.uuid, "cat /proc/self/mountinfo")
    assert len([line for line in table.splitlines()
                if line.split()[4] == "/proc/meminfo"]) == 5, table
    locked = guest_exec(driver, unpriv.uuid, ["umount", "/proc/meminfo"],
                        check=False)
    assert locked.returncode != 0, locked
    later = guests.boot(flavor(vcpus=1, memory_mb=160, root_gb=1))
    check_flavor_view(driver, later, time.monotonic() - booted)


def test_views_after_a_compute_restart_then_a_crash(driver, guests):
    """A compute service restarted while lxcfs lives adopts it and its
    published files (nothing restarts, the guest's views keep
    answering); when lxcfs then crashes, the new service object starts
    a new one and the running guest shows its flavor again."""
    booted = time.monotonic()
    spec = guests.boot(flavor(vcpus=1, memory_mb=352, root_gb=1))
    old = driver.views
    pid = old.service_pid()
    old._stop.set()  # the old compute service's watcher dies with it
    old._thread.join(timeout=5)
    new = viewservice.ViewService(old.directory, old.binary)
    driver.views = new
    try:
        assert new.ensure() == old.files_dir
        assert new.service_pid() == pid and new.restarts == 0
        new.watch()
        assert _meminfo_total_kb(driver, spec.uuid) == 352 * 1024
        took = kill_and_wait_for_views(driver, (spec,))
        assert took < 5, took
        old._proc.wait(timeout=5)  # the test's child: reap it
        check_flavor_view(driver, spec, time.monotonic() - booted)
    finally:
        driver.views = old
        new.stop()  # the lxcfs it started; the next spawn starts one
    # stopped on purpose: nothing left mounted, nothing restarted
    mounted = [line.split()[4] for line in open("/proc/self/mountinfo")
               if old.directory in line.split()[4]]
    assert not mounted, mounted
    assert new.recover() is False and new.service_pid() is None
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
