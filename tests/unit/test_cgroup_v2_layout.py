"""V2Backend against a plain-directory layout that mimics a cgroup2 mount."""

import os

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import detect
from pyct_driver.virt.cgroups import v2

MiB = 1024 * 1024


def put(path, text):
    with open(path, "w") as f:
        f.write(text)


def get(path):
    with open(path) as f:
        return f.read()


@pytest.fixture
def root(tmp_path):
    put(tmp_path / "cgroup.controllers", "cpuset cpu io memory hugetlb pids\n")
    put(tmp_path / "cgroup.subtree_control", "memory\n")
    parent = tmp_path / "pyct"
    parent.mkdir()
    put(parent / "cgroup.controllers", "cpu io memory pids\n")
    put(parent / "cgroup.subtree_control", "")
    put(parent / "memory.swap.max", "max\n")
    return tmp_path


def flavor(vcpus=2, ram=512, swap=64, specs=None, dev="8:0"):
    return base.limits_from_flavor(vcpus, ram, swap, specs or {}, 1024, dev)


def test_create_writes_limits(root):
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor(specs={"quota:disk_write_bytes_sec": "5242880",
                                  "quota:disk_read_iops_sec": "100"}))
    g = root / "pyct" / "i1"
    assert get(g / "cpu.weight") == "79"  # 2048 shares
    assert get(g / "cpu.max") == "200000 100000"
    assert get(g / "memory.max") == str(512 * MiB)
    assert get(g / "memory.swap.max") == str(64 * MiB)
    assert get(g / "pids.max") == "1024"
    assert get(g / "io.max") == "8:0 rbps=max wbps=5242880 riops=100 wiops=max"
    # Controllers enabled from the root down; "memory" was already on at root.
    assert get(root / "cgroup.subtree_control") == "+cpu +pids +io"
    assert (get(root / "pyct" / "cgroup.subtree_control")
            == "+cpu +memory +pids +io")
    assert be.procs_files("i1") == [str(g / "cgroup.procs")]
    assert be.exists("i1") and be.list_groups() == ["i1"]


def test_no_cap_and_no_io(root):
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor(specs={"quota:cpu_quota": "-1",
                                  "quota:cpu_period": "50000"}))
    g = root / "pyct" / "i1"
    assert get(g / "cpu.max") == "max 50000"
    assert not (g / "io.max").exists()
    # io is only required (and enabled) when the flavor throttles disks.
    assert "io" not in get(root / "pyct" / "cgroup.subtree_control")


@pytest.mark.parametrize("shares,weight", [
    (2, 1), (3, 1), (1024, 39), (2048, 79), (262144, 10000), (100000, 3815)])
def test_weight_conversion(shares, weight):
    assert v2.shares_to_weight(shares) == weight


def test_weight_clamped():
    assert v2.shares_to_weight(0) == 1
    assert v2.shares_to_weight(10 ** 9) == 10000


def test_reapply_lifts_old_io_device(root):
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor(specs={"quota:disk_total_iops_sec": "10"},
                           dev="7:1"))
    g = root / "pyct" / "i1"
    assert get(g / "io.max") == "7:1 rbps=max wbps=max riops=10 wiops=10"
    be.create("i1", flavor(ram=1024))  # resize without disk quotas
    assert get(g / "io.max") == "7:1 rbps=max wbps=max riops=max wiops=max"
    assert get(g / "memory.max") == str(1024 * MiB)


def test_no_swap_accounting(root):
    os.unlink(root / "pyct" / "memory.swap.max")
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor(swap=128))
    assert not (root / "pyct" / "i1" / "memory.swap.max").exists()


def test_missing_controller_refused_and_nothing_left(root):
    put(root / "pyct" / "cgroup.controllers", "cpu memory\n")
    be = v2.V2Backend(str(root), "pyct")
    with pytest.raises(exception.CgroupError, match="pids"):
        be.create("i1", flavor())
    assert not be.exists("i1")


def test_failed_apply_removes_new_group(root):
    be = v2.V2Backend(str(root), "pyct")

    def boom(path, limits):
        raise exception.CgroupError(reason="injected")
    be._apply = boom
    (root / "pyct" / "x").mkdir()  # an unrelated group survives
    with pytest.raises(exception.CgroupError, match="injected"):
        be.create("i1", flavor())
    assert be.list_groups() == ["x"]


def test_failed_reapply_keeps_existing_group(root):
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor())

    def boom(path, limits):
        raise exception.CgroupError(reason="injected")
    be._apply = boom
    with pytest.raises(exception.CgroupError):
        be.create("i1", flavor())
    assert be.exists("i1")


def test_freeze_thaw_and_stats(root):
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor())
    g = root / "pyct" / "i1"
    put(g / "cgroup.events", "populated 1\nfrozen 1\n")
    be.freeze("i1")
    assert get(g / "cgroup.freeze") == "1"
    assert be.is_frozen("i1")
    be.thaw("i1")
    assert get(g / "cgroup.freeze") == "0"
    put(g / "cgroup.events", "populated 1\nfrozen 0\n")
    assert not be.is_frozen("i1")
    with pytest.raises(exception.CgroupError, match="did not freeze"):
        be.freeze("i1", timeout=0.05)
    put(g / "memory.current", "4096\n")
    put(g / "cpu.stat", "usage_usec 1500\nuser_usec 1000\nsystem_usec 500\n")
    assert be.stats("i1") == base.CgroupStats(4096, 1500000)


def test_pids_recursive_kill_and_destroy(root):
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor())
    g = root / "pyct" / "i1"
    (g / "init.scope").mkdir()  # a guest's own sub-group
    put(g / "cgroup.procs", "")
    put(g / "init.scope" / "cgroup.procs", "")
    assert be.pids("i1") == []
    put(g / "cgroup.kill", "")
    be.kill_all("i1")  # empty: returns without writing
    assert get(g / "cgroup.kill") == ""
    for d in (g / "init.scope", g):
        for f in os.listdir(d):
            if os.path.isfile(d / f):
                os.unlink(d / f)
    be.destroy("i1")
    assert not g.exists()
    be.destroy("i1")  # idempotent


def test_detect(root, tmp_path_factory):
    assert isinstance(detect.detect_backend(str(root), "pyct"), v2.V2Backend)


def test_not_v2(tmp_path):
    with pytest.raises(exception.CgroupError):
        v2.V2Backend(str(tmp_path), "pyct")


def test_bad_names(root):
    be = v2.V2Backend(str(root), "pyct")
    for name in ("../x", "", "cgroup.kill"):
        with pytest.raises(exception.CgroupError):
            be.create(name, flavor())


def test_exec_goes_to_a_leaf_of_the_guest_group(root):
    """v2 refuses processes in a group whose subtree_control is non-empty
    (EBUSY), and a process in a guest's group would stop its systemd from
    enabling controllers for its sub-groups: an exec'd process goes to a
    host-made leaf, made once and reused."""
    be = v2.V2Backend(str(root), "pyct")
    be.create("i1", flavor())
    leaf = root / "pyct" / "i1" / v2.EXEC_LEAF
    assert be.exec_procs_files("i1") == [str(leaf / "cgroup.procs")]
    assert leaf.is_dir()
    assert be.exec_procs_files("i1") == [str(leaf / "cgroup.procs")]
    with pytest.raises(exception.CgroupError):
        be.exec_procs_files("gone")


def test_a_group_removed_while_its_pids_are_read_has_none(monkeypatch):
    """A guest's systemd removes a service's group between our open and
    read of its cgroup.procs: the kernel answers ENODEV, which is a group
    with no processes, not an error (the v2 lane's soft reboot met it)."""
    import errno as errno_mod

    from pyct_driver.virt.cgroups import base as cg_base

    def gone(*_args, **_kwargs):
        raise OSError(errno_mod.ENODEV, "No such device")

    monkeypatch.setattr(cg_base, "open", gone, raising=False)
    assert cg_base.read_pids("/sys/fs/cgroup/x/cgroup.procs") == []

    def denied(*_args, **_kwargs):
        raise PermissionError(errno_mod.EACCES, "Permission denied")

    monkeypatch.setattr(cg_base, "open", denied, raising=False)
    with pytest.raises(Exception, match="cannot read"):
        cg_base.read_pids("/sys/fs/cgroup/x/cgroup.procs")
