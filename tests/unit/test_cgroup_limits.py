"""Flavor → CgroupLimits mapping (design.md §4), backend-neutral."""

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import base

MiB = 1024 * 1024


def limits(vcpus=2, ram=512, swap=0, specs=None, dev=None, pids=1024):
    return base.limits_from_flavor(vcpus, ram, swap, specs or {}, pids, dev)


def test_defaults():
    got = limits(vcpus=2, ram=512, swap=128)
    assert got == base.CgroupLimits(
        cpu_shares=2048, cpu_quota_us=200000, cpu_period_us=100000,
        memory_bytes=512 * MiB, swap_bytes=128 * MiB, pids_max=1024,
        io_limits=())


def test_shares_override_and_cap_follows_period():
    got = limits(vcpus=4, specs={"quota:cpu_shares": "100",
                                 "quota:cpu_period": "20000"})
    assert got.cpu_shares == 100
    assert got.cpu_period_us == 20000
    assert got.cpu_quota_us == 4 * 20000


def test_quota_override_and_no_cap():
    assert limits(specs={"quota:cpu_quota": "50000"}).cpu_quota_us == 50000
    assert limits(specs={"quota:cpu_quota": "-1"}).cpu_quota_us is None


def test_many_vcpus_clamped_to_kernel_max_shares():
    assert limits(vcpus=512).cpu_shares == 262144


def test_pids_from_spec():
    assert limits(specs={"pyct:pids_max": "64"}).pids_max == 64
    assert limits(pids=777).pids_max == 777


def test_disk_limits_on_device():
    got = limits(specs={"quota:disk_write_bytes_sec": "5242880",
                        "quota:disk_read_iops_sec": "300"}, dev="7:3")
    assert got.io_limits == (base.IoLimit("7:3", None, 5242880, 300, None),)
    got = limits(specs={"quota:disk_total_bytes_sec": "1000"}, dev="8:0")
    assert got.io_limits == (base.IoLimit("8:0", 1000, 1000, None, None),)


def test_disk_limits_without_device_refused():
    with pytest.raises(exception.CgroupError):
        limits(specs={"quota:disk_write_bytes_sec": "1"})
    with pytest.raises(exception.CgroupError):
        limits(specs={"quota:disk_write_bytes_sec": "1"}, dev="/dev/sda")


def test_no_disk_limits_ignore_device():
    assert limits(dev="8:0").io_limits == ()


def test_invalid_specs_refused():
    with pytest.raises(exception.InvalidExtraSpec):
        limits(specs={"quota:cpu_quota": "5"})
    with pytest.raises(exception.InvalidExtraSpec):
        limits(specs={"pyct:unknown": "5"})


@pytest.mark.parametrize("args", [(0, 512, 0), (1, 0, 0), (1, 512, -1)])
def test_bad_flavor_refused(args):
    with pytest.raises(exception.InvalidInput):
        base.limits_from_flavor(*args, {}, 1024, None)


def test_limits_are_frozen():
    got = limits()
    with pytest.raises(AttributeError):
        got.cpu_shares = 1


@pytest.mark.parametrize("name", ["", ".", "..", "a/b", "cgroup.procs"])
def test_check_name(name):
    with pytest.raises(exception.CgroupError):
        base.check_name(name)
