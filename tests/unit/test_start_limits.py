"""A guest's start computes its cgroup limits once: the flavor's limits
before the launcher forks into the group, and its disk quotas on the real
root device once the root is mounted, never on a placeholder device. The
container driver's ``_start`` runs against test doubles for the cgroup
backend, the launcher and the root (no root privileges needed)."""

from __future__ import annotations

import types

import pytest

from pyct_driver import extra_specs as specs_mod
from pyct_driver.virt import base, guest_config, ownership
from pyct_driver.virt.cgroups import base as cg_base
from pyct_driver.virt.container import ContainerDriver

DISK = {"quota:disk_read_bytes_sec": "1048576",
        "quota:disk_write_iops_sec": "100"}


class _Cgroups:
    def __init__(self) -> None:
        self.created: list[cg_base.CgroupLimits] = []

    def destroy(self, _uuid):
        pass

    def create(self, _uuid, limits):
        self.created.append(limits)

    def procs_files(self, _uuid):
        return ["/nonexistent/cgroup.procs"]


class _Records:
    def dir(self, uuid):
        return f"/nonexistent/{uuid}"

    def path(self, uuid, name):
        return f"/nonexistent/{uuid}/{name}"

    def save(self, _uuid, _record):
        pass


class _Begun:
    refused = False

    def wait(self):
        return None

    def close(self):
        pass


def _driver(tmp_path) -> tuple[ContainerDriver, _Cgroups]:
    drv = object.__new__(ContainerDriver)
    cgroups = _Cgroups()
    handle = types.SimpleNamespace(path=str(tmp_path), device="7:3")
    launcher = types.SimpleNamespace(
        start=lambda uuid: types.SimpleNamespace(pid=4242, start_time=1),
        release=lambda uuid: None)
    drv.__dict__.update(
        cgroups=cgroups, records=_Records(), launcher=launcher,
        default_pids_max=512, guest_limits=guest_config.GuestLimits(),
        _guard=__import__("threading").Lock(), _begun_userns={},
        images=types.SimpleNamespace(held_layers=lambda uuid: []))
    drv._begin = lambda spec: _Begun()
    drv._root_path = lambda uuid: str(tmp_path)
    drv._mount_root = lambda uuid, layers: handle
    return drv, cgroups


def _spec(extra: dict) -> base.InstanceSpec:
    return base.InstanceSpec(
        uuid="u-1", name="vm", hostname="vm", image_id="img",
        flavor=base.FlavorSpec(vcpus=2, memory_mb=256, root_gb=1,
                               extra_specs={"pyct:privileged": "true",
                                            **extra}),
        privileged=True)


@pytest.fixture
def counted(monkeypatch):
    """How often a flavor was turned into limits (each time reads its CPU
    weight once)."""
    calls = []
    real = specs_mod.cpu_shares_from

    def shares(specs):
        calls.append(dict(specs))
        return real(specs)
    monkeypatch.setattr(specs_mod, "cpu_shares_from", shares)
    monkeypatch.setattr(ownership, "inject_owned", lambda *a: None)
    return calls


def test_disk_quotas_come_once_with_the_real_device(tmp_path, counted,
                                                     monkeypatch):
    devices = []
    real = cg_base.IoLimit

    def io_limit(device, *args):
        devices.append(device)
        return real(device, *args)
    monkeypatch.setattr(cg_base, "IoLimit", io_limit)
    drv, cgroups = _driver(tmp_path)
    record = {"argv": ["/sbin/init"], "id_range": None}
    drv._start(_spec(DISK), record)
    assert len(counted) == 1, "the flavor's limits were computed again"
    assert devices == ["7:3"]
    early, full = cgroups.created
    assert early.io_limits == ()
    assert [io.device for io in full.io_limits] == ["7:3"]
    assert full == cg_base.limits_from_flavor(
        2, 256, 0, _spec(DISK).flavor.extra_specs, 512, "7:3")
    assert record["pid"] == 4242


def test_without_disk_quotas_the_group_is_made_once(tmp_path, counted):
    drv, cgroups = _driver(tmp_path)
    drv._start(_spec({}), {"argv": ["/sbin/init"], "id_range": None})
    assert len(counted) == 1
    assert [c.io_limits for c in cgroups.created] == [()]


def test_flavor_limits_leave_the_disk_out_but_check_it():
    spec = _spec(DISK)
    assert guest_config.flavor_limits(spec, 100).io_limits == ()
    bad = _spec({"quota:disk_read_bytes_sec": "lots"})
    with pytest.raises(Exception):
        guest_config.flavor_limits(bad, 100)
