"""Flavor limits enforced on the real kernel, on workloads inside guests.

Every workload runs inside a busybox guest booted by ``ContainerDriver``
(``guest_exec``: charged to the guest's cgroups, in its namespaces). CPU
measurements read the guest's CPU time through ``driver.get_info``; they
pin contending guests to one CPU and compare ratios, so other load on this
shared 2-core host changes both sides alike. A measurement that misses its
band is repeated once on a fresh window.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time

from pyct_driver import states
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, cpu_ns, driver, flavor, group_file, guest_exec, guests,
    init_pid, read_group, wait_for)

BUSY = ["/bin/sh", "-c", "while :; do :; done"]
_MiB = 1 << 20


def _write(path: str, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


@contextlib.contextmanager
def _favoured(drv):
    """Give the test's parent group a big CPU weight for a moment, so the
    guests measured compete mostly with each other, not with other load on
    this shared host."""
    path = os.path.join("/sys/fs/cgroup/cpu", drv.cgroups.parent,
                        "cpu.shares")
    _write(path, "16384")
    try:
        yield
    finally:
        _write(path, "1024")


def _measure(drv, specs, seconds: float) -> list[int]:
    before = [cpu_ns(drv, s) for s in specs]
    time.sleep(seconds)
    return [cpu_ns(drv, s) - b for s, b in zip(specs, before)]


def _root_device(drv, uuid: str) -> str:
    dev = os.stat(os.path.join(drv.roots.base_dir, "instances", uuid,
                               "disk")).st_dev
    return f"{os.major(dev)}:{os.minor(dev)}"


def test_limit_files_follow_the_flavor(driver, guests):
    fl = flavor(vcpus=2, memory_mb=192, root_gb=1, **{
        "quota:disk_write_bytes_sec": str(3 * _MiB),
        "quota:disk_read_iops_sec": "500", "pyct:pids_max": "100"})
    spec = guests.boot(fl)
    uuid = spec.uuid
    assert read_group(driver, "memory", uuid,
                      "memory.limit_in_bytes") == str(192 * _MiB)
    assert read_group(driver, "cpu", uuid, "cpu.shares") == "2048"
    assert read_group(driver, "cpu", uuid, "cpu.cfs_period_us") == "100000"
    assert read_group(driver, "cpu", uuid, "cpu.cfs_quota_us") == "200000"
    assert read_group(driver, "pids", uuid, "pids.max") == "100"
    dev = _root_device(driver, uuid)
    assert dev.startswith("7:")  # a loop device
    assert read_group(driver, "blkio", uuid,
                      "blkio.throttle.write_bps_device") == f"{dev} {3 * _MiB}"
    assert read_group(driver, "blkio", uuid,
                      "blkio.throttle.read_iops_device") == f"{dev} 500"
    assert init_pid(driver, uuid) in [
        int(p) for p in read_group(driver, "memory", uuid,
                                   "cgroup.procs").split()]


def test_memory_hog_is_oom_killed_inside_the_guest_only(driver, guests):
    spec = guests.boot(flavor(memory_mb=64))
    pid = init_pid(driver, spec.uuid)
    # dd's buffer is one block: reading 256 MiB of zeros into it touches
    # every page, well past the guest's 64 MiB.
    result = guest_exec(driver, spec.uuid,
                        ["/bin/dd", "if=/dev/zero", "of=/dev/null",
                         "bs=256M", "count=1"], check=False)
    assert result.returncode in (-9, 137), (result.returncode, result.stderr)
    oom = dict(line.split() for line in read_group(
        driver, "memory", spec.uuid, "memory.oom_control").splitlines())
    assert int(oom["oom_kill"]) >= 1
    assert driver.get_info(spec).power_state == states.RUNNING
    assert init_pid(driver, spec.uuid) == pid
    assert guest_exec(driver, spec.uuid, ["/bin/echo", "alive"]).stdout \
        == "alive\n"


def test_cpu_weights_share_one_cpu_two_to_one(driver, guests):
    cpu = str(max(os.sched_getaffinity(0)))
    big = guests.boot(flavor(vcpus=2))
    small = guests.boot(flavor(vcpus=1))
    for spec in (big, small):
        _write(group_file(driver, "cpuset", spec.uuid, "cpuset.cpus"), cpu)
        guest_exec(driver, spec.uuid, BUSY, background=True, guests=guests)
    with _favoured(driver):
        time.sleep(0.5)  # warm-up: both loops running, scheduler settled
        for attempt in range(2):
            d_big, d_small = _measure(driver, (big, small), 3.0)
            ratio = d_big / max(d_small, 1)
            print(f"cpu weights 2:1 attempt {attempt}: "
                  f"big={d_big / 1e9:.3f}s small={d_small / 1e9:.3f}s "
                  f"ratio={ratio:.3f}")
            if 1.8 <= ratio <= 2.2:
                break
    assert 1.8 <= ratio <= 2.2, ratio
    # both were pinned to a single CPU: together at most one CPU's worth
    assert (d_big + d_small) / 3e9 < 1.05


def test_one_vcpu_guest_uses_one_cpu(driver, guests):
    # favoured: the measured ceiling must be the cap, not contention
    with _favoured(driver):
        spec = guests.boot(flavor(vcpus=1))
        for _ in range(2):
            guest_exec(driver, spec.uuid, BUSY, background=True,
                       guests=guests)
        time.sleep(0.5)
        for attempt in range(2):
            (used,) = _measure(driver, (spec,), 3.0)
            cpus = used / 3e9
            print(f"1-vCPU guest, two loops, attempt {attempt}: "
                  f"{cpus:.3f} CPUs")
            if 0.95 <= cpus <= 1.05:
                break
        assert 0.95 <= cpus <= 1.05, cpus


def test_direct_writes_are_throttled(driver, guests):
    rate = 4 * _MiB
    spec = guests.boot(flavor(**{"quota:disk_write_bytes_sec": str(rate)}))
    total = 8 * _MiB
    for attempt in range(2):
        start = time.monotonic()
        result = guest_exec(driver, spec.uuid, [
            "/bin/dd", "if=/dev/zero", f"of=/ddtest{attempt}", "bs=256k",
            f"count={total // (256 * 1024)}", "oflag=direct"])
        elapsed = time.monotonic() - start
        measured = total / elapsed
        print(f"direct writes attempt {attempt}: {measured / _MiB:.2f} MiB/s "
              f"(limit {rate / _MiB:.0f}) in {elapsed:.2f}s; {result.stderr}")
        if 0.85 * rate <= measured <= 1.15 * rate:
            break
    assert 0.85 * rate <= measured <= 1.15 * rate, measured / _MiB


def test_writing_past_root_size_fails_with_enospc(driver, guests):
    spec = guests.boot(flavor(memory_mb=512, root_gb=1))
    result = guest_exec(driver, spec.uuid, [
        "/bin/dd", "if=/dev/zero", "of=/fill", "bs=1M", "count=1300"],
        check=False, timeout=60)
    assert result.returncode != 0
    assert "No space left on device" in result.stderr, result.stderr
    df = guest_exec(driver, spec.uuid, ["/bin/df", "-k", "/"]).stdout
    size_kb = int(df.splitlines()[1].split()[1])
    assert size_kb <= 1024 * 1024
    # the guest is still fine and can free its space
    guest_exec(driver, spec.uuid, ["/bin/rm", "/fill"])
    assert driver.get_info(spec).power_state == states.RUNNING


def test_fork_bomb_stops_at_pids_limit(driver, guests):
    spec = guests.boot(flavor(**{"pyct:pids_max": "64"}))
    guest_exec(driver, spec.uuid,
               # every task keeps forking: the bomb never dies out
               ["/bin/sh", "-c", "f() { while :; do f & done; }; f"],
               background=True,
               guests=guests)
    wait_for(lambda: int(read_group(driver, "pids", spec.uuid,
                                    "pids.events").split()[1]) > 0,
             timeout=10, what="pids limit hit")
    # the bomb's tasks come and go: sample (longer on a loaded host)
    peak, deadline = 0, time.monotonic() + 5
    while peak <= 32 and time.monotonic() < deadline:
        peak = max(peak, int(read_group(driver, "pids", spec.uuid,
                                        "pids.current")))
        time.sleep(0.02)
    assert 32 < peak <= 64
    start = time.monotonic()
    subprocess.run(["/bin/true"], check=True)
    assert driver.get_info(spec).power_state == states.RUNNING
    assert time.monotonic() - start < 1.0
    # destroy must win against the bomb (freeze, kill, thaw)
    start = time.monotonic()
    driver.destroy(spec)
    print(f"fork bomb: peak {peak} tasks, destroyed in "
          f"{time.monotonic() - start:.2f}s")
    assert driver.get_info(spec).power_state == states.NOSTATE
