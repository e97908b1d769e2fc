"""V1Backend against a plain-directory layout that mimics v1 hierarchies."""

import os

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import detect
from pyct_driver.virt.cgroups import v1

MiB = 1024 * 1024
CTRLS = ("cpu", "cpuacct", "memory", "pids", "freezer", "blkio", "devices",
         "cpuset")


def put(path, text):
    with open(path, "w") as f:
        f.write(text)


def get(path):
    with open(path) as f:
        return f.read()


def make_root(tmp_path, memsw=True, comount=False):
    for c in CTRLS:
        if comount and c in ("cpu", "cpuacct"):
            continue
        (tmp_path / c).mkdir()
    if comount:
        (tmp_path / "cpu,cpuacct").mkdir()
        os.symlink("cpu,cpuacct", tmp_path / "cpu")
        os.symlink("cpu,cpuacct", tmp_path / "cpuacct")
    put(tmp_path / "cpuset" / "cpuset.cpus", "0-3\n")
    put(tmp_path / "cpuset" / "cpuset.mems", "0\n")
    if memsw:
        put(tmp_path / "memory" / "memory.memsw.limit_in_bytes",
            "9223372036854771712\n")
    return tmp_path


def flavor(vcpus=2, ram=512, swap=64, specs=None, dev="7:2"):
    return base.limits_from_flavor(vcpus, ram, swap, specs or {}, 1024, dev)


def test_create_writes_limits(tmp_path):
    root = make_root(tmp_path)
    be = v1.V1Backend(str(root), "pyct")
    be.create("i1", flavor(specs={"quota:disk_write_bytes_sec": "5242880",
                                  "quota:disk_read_iops_sec": "100"}))
    g = {c: root / c / "pyct" / "i1" for c in CTRLS}
    assert get(g["cpu"] / "cpu.shares") == "2048"
    assert get(g["cpu"] / "cpu.cfs_period_us") == "100000"
    assert get(g["cpu"] / "cpu.cfs_quota_us") == "200000"
    assert get(g["memory"] / "memory.limit_in_bytes") == str(512 * MiB)
    assert get(g["memory"] / "memory.memsw.limit_in_bytes") == str(576 * MiB)
    assert get(g["memory"] / "memory.oom_control") == "0"
    assert get(g["pids"] / "pids.max") == "1024"
    assert get(g["blkio"] / "blkio.throttle.write_bps_device") == "7:2 5242880"
    assert get(g["blkio"] / "blkio.throttle.read_iops_device") == "7:2 100"
    assert get(g["blkio"] / "blkio.throttle.read_bps_device") == "7:2 0"
    # cpuset copied down both levels, so tasks can be attached.
    for d in (root / "cpuset" / "pyct", g["cpuset"]):
        assert get(d / "cpuset.cpus") == "0-3"
        assert get(d / "cpuset.mems") == "0"
    assert all(p.is_dir() for p in g.values())
    assert be.procs_files("i1") == [str(g[c] / "cgroup.procs") for c in CTRLS]
    assert be.list_groups() == ["i1"] and be.exists("i1")


def test_no_cap_writes_minus_one(tmp_path):
    be = v1.V1Backend(str(make_root(tmp_path)), "pyct")
    be.create("i1", flavor(specs={"quota:cpu_quota": "-1"}))
    assert get(tmp_path / "cpu/pyct/i1/cpu.cfs_quota_us") == "-1"


def test_memsw_order_when_growing(tmp_path, monkeypatch):
    be = v1.V1Backend(str(make_root(tmp_path)), "pyct")
    be.create("i1", flavor(ram=512, swap=0))
    mem = tmp_path / "memory/pyct/i1"
    writes = []
    real = base.write_text

    def spy(path, value):
        if "limit_in_bytes" in path:
            writes.append(os.path.basename(path))
        real(path, value)
    monkeypatch.setattr(base, "write_text", spy)
    be.create("i1", flavor(ram=1024, swap=0))  # above the current memsw
    assert writes == ["memory.memsw.limit_in_bytes", "memory.limit_in_bytes"]
    writes.clear()
    be.create("i1", flavor(ram=256, swap=0))  # shrink
    assert writes == ["memory.limit_in_bytes", "memory.memsw.limit_in_bytes"]
    assert get(mem / "memory.limit_in_bytes") == str(256 * MiB)
    assert get(mem / "memory.memsw.limit_in_bytes") == str(256 * MiB)


def test_no_memsw_disables_swap(tmp_path):
    be = v1.V1Backend(str(make_root(tmp_path, memsw=False)), "pyct")
    be.create("i1", flavor(swap=128))
    mem = tmp_path / "memory/pyct/i1"
    assert get(mem / "memory.swappiness") == "0"
    assert not (mem / "memory.memsw.limit_in_bytes").exists()


def test_comounted_hierarchies_handled_once(tmp_path):
    be = v1.V1Backend(str(make_root(tmp_path, comount=True)), "pyct")
    be.create("i1", flavor())
    files = be.procs_files("i1")
    assert len(files) == len(CTRLS) - 1
    assert get(tmp_path / "cpu,cpuacct/pyct/i1/cpu.shares") == "2048"


def test_reapply_removes_old_device(tmp_path, monkeypatch):
    be = v1.V1Backend(str(make_root(tmp_path)), "pyct")
    be.create("i1", flavor(specs={"quota:disk_total_bytes_sec": "1000"}))
    writes = []
    real = base.write_text

    def spy(path, value):
        if "read_bps" in path:
            writes.append(value)
        real(path, value)
    monkeypatch.setattr(base, "write_text", spy)
    be.create("i1", flavor(specs={"quota:disk_total_bytes_sec": "1000"},
                           dev="8:0"))
    assert writes == ["7:2 0", "8:0 1000"]


def test_partial_failure_rolls_back(tmp_path):
    root = make_root(tmp_path)
    be = v1.V1Backend(str(root), "pyct")
    be.create("other", flavor())
    # mkdir in the 4th hierarchy (pids) fails after cpu, cpuacct and memory
    # were made: those three must be removed again.
    (root / "pids" / "pyct" / "i1").write_text("in the way")
    with pytest.raises(exception.CgroupError, match="cannot create group i1"):
        be.create("i1", flavor())
    os.unlink(root / "pids" / "pyct" / "i1")
    assert not be.exists("i1")
    assert be.list_groups() == ["other"]


def test_freeze_thaw_stats_destroy(tmp_path):
    be = v1.V1Backend(str(make_root(tmp_path)), "pyct")
    be.create("i1", flavor())
    be.freeze("i1")
    assert be.is_frozen("i1")
    be.thaw("i1")
    assert not be.is_frozen("i1")
    put(tmp_path / "memory/pyct/i1/memory.usage_in_bytes", "8192\n")
    put(tmp_path / "cpuacct/pyct/i1/cpuacct.usage", "123456\n")
    assert be.stats("i1") == base.CgroupStats(8192, 123456)
    for c in CTRLS:
        d = tmp_path / c / "pyct" / "i1"
        put(d / "cgroup.procs", "")
    assert be.pids("i1") == []
    for c in CTRLS:
        d = tmp_path / c / "pyct" / "i1"
        for f in os.listdir(d):
            os.unlink(d / f)
    be.destroy("i1")
    assert not be.exists("i1")
    assert not any((tmp_path / c / "pyct" / "i1").exists() for c in CTRLS)
    be.destroy("i1")


def test_missing_required_controller(tmp_path):
    make_root(tmp_path)
    os.rmdir(tmp_path / "freezer")
    with pytest.raises(exception.CgroupError, match="freezer"):
        v1.V1Backend(str(tmp_path), "pyct")


def test_io_limits_need_blkio(tmp_path):
    make_root(tmp_path)
    os.rmdir(tmp_path / "blkio")
    be = v1.V1Backend(str(tmp_path), "pyct")
    with pytest.raises(exception.CgroupError, match="blkio"):
        be.create("i1", flavor(specs={"quota:disk_read_iops_sec": "5"}))
    be.create("i1", flavor())


def test_detect_v1(tmp_path):
    assert isinstance(detect.detect_backend(str(make_root(tmp_path)), "p"),
                      v1.V1Backend)


def test_detect_this_host():
    # This host is hybrid: tmpfs with v1 hierarchies and an empty cgroup2.
    be = detect.detect_backend("/sys/fs/cgroup", "pyct-unit-unused")
    with open("/proc/self/mountinfo") as f:
        unified = any(" /sys/fs/cgroup - cgroup2 " in l for l in f)
    assert isinstance(be, v1.V1Backend) != unified
