"""V2Backend on a real cgroup v2 kernel (the v2 lane's VM), real processes.

The counterpart of tests/privileged/test_cgroup_v1_real.py, with the same
bands: limits read back from the kernel's files, a 2:1 cpu.weight split on
one CPU, a 1-vCPU cpu.max cap on two CPUs, memory.max OOM confined to the
group, pids.max against a fork bomb, cgroup.freeze, cgroup.kill, io.max on
a loop device with O_DIRECT writes. Every group lives under a per-run
parent ``pyct-test-<random>`` and is removed even when a test fails. Under
TCG the guest's clock and scheduler are the emulated kernel's own, so the
CPU bands hold as on hardware; a band is widened only where a comment says
why.
"""

import dataclasses
import os
import subprocess
import sys
import time
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import v2
from tests.privileged.test_cgroup_v1_real import BUSY
from tests.privileged.test_cgroup_v1_real import _measure
from tests.privileged.test_cgroup_v1_real import loopdev  # noqa: F401
from tests.privileged.test_cgroup_v1_real import spawn

ROOT = "/sys/fs/cgroup"
MiB = 1024 * 1024


def _read(path):
    with open(path) as f:
        return f.read().strip()


@pytest.fixture(scope="module")
def backend():
    parent = f"pyct-test-{uuid.uuid4().hex[:8]}"
    be = v2.V2Backend(ROOT, parent)
    yield be
    be.remove_parent()
    assert not os.path.exists(os.path.join(ROOT, parent))


@pytest.fixture
def group(backend):
    """make(**flavor) -> group name; destroys the groups, reaps children."""
    names, procs = [], []

    def make(vcpus=1, ram=256, swap=0, specs=None, pids=1024, dev=None,
             devices=base.DEFAULT_DEVICES):
        name = f"pyct-g-{uuid.uuid4().hex[:6]}"
        limits = base.limits_from_flavor(vcpus, ram, swap, specs or {}, pids,
                                         dev)
        backend.create(name, dataclasses.replace(limits, devices=devices))
        names.append(name)
        return name

    make.procs = procs
    yield make
    for name in names:
        backend.destroy(name)
    for p in procs:
        if p.poll() is None:  # never reached: destroy killed it
            p.kill()
        p.wait(timeout=10)


def _f(backend, name, fname):
    return _read(os.path.join(ROOT, backend.parent, name, fname))


def test_limits_read_back(backend, group, loopdev):  # noqa: F811
    _dev, majmin = loopdev
    name = group(vcpus=2, ram=256, swap=128, pids=1024, dev=majmin,
                 specs={"quota:disk_write_bytes_sec": "5242880",
                        "quota:disk_read_iops_sec": "300",
                        "pyct:pids_max": "100"})
    assert _f(backend, name, "cpu.weight") == str(v2.shares_to_weight(2048))
    assert _f(backend, name, "cpu.max") == "200000 100000"
    assert _f(backend, name, "memory.max") == str(256 * MiB)
    assert _f(backend, name, "memory.swap.max") == str(128 * MiB)
    assert _f(backend, name, "memory.oom.group") == "0"
    assert _f(backend, name, "pids.max") == "100"
    assert _f(backend, name, "io.max") == (
        f"{majmin} rbps=max wbps=5242880 riops=300 wiops=max")
    top = os.path.join(ROOT, backend.parent)
    assert {"cpu", "memory", "pids", "io"} <= set(
        _read(os.path.join(top, "cgroup.subtree_control")).split())
    # Re-applying (a resize) changes limits in place and drops the io rule.
    backend.create(name, base.limits_from_flavor(4, 1024, 0, {}, 50, None))
    assert _f(backend, name, "memory.max") == str(1024 * MiB)
    assert _f(backend, name, "memory.swap.max") == "0"
    assert _f(backend, name, "cpu.max") == "400000 100000"
    assert _f(backend, name, "pids.max") == "50"
    assert _f(backend, name, "io.max") == ""


def test_flavor_weights_span_the_v2_range(backend, group):
    # quota:cpu_shares 2 and 262144 are v1's ends: v2's 1 and 10000.
    low = group(specs={"quota:cpu_shares": "2"})
    high = group(specs={"quota:cpu_shares": "262144"})
    assert _f(backend, low, "cpu.weight") == "1"
    assert _f(backend, high, "cpu.weight") == "10000"
    assert _f(backend, group(vcpus=1), "cpu.weight") == "39"


def test_memory_hog_is_oom_killed_in_its_group_only(backend, group):
    name = group(ram=64)
    bystander = subprocess.Popen(["sleep", "60"])
    try:
        # A task of the same guest that is not the hog survives as well:
        # memory.oom.group is off, as in a VM whose kernel kills one task.
        sibling = spawn(backend, group, name, ["sleep", "60"])
        hog = spawn(backend, group, name, [
            sys.executable, "-c",
            "a = []\nwhile True: a.append(b'x' * (1 << 20))"])
        assert hog.wait(timeout=60) == -9
        events = dict(line.split() for line in
                      _f(backend, name, "memory.events").splitlines())
        assert int(events["oom_kill"]) >= 1
        assert sibling.poll() is None
        assert bystander.poll() is None  # outside the group: untouched
    finally:
        bystander.kill()
        bystander.wait()


def test_shares_split_one_cpu_two_to_one(backend, group):
    cpu = {max(os.sched_getaffinity(0))}
    big = group(vcpus=2, specs={"quota:cpu_quota": "-1"})
    small = group(vcpus=1, specs={"quota:cpu_quota": "-1"})
    spawn(backend, group, big, BUSY, cpus=cpu)
    spawn(backend, group, small, BUSY, cpus=cpu)
    time.sleep(0.5)  # warm-up
    for attempt in range(2):
        (b, s), _wall = _measure(backend, [big, small], 2.0)
        if 1.8 <= b / s <= 2.2:
            break
    print(f"weights {v2.shares_to_weight(2048)}:{v2.shares_to_weight(1024)}"
          f" on one CPU -> {b / s:.3f}:1")
    assert 1.8 <= b / s <= 2.2, (b, s)


def test_one_vcpu_cap_on_two_cpus(backend, group):
    assert len(os.sched_getaffinity(0)) >= 2
    name = group(vcpus=1)
    spawn(backend, group, name, BUSY)
    spawn(backend, group, name, BUSY)
    time.sleep(0.5)
    for attempt in range(2):
        (used,), wall = _measure(backend, [name], 3.0)
        if 0.95 <= used / wall <= 1.05:
            break
    print(f"cpu.max 1 vCPU, 2 busy loops on 2 CPUs -> {used / wall:.3f} CPU")
    assert 0.95 <= used / wall <= 1.05, used / wall


def test_fork_bomb_stops_at_pids_max(backend, group):
    name = group(vcpus=1, specs={"pyct:pids_max": "64"})
    bomb = spawn(backend, group, name, [
        sys.executable, "-c",
        "import os\nwhile True:\n    try:\n        os.fork()\n"
        "    except OSError:\n        pass"])
    deadline = time.monotonic() + 30
    while int(_f(backend, name, "pids.current")) < 64:
        assert time.monotonic() < deadline, _f(backend, name, "pids.current")
        time.sleep(0.05)
    # One read of 65 was seen once on Debian's 6.1 under TCG (of 3 runs;
    # unexplained, reported): the bound allows one over, a fork bomb that
    # got past pids.max would be far beyond it.
    for _ in range(5):
        assert int(_f(backend, name, "pids.current")) <= 65
        time.sleep(0.05)
    assert int(_f(backend, name, "pids.events").split()[1]) > 0
    subprocess.run(["true"], check=True, timeout=10)  # the host still forks
    t0 = time.monotonic()
    backend.kill_all(name, timeout=30)
    print(f"cgroup.kill of a 64-task fork bomb: {time.monotonic() - t0:.3f}s")
    assert backend.pids(name) == []
    assert bomb.wait(timeout=10) == -9


def test_freeze_stops_cpu_and_thaw_resumes(backend, group):
    name = group(vcpus=1)
    spawn(backend, group, name, BUSY)
    time.sleep(0.3)
    backend.freeze(name)
    assert backend.is_frozen(name)
    assert _f(backend, name, "cgroup.freeze") == "1"
    (frozen,), _ = _measure(backend, [name], 0.5)
    assert frozen < 0.005
    backend.thaw(name)
    assert not backend.is_frozen(name)
    (thawed,), _ = _measure(backend, [name], 0.5)
    assert thawed > 0.1


def test_destroy_removes_subgroups_and_tasks(backend, group):
    name = group()
    p = spawn(backend, group, name, ["sleep", "60"])
    # v2's no-internal-process rule: a guest that makes sub-groups (as a
    # systemd guest does) moves its tasks into leaves; destroy handles both.
    sub = os.path.join(ROOT, backend.parent, name, "pyct-sub")
    os.mkdir(sub)
    q = spawn(backend, group, name, ["sleep", "60"])
    with open(os.path.join(sub, "cgroup.procs"), "w") as f:
        f.write(str(q.pid))
    assert set(backend.pids(name)) == {p.pid, q.pid}
    backend.destroy(name)
    assert p.wait(timeout=10) == -9 and q.wait(timeout=10) == -9
    assert not backend.exists(name)
    backend.destroy(name)  # idempotent


def test_io_max_write_throttle(backend, group, loopdev):  # noqa: F811
    dev, majmin = loopdev
    rate = 5 * MiB
    name = group(dev=majmin, specs={"quota:disk_write_bytes_sec": str(rate)},
                 devices=base.DEFAULT_DEVICES + (f"b {majmin} rw",))
    size = 12 * MiB
    t0 = time.monotonic()
    dd = spawn(backend, group, name, [
        "dd", "if=/dev/zero", f"of={dev}", "bs=256K",
        f"count={size // (256 * 1024)}", "oflag=direct"])
    assert dd.wait(timeout=60) == 0, dd.stderr.read()
    measured = size / (time.monotonic() - t0)
    print(f"io.max wbps 5 MiB/s -> {measured / MiB:.2f} MiB/s")
    assert 0.85 * rate <= measured <= 1.15 * rate, measured / MiB


def test_device_outside_allow_list_is_refused_by_bpf(backend, group, loopdev):  # noqa: F811,E501
    dev, majmin = loopdev
    name = group()  # the default list: no block device at all
    dd = spawn(backend, group, name, ["dd", f"if={dev}", "of=/dev/null",
                                      "bs=4k", "count=1"])
    assert dd.wait(timeout=30) != 0
    assert b"Operation not permitted" in dd.stderr.read()


def test_unknown_controller_parent_is_refused():
    with pytest.raises(exception.CgroupError):
        v2.V2Backend("/proc", "pyct-test-none")
