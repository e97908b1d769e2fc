"""End to end: resize and rebuild of real guests through the real
openstacksdk and openstack CLI.

One all-in-one (container driver, SQLite). ``vm1`` (m1.tiny, a port on
the project network) is resized to a bigger flavor: the guest's cgroup
limits change while its init keeps its pid, a revert puts them back, a
resize plus ``resize confirm`` keeps them. The compute service is
SIGKILLed with the database left where a resize in flight leaves it: on
restart the server is ACTIVE with the old flavor and the old limits, or
VERIFY_RESIZE with the new ones, never stuck. ``rebuild`` onto a second
image keeps the id and the addresses and the guest sees the new image.
"""

from __future__ import annotations

import os
import signal
import tarfile
import time

import pytest

from pyct_driver.db import instances, resizes
from pyct_driver.db.engine import Database
from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
from tests.privileged.e2e_fixtures import deployment, timing
from tests.privileged.test_debian_ssh import free_pool

MiB = 1 << 20


@pytest.fixture(scope="module")
def env():
    with deployment("resize", {"network": {"pool_cidr": free_pool()}}) as e:
        e.dep.manage("flavor", "create", "m1.wide", "--id", "7",
                     "--vcpus", "2", "--ram", "1024", "--disk", "2")
        e.dep.manage("flavor", "create", "m1.wider", "--id", "8",
                     "--vcpus", "2", "--ram", "1536", "--disk", "2")
        yield e


@pytest.fixture(scope="module")
def vm1(env):
    srv = env.cli_json("server", "create", "--image", "busybox", "--flavor",
                       "m1.tiny", "--nic", "auto", "--wait", "vm1")
    assert srv["status"] == "ACTIVE", srv
    return srv["id"]


def limits(env, uuid: str) -> tuple[int, int, int, str]:
    """(memory bytes, cpu shares, cfs quota, pids.max) of the guest."""
    return (int(env.cgroup("memory", uuid, "memory.limit_in_bytes")),
            int(env.cgroup("cpu", uuid, "cpu.shares")),
            int(env.cgroup("cpu", uuid, "cpu.cfs_quota_us")),
            env.cgroup("pids", uuid, "pids.max"))


def test_resize_revert_and_confirm_change_the_running_guest(env, vm1):
    conn = env.sdk
    tiny = limits(env, vm1)
    assert tiny[:2] == (512 * MiB, 1024)
    pid = env.init_pid(vm1)
    t0 = time.monotonic()
    conn.compute.resize_server(vm1, "7")
    env.wait_status(vm1, "VERIFY_RESIZE", timeout=30)
    timing("SDK resize -> VERIFY_RESIZE", time.monotonic() - t0)
    wide = limits(env, vm1)
    period = int(env.cgroup("cpu", vm1, "cpu.cfs_period_us"))
    assert wide[:3] == (1024 * MiB, 2048, 2 * period), wide
    assert env.init_pid(vm1) == pid and env.init_alive(vm1)
    assert env.server(vm1).flavor["original_name"] == "m1.wide"

    conn.compute.revert_server_resize(vm1)
    env.wait_status(vm1, "ACTIVE", timeout=30)
    assert limits(env, vm1) == tiny
    assert env.init_pid(vm1) == pid
    assert env.server(vm1).flavor["original_name"] == "m1.tiny"

    env.cli("server", "resize", "--flavor", "m1.wide", "--wait", "vm1")
    env.wait_status(vm1, "VERIFY_RESIZE")
    env.cli("server", "resize", "confirm", "vm1")
    env.wait_status(vm1, "ACTIVE", timeout=30)
    assert limits(env, vm1) == wide and env.init_pid(vm1) == pid
    # wrong state: confirming again is Nova's 409
    res = env.cli("server", "resize", "confirm", "vm1", check=False)
    assert res.returncode != 0 and "409" in res.stderr + res.stdout


def _crash_with(env, uuid: str, values: dict, status: str) -> None:
    """SIGKILL the service and leave the rows as a resize cut at that
    point leaves them (the guest's limits are the new flavor's)."""
    env.service.kill(signal.SIGKILL)
    db = Database(f"sqlite:///{env.tmp}/pyct.sqlite")
    change = resizes.current(db, uuid)
    instances.update(db, uuid, values)
    resizes.set_status(db, change["migration_uuid"], status)
    db.engine.dispose()
    env.start()


def test_compute_killed_mid_resize_comes_back_consistent(env, vm1):
    conn = env.sdk
    db_url = f"sqlite:///{env.tmp}/pyct.sqlite"
    wide, pid = limits(env, vm1), env.init_pid(vm1)  # m1.wide, confirmed
    conn.compute.resize_server(vm1, "8")
    env.wait_status(vm1, "VERIFY_RESIZE", timeout=30)
    wider = limits(env, vm1)
    assert wider[0] == 1536 * MiB
    db = Database(db_url)
    row, change = instances.get(db, vm1), resizes.current(db, vm1)
    db.engine.dispose()
    # cut after the new limits were applied, before the row moved on
    _crash_with(env, vm1, {"vm_state": "active",
                           "task_state": "resize_migrated",
                           "flavor": change["old_flavor"],
                           "flavor_id": change["old_flavor_id"]},
                "migrating")
    got = env.wait_status(vm1, "ACTIVE", timeout=60)
    assert got.flavor["original_name"] == "m1.wide"
    assert limits(env, vm1) == wide and env.init_pid(vm1) == pid
    # cut after the row took the new flavor: finished on restart
    env.sdk.compute.resize_server(vm1, "8")
    env.wait_status(vm1, "VERIFY_RESIZE", timeout=30)
    _crash_with(env, vm1, {"vm_state": "active",
                           "task_state": "resize_finish",
                           "flavor": row["flavor"], "flavor_id": "8"},
                "migrating")
    got = env.wait_status(vm1, "VERIFY_RESIZE", timeout=60)
    assert got.flavor["original_name"] == "m1.wider"
    assert limits(env, vm1) == wider and env.init_pid(vm1) == pid
    env.sdk.compute.confirm_server_resize(vm1)
    env.wait_status(vm1, "ACTIVE", timeout=30)


def test_rebuild_keeps_id_and_addresses_with_the_new_image(env, vm1):
    base = os.path.join(env.tmp, "busybox.tar")
    build_busybox_rootfs(base)
    marked = os.path.join(env.tmp, "marked.tar")
    with tarfile.open(base) as src, tarfile.open(marked, "w") as dst:
        for member in src.getmembers():
            dst.addfile(member, src.extractfile(member)
                        if member.isfile() else None)
        note = os.path.join(env.tmp, "note")
        with open(note, "w") as f:
            f.write("from the new image\n")
        dst.add(note, arcname="etc/rebuilt-from")
    env.dep.manage("image", "import", "marked", marked)
    before = env.server(vm1)
    old_pid = env.init_pid(vm1)
    env.exec(vm1, ["sh", "-c", "echo old > /root-was-here"])
    t0 = time.monotonic()
    env.cli("server", "rebuild", "--image", "marked", "--wait", "vm1")
    timing("CLI rebuild --wait -> ACTIVE", time.monotonic() - t0)
    after = env.server(vm1)
    assert after.id == before.id and after.status == "ACTIVE"
    assert after.addresses == before.addresses and after.addresses
    assert env.init_pid(vm1) != old_pid
    assert env.exec(vm1, ["cat", "/etc/rebuilt-from"]).stdout == \
        "from the new image\n"
    assert env.exec(vm1, ["ls", "/root-was-here"],
                    check=False).returncode != 0  # the old root is gone
