"""End to end: snapshots, backups and shelving of real guests through the
real openstack CLI and openstacksdk.

One all-in-one (container driver, SQLite, ``shelved_offload_time`` 0,
``image_max_bytes`` 1 GiB). ``vm1`` (busybox, a port on the project
network) writes a marker owned by a guest user, 10 MiB of random data and
deletes a file of its image; ``server image create`` makes an image about
as big as the change; a server booted from it has all of that, and the
downloaded image imports and boots as an upload does. Backups rotate.
Shelving offloads at once leaving nothing of the guest on the host;
unshelve brings the data back at the same address. A SIGKILLed compute
service mid-snapshot comes back with the guest thawed and no image
active. Odd files are carried safely or refused cleanly.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest
from openstack import exceptions

from pyct_driver.db import catalog, instances
from pyct_driver.db.engine import Database
from pyct_driver.virt.rootfs.store import ImageStore
from tests.privileged.e2e_fixtures import deployment, timing
from tests.privileged.test_debian_ssh import fixed_ip, free_pool, pyct_links

MiB = 1 << 20


@pytest.fixture(scope="module")
def env():
    with deployment("snap", {"network": {"pool_cidr": free_pool()},
                             "DEFAULT": {"shelved_offload_time": 0},
                             "container": {"image_max_bytes": 1 << 30}}
                    ) as e:
        yield e


@pytest.fixture(scope="module")
def vm1(env):
    srv = env.cli_json("server", "create", "--image", "busybox", "--flavor",
                       "m1.tiny", "--nic", "auto", "--wait", "vm1")
    assert srv["status"] == "ACTIVE", srv
    env.exec(srv["id"], ["sh", "-c",
                         "echo hello > /root/marker && "
                         "chown 1000:1000 /root/marker && "
                         "dd if=/dev/urandom of=/data.bin bs=1M count=10 "
                         "2>/dev/null && rm /etc/group && sync"])
    return srv["id"]


def md5_in(env, uuid: str, path: str) -> str:
    return env.exec(uuid, ["md5sum", path]).stdout.split()[0]


def image(env, name: str) -> dict:
    return env.cli_json("image", "show", name)


def boot_from(env, image_ref: str, name: str) -> dict:
    srv = env.cli_json("server", "create", "--image", image_ref,
                       "--flavor", "m1.tiny", "--nic", "none", "--wait",
                       name)
    assert srv["status"] == "ACTIVE", srv
    return srv


def test_snapshot_has_the_change_only_and_boots(env, vm1):
    t0 = time.monotonic()
    env.cli("server", "image", "create", "--name", "snap1", "--wait", "vm1")
    timing("CLI server image create --wait (10 MiB change)",
           time.monotonic() - t0)
    snap = image(env, "snap1")
    assert snap["status"] == "active"
    props = snap["properties"]
    assert props["image_type"] == "snapshot"
    assert props["instance_uuid"] == vm1
    assert props["base_image_ref"] == image(env, "busybox")["id"]
    # about the 10 MiB changed, not the base image
    assert 10 * MiB <= snap["size"] < 11 * MiB, snap["size"]
    assert env.server(vm1).status == "ACTIVE" and env.init_alive(vm1)
    vm2 = boot_from(env, "snap1", "vm2")["id"]
    assert env.exec(vm2, ["cat", "/root/marker"]).stdout == "hello\n"
    # owners as the guest saw them, not the host-shifted ids
    assert env.exec(vm2, ["stat", "-c", "%u:%g", "/root/marker"]
                    ).stdout.strip() == "1000:1000"
    assert md5_in(env, vm2, "/data.bin") == md5_in(env, vm1, "/data.bin")
    assert env.exec(vm2, ["ls", "/etc/group"], check=False).returncode != 0
    assert env.server(vm2).image["id"] == snap["id"]


def test_snapshot_of_a_paused_and_a_stopped_guest(env, vm1):
    env.cli("server", "pause", "vm1")
    env.wait_status(vm1, "PAUSED")
    env.cli("server", "image", "create", "--name", "paused", "--wait",
            "vm1")
    # still paused: the capture did not thaw a guest it had not frozen
    assert env.wait_status(vm1, "PAUSED").task_state is None
    assert env.cgroup("freezer", vm1, "freezer.state") == "FROZEN"
    env.cli("server", "unpause", "vm1")
    env.wait_status(vm1, "ACTIVE")
    vm5 = env.cli_json("server", "create", "--image", "busybox", "--flavor",
                       "m1.tiny", "--nic", "none", "--wait", "vm5")["id"]
    env.exec(vm5, ["sh", "-c", "echo stopped > /root/was && sync"])
    env.cli("server", "stop", "vm5")
    env.wait_status(vm5, "SHUTOFF")
    env.cli("server", "image", "create", "--name", "stopped", "--wait",
            "vm5")
    assert env.wait_status(vm5, "SHUTOFF").task_state is None
    assert image(env, "stopped")["size"] < MiB
    vm6 = boot_from(env, "stopped", "vm6")["id"]
    assert env.exec(vm6, ["cat", "/root/was"]).stdout == "stopped\n"
    env.cli("server", "delete", "--wait", "vm5", "vm6")
    env.cli("image", "delete", "paused", "stopped")


def test_downloaded_snapshot_imports_and_boots(env, vm1):
    snap = env.sdk.image.find_image("snap1")
    path = os.path.join(env.tmp, "snap1.tar")
    with open(path, "wb") as f:
        env.sdk.image.download_image(snap, output=f)
    assert os.path.getsize(path) > 10 * MiB
    # a host that never saw the base: a fresh store takes every layer
    fresh = ImageStore(os.path.join(env.tmp, "fresh-host"), 1 << 30, 10000)
    fresh.import_image("copy", path)
    top = fresh.layers("copy")[-1]
    assert open(os.path.join(top, "root", "marker")).read() == "hello\n"
    assert os.stat(os.path.join(top, "root", "marker")).st_uid == 1000
    assert os.path.getsize(os.path.join(top, "data.bin")) == 10 * MiB
    assert len(fresh.layers("copy")) == 2
    env.dep.manage("image", "import", "snapcopy", path)
    vm3 = boot_from(env, "snapcopy", "vm3")["id"]
    assert env.exec(vm3, ["cat", "/root/marker"]).stdout == "hello\n"
    assert md5_in(env, vm3, "/data.bin") == md5_in(env, vm1, "/data.bin")
    env.cli("server", "delete", "--wait", "vm3")


def test_backup_rotation(env, vm1):
    for n in range(3):
        env.cli("server", "backup", "create", "--name", f"bk{n}",
                "--type", "daily", "--rotate", "2", "--wait", "vm1")
    names = {i["Name"] for i in env.cli_json("image", "list")}
    assert {"bk1", "bk2"} <= names and "bk0" not in names
    res = env.cli("server", "backup", "create", "--name", "bad", "--type",
                  "daily", "--rotate=-1", "vm1", check=False)
    assert res.returncode != 0


def test_shelve_offload_frees_the_host_and_unshelve_restores(env, vm1):
    ip = fixed_ip(env.cli_json("server", "show", "vm1"))
    port = env.sdk.network.ports(device_id=vm1)
    port_ids = [p.id for p in port]
    assert port_ids
    env.record(vm1)  # remember the init, so leftovers can check it died
    env.cli("server", "shelve", "vm1")
    env.wait_status(vm1, "SHELVED_OFFLOADED", timeout=60)
    row = env.cli_json("server", "show", "vm1")
    assert not row.get("OS-EXT-SRV-ATTR:host")
    assert env.leftovers(vm1) == []
    assert not [link for link in pyct_links()
                if any(p[:11] in link for p in port_ids)]
    # the ports and addresses stay
    assert [p.id for p in env.sdk.network.ports(device_id=vm1)] == port_ids
    t0 = time.monotonic()
    env.cli("server", "unshelve", "vm1")
    env.wait_status(vm1, "ACTIVE", timeout=60)
    timing("CLI unshelve -> ACTIVE", time.monotonic() - t0)
    assert fixed_ip(env.cli_json("server", "show", "vm1")) == ip
    assert env.exec(vm1, ["cat", "/root/marker"]).stdout == "hello\n"
    assert "vm1-shelved" not in {i["Name"] for i in
                                 env.cli_json("image", "list")}
    # the CLI skips an ACTIVE server itself; the API says 409
    with pytest.raises(exceptions.ConflictException):
        env.sdk.compute.unshelve_server(vm1)


def test_compute_killed_mid_snapshot_comes_back_thawed(env, vm1):
    # enough data that the capture is still under way when we kill
    env.exec(vm1, ["sh", "-c", "dd if=/dev/urandom of=/big.bin bs=1M "
                   "count=300 2>/dev/null && sync"], timeout=120)
    pid = env.init_pid(vm1)
    env.sdk.compute.create_server_image(vm1, "doomed")
    db = Database(f"sqlite:///{env.tmp}/pyct.sqlite")
    try:
        deadline = time.monotonic() + 30
        while instances.get(db, vm1)["task_state"] not in (
                "image_pending_upload", "image_uploading"):
            assert time.monotonic() < deadline
            time.sleep(0.01)
        env.service.kill(signal.SIGKILL)
        env.start()
        got = env.wait_status(vm1, "ACTIVE", timeout=60)
        assert got.task_state is None
        assert env.init_pid(vm1) == pid and env.init_alive(vm1)
        assert env.cgroup("freezer", vm1, "freezer.state") == "THAWED"
        assert not [i for i in catalog.image_list(db)
                    if i["name"] == "doomed" and i["status"] == "active"]
    finally:
        db.engine.dispose()
    env.exec(vm1, ["rm", "/big.bin"])


def test_odd_files_are_carried_safely_or_refused(env, vm1):
    env.exec(vm1, ["sh", "-c",
                   "cp /bin/busybox /root/suid && chmod 4755 /root/suid && "
                   "mkfifo /root/fifo && ln -s /etc/shadow /root/shadow && "
                   "echo x > /root/a && ln /root/a /root/b && "
                   "dd if=/dev/zero of=/root/sparse bs=1 count=0 seek=2G"])
    # a sparse file past the image limit: refused, server untouched
    env.sdk.compute.create_server_image(vm1, "too-big")
    deadline = time.monotonic() + 60
    while "too-big" in {i["Name"] for i in env.cli_json("image", "list")}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    assert env.wait_status(vm1, "ACTIVE").task_state is None
    env.exec(vm1, ["rm", "/root/sparse"])
    env.exec(vm1, ["touch", "/root/.wh.sneaky"])
    env.sdk.compute.create_server_image(vm1, "whiteout-name")
    deadline = time.monotonic() + 60
    while "whiteout-name" in {i["Name"] for i in
                              env.cli_json("image", "list")}:
        assert time.monotonic() < deadline
        time.sleep(0.2)
    env.wait_status(vm1, "ACTIVE")
    env.exec(vm1, ["rm", "/root/.wh.sneaky"])
    env.cli("server", "image", "create", "--name", "odd", "--wait", "vm1")
    vm4 = boot_from(env, "odd", "vm4")["id"]
    out = env.exec(vm4, ["sh", "-c", "stat -c '%a %h' /root/suid /root/a; "
                         "readlink /root/shadow; ls /root/fifo || true"],
                   check=False).stdout.split("\n")
    assert out[0] == "755 1"  # the setuid bit dropped
    assert out[1] == "644 2"  # the hard link kept
    assert out[2] == "/etc/shadow"  # a link, resolved in the guest only
    host = subprocess.run(["stat", "-c", "%a", "/etc/shadow"],
                          capture_output=True, text=True).stdout.strip()
    assert host in ("640", "600", "0")
    env.cli("server", "delete", "--wait", "vm4")
