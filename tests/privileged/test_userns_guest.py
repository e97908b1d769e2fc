"""Unprivileged guests on the real kernel: user namespaces mapped onto
ranges allocated in the database, idmapped image layers, masked /proc.

Guests are booted as the build path does it (``idranges.allocate``, then
``compute.specs.instance_spec``) on a real (SQLite) database, so the
ranges are the product's own allocation; the
driver, launcher and cgroups are the real ones from ``guest_tools``.
"""

from __future__ import annotations

import os
import uuid as uuid_mod

import pytest

from pyct_driver import states
from pyct_driver.compute.specs import instance_spec
from pyct_driver.db import idranges
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db.engine import Database
from pyct_driver.virt.container import ContainerDriver
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    IMAGE_ID, busybox_image, driver, guest_exec, init_pid, make_conf)

FLAVOR = {"vcpus": 1, "memory_mb": 128, "root_gb": 1, "swap": 0,
          "ephemeral_gb": 0, "extra_specs": {}}


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/pyct-userns.sqlite")
    models.Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _row(db: Database, privileged: bool = False) -> dict:
    uuid = str(uuid_mod.uuid4())
    flavor = dict(FLAVOR, extra_specs={"pyct:privileged": "true"}
                  if privileged else {})
    db_instances.create_many(db, [{
        "uuid": uuid, "name": f"pyct-{uuid[:8]}", "hostname": f"vm-{uuid[:8]}",
        "project_id": "p1", "user_id": "u1", "image_ref": IMAGE_ID,
        "flavor_id": "f1", "flavor": flavor, "vm_state": states.BUILDING,
        "power_state": states.NOSTATE, "metadata": {},
        "reservation_id": "r-pyct", "launch_index": 0}])
    return db_instances.get(db, uuid)


@pytest.fixture
def boot(driver, busybox_image, db):
    booted = []

    def _boot(privileged: bool = False):
        row = _row(db, privileged)
        if not privileged:  # as ComputeManager.build_spec does
            idranges.allocate(db, row["uuid"])
        spec = instance_spec(db, row)
        booted.append(spec)
        driver.spawn(spec)
        return row, spec
    yield _boot
    for spec in booted:
        driver.destroy(spec)


def _status_ids(pid: int) -> dict[str, list[int]]:
    with open(f"/proc/{pid}/status") as f:
        return {line.split()[0]: [int(v) for v in line.split()[1:]]
                for line in f if line.startswith(("Uid:", "Gid:"))}


def _map(pid: int, name: str = "uid_map") -> list[int]:
    with open(f"/proc/{pid}/{name}") as f:
        return [int(v) for v in f.read().split()]


def test_two_instances_get_disjoint_ranges_in_db_and_kernel(driver, boot,
                                                            db):
    (row_a, a), (row_b, b) = boot(), boot()
    ra = idranges.get(db, row_a["uuid"])
    rb = idranges.get(db, row_b["uuid"])
    assert ra == a.id_range and rb == b.id_range
    assert ra[1] == rb[1] == 65536
    assert ra[0] > 0 and rb[0] > 0
    assert ra[0] + ra[1] <= rb[0] or rb[0] + rb[1] <= ra[0]
    for spec, (start, size) in ((a, ra), (b, rb)):
        pid = init_pid(driver, spec.uuid)
        assert _map(pid) == [0, start, size]
        assert _map(pid, "gid_map") == [0, start, size]


def test_guest_root_is_the_range_start_on_the_host(driver, boot):
    _row_, spec = boot()
    start = spec.id_range[0]
    ids = _status_ids(init_pid(driver, spec.uuid))
    assert ids["Uid:"] == [start] * 4 and ids["Gid:"] == [start] * 4
    assert 0 not in ids["Uid:"]
    # inside it is root, and the image's root-owned files are its own
    out = guest_exec(driver, spec.uuid, ["/bin/sh", "-c",
                     "id -u; stat -c %u:%g /bin/busybox /etc/hostname"])
    assert out.stdout.split() == ["0", "0:0", "0:0"]


def test_file_made_by_guest_root_is_owned_by_range_start(driver, boot):
    _row_, spec = boot()
    start = spec.id_range[0]
    guest_exec(driver, spec.uuid, ["/bin/sh", "-c",
                                   "echo hi > /pyct-made; "
                                   "adduser -D -u 1000 pyctuser 2>/dev/null;"
                                   " touch /pyct-user; chown 1000:1000 "
                                   "/pyct-user"])
    upper = os.path.join(driver.roots.base_dir, "instances", spec.uuid,
                         "disk", "upper")
    st = os.stat(os.path.join(upper, "pyct-made"))
    assert (st.st_uid, st.st_gid) == (start, start)
    st = os.stat(os.path.join(upper, "pyct-user"))
    assert (st.st_uid, st.st_gid) == (start + 1000, start + 1000)
    # nothing on the instance's disk belongs to host root
    for dirpath, dirs, files in os.walk(upper):
        for name in dirs + files:
            assert os.lstat(os.path.join(dirpath, name)).st_uid != 0, name
    assert os.stat(upper).st_uid == start
    # the host-side instance directories stay closed to everyone else
    top = os.path.join(driver.roots.base_dir, "instances", spec.uuid)
    assert os.stat(top).st_mode & 0o777 == 0o700
    assert os.stat(driver.records.dir(spec.uuid)).st_mode & 0o777 == 0o700


def test_privileged_flavor_runs_without_user_namespace(driver, boot, db):
    row, spec = boot(privileged=True)
    assert spec.privileged and spec.id_range is None
    assert idranges.get(db, row["uuid"]) is None
    pid = init_pid(driver, spec.uuid)
    assert _map(pid) == [0, 0, 4294967295]
    assert _status_ids(pid)["Uid:"] == [0] * 4


def test_kernel_files_are_masked_and_read_only(driver, boot):
    _row_, spec = boot()
    script = ("cat /proc/keys | wc -c; cat /proc/timer_list | wc -c; "
              "ls /sys/firmware | wc -l; "
              "echo 1 > /proc/sys/vm/drop_caches 2>/dev/null && echo w || "
              "echo ro; "
              "echo 1 > /proc/sys/net/ipv4/ip_forward && "
              "cat /proc/sys/net/ipv4/ip_forward; "
              "echo b > /proc/sysrq-trigger 2>/dev/null && echo w || echo ro")
    out = guest_exec(driver, spec.uuid, ["/bin/sh", "-c", script])
    assert out.stdout.split() == ["0", "0", "0", "ro", "1", "ro"]
    # the guest's fds and cwd are its own: nothing of the host leaks in
    pid = init_pid(driver, spec.uuid)
    fds = {os.readlink(f"/proc/{pid}/fd/{fd}")
           for fd in os.listdir(f"/proc/{pid}/fd")}
    assert all(fd.startswith("/dev/") for fd in fds), fds
    assert os.readlink(f"/proc/{pid}/cwd") == os.readlink(
        f"/proc/{pid}/root")


def test_range_survives_restart_and_is_released_on_delete(driver, boot,
                                                          db):
    row, spec = boot()
    first = idranges.get(db, row["uuid"])
    # a restarted compute service: a fresh driver re-adopts the guest and
    # the database hands the same range back
    other = ContainerDriver(make_conf(driver.test_tmp, driver.cgroups.parent))
    again = instance_spec(db, db_instances.get(db, row["uuid"]))
    assert again.id_range == first
    assert other.get_info(again).power_state == states.RUNNING
    other.reboot(again, hard=True)
    pid = init_pid(other, spec.uuid)
    assert _map(pid) == [0, first[0], first[1]]
    # a spec naming another range is refused: the disk is owned by this one
    import dataclasses
    moved = dataclasses.replace(again, id_range=(first[0] + 65536, 65536))
    with pytest.raises(Exception, match="id range"):
        other.reboot(moved, hard=True)
    other.destroy(again)
    db_instances.soft_delete(db, row["uuid"])
    assert idranges.get(db, row["uuid"]) is None
    assert not idranges.release(db, row["uuid"])  # exactly once
