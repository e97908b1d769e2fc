"""Overlay roots and whiteout layers on the real kernel (needs root)."""

from __future__ import annotations

import errno
import os
import statistics
import subprocess
import threading
import time

import pytest

from pyct_driver import exception
from pyct_driver.virt.kernel import loop
from pyct_driver.virt.rootfs import busybox, disk, overlay, store
from tests.fixtures import rootfs_images as imgs
from tests.waiting import wait_for


def _mounted(path: str) -> bool:
    with open("/proc/self/mountinfo") as f:
        return any(line.split()[4].startswith(path) for line in f)


@pytest.fixture
def env(tmp_path):
    base = tmp_path / "pyct-rootfs"
    st = store.ImageStore(str(base / "store"), 1 << 30, 100_000)
    rm = overlay.RootManager(str(base / "roots"))
    yield st, rm, base
    for uuid in rm.list_instances():
        rm.remove(uuid)
    assert not _mounted(str(base))


def _wait_loop_gone(path: str) -> None:
    """Autoclear frees the loop device shortly after its last user."""
    wait_for(lambda: path not in subprocess.run(
        ["losetup", "-a"], capture_output=True, text=True).stdout,
        2.0, what=f"the loop device of {path} to be freed")


@pytest.fixture
def bb_layers(env, tmp_path):
    st, _, _ = env
    tar = tmp_path / "bb.tar"
    busybox.build_busybox_rootfs(str(tar))
    st.import_image("bb", str(tar))
    return st.layers("bb")


def test_busybox_rootfs_is_deterministic(tmp_path):
    a, b = tmp_path / "a.tar", tmp_path / "b.tar"
    busybox.build_busybox_rootfs(str(a))
    busybox.build_busybox_rootfs(str(b))
    assert a.read_bytes() == b.read_bytes()


def test_create_mount_write_remount(env, bb_layers):
    _, rm, base = env
    rm.create("pyct-i1", 1)
    h = rm.mount("pyct-i1", bb_layers)
    assert h.device and h.device.startswith("7:")
    assert rm.is_mounted("pyct-i1")
    assert os.path.islink(os.path.join(h.path, "bin/sh"))
    with open(os.path.join(h.path, "root/note"), "w") as f:
        f.write("kept")
    assert rm.mount("pyct-i1", bb_layers) == h  # idempotent
    rm.unmount("pyct-i1")
    rm.unmount("pyct-i1")
    assert not rm.is_mounted("pyct-i1")
    _wait_loop_gone(str(base))
    h2 = rm.mount("pyct-i1", bb_layers)
    assert open(os.path.join(h2.path, "root/note")).read() == "kept"
    # the layer itself is untouched
    assert not os.path.exists(os.path.join(bb_layers[0], "root/note"))


def test_remount_waits_for_a_namespace_still_holding_the_disk(env,
                                                              bb_layers):
    """A guest's mount namespace that outlives the host's unmount (a dying
    guest; a rescued one, its own root bound at /mnt) keeps the disk's
    ext4 alive: the next mount must not attach a second loop device beside
    it (two ext4s on one image corrupt it) but wait for the namespace."""
    _, rm, base = env
    rm.create("pyct-i1", 1)
    rm.mount("pyct-i1", bb_layers)
    image = str(base / "roots" / "instances" / "pyct-i1" / "disk.img")
    ours = os.readlink("/proc/self/ns/mnt")
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private",
                               "sleep", "2"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/mnt") != ours,
                 5.0, what="the holder's mount namespace")
        rm.unmount("pyct-i1")
        assert len(loop.holders(image)) == 1  # the namespace holds it
        h = rm.mount("pyct-i1", bb_layers)
        assert holder.poll() is not None  # mounted once it was gone
        assert len(loop.holders(image)) == 1
        assert os.path.islink(os.path.join(h.path, "bin/sh"))
    finally:
        holder.kill()
        holder.wait()


def test_two_instances_share_one_layer(env, bb_layers):
    _, rm, _ = env
    for uuid in ("pyct-a", "pyct-b"):
        rm.create(uuid, 0)
    ha = rm.mount("pyct-a", bb_layers)
    hb = rm.mount("pyct-b", bb_layers)
    assert ha.device is None
    ino = lambda p: os.stat(os.path.join(p, "bin/busybox")).st_ino  # noqa
    assert ino(ha.path) == ino(hb.path) == ino(bb_layers[0])
    with open(os.path.join(ha.path, "etc/hostname"), "w") as f:
        f.write("a\n")
    assert open(os.path.join(hb.path, "etc/hostname")).read() == \
        "pyct-guest\n"


def test_write_past_size_is_enospc(env, bb_layers):
    _, rm, _ = env
    rm.create("pyct-full", 1)
    h = rm.mount("pyct-full", bb_layers)
    chunk = b"\0" * (8 << 20)
    with pytest.raises(OSError) as err:
        with open(os.path.join(h.path, "big"), "wb") as f:
            for _ in range(200):  # 1.6 GiB > 1 GiB
                f.write(chunk)
                f.flush()
            os.fsync(f.fileno())
    assert err.value.errno == errno.ENOSPC


def test_remove_leaves_nothing(env, bb_layers):
    _, rm, base = env
    rm.create("pyct-gone", 1)
    rm.mount("pyct-gone", bb_layers)
    rm.remove("pyct-gone")
    rm.remove("pyct-gone")
    assert "pyct-gone" not in rm.list_instances()
    assert not _mounted(str(base))
    _wait_loop_gone(str(base))
    assert not os.path.exists(os.path.join(rm.base_dir, "instances",
                                           "pyct-gone"))
    with pytest.raises(exception.Duplicate):
        rm.create("pyct-dup", 0)
        rm.create("pyct-dup", 0)


def test_many_layers_use_new_mount_api(env, tmp_path):
    st, rm, _ = env
    layers = [imgs.layer_tar({f"f{i}": str(i).encode()}) for i in range(60)]
    imgs.oci_layout(str(tmp_path / "many"), layers, gzip_layers=False)
    st.import_image("many", str(tmp_path / "many"))
    paths = st.layers("many")
    assert len(",".join(paths)) > overlay._MOUNT_DATA_MAX
    rm.create("pyct-many", 0)
    h = rm.mount("pyct-many", paths)
    assert open(os.path.join(h.path, "f59")).read() == "59"


def test_whiteouts_in_oci_and_docker_save(env, tmp_path):
    st, rm, _ = env
    base = imgs.layer_tar({"etc": None, "etc/gone": b"x", "etc/kept": b"k",
                           "opq": None, "opq/old": b"o"})
    top = imgs.layer_tar({"etc/.wh.gone": b"", "opq/.wh..wh..opq": b"",
                          "opq/new": b"n"})
    imgs.oci_layout(str(tmp_path / "oci"), [base, top])
    imgs.docker_save(str(tmp_path / "save.tar"), [base, top])
    st.import_image("oci", str(tmp_path / "oci"))
    st.import_image("dk", str(tmp_path / "save.tar"))
    upper = st.layers("oci")[1]
    wh = os.lstat(os.path.join(upper, "etc/gone"))
    assert os.major(wh.st_rdev) == 0 and os.minor(wh.st_rdev) == 0
    assert os.getxattr(os.path.join(upper, "opq"),
                       "trusted.overlay.opaque") == b"y"
    for image in ("oci", "dk"):
        rm.create(f"pyct-{image}", 0)
        h = rm.mount(f"pyct-{image}", st.layers(image))
        assert sorted(os.listdir(os.path.join(h.path, "etc"))) == ["kept"]
        assert os.listdir(os.path.join(h.path, "opq")) == ["new"]


def test_create_mount_timing(env, bb_layers):
    _, rm, _ = env
    creates, mounts, zero = [], [], []
    for i in range(20):
        t0 = time.perf_counter()
        rm.create(f"pyct-t{i}", 10)
        t1 = time.perf_counter()
        rm.mount(f"pyct-t{i}", bb_layers)
        t2 = time.perf_counter()
        rm.create(f"pyct-z{i}", 0)
        rm.mount(f"pyct-z{i}", bb_layers)
        t3 = time.perf_counter()
        creates.append(t1 - t0)
        mounts.append(t2 - t1)
        zero.append(t3 - t2)
        # each disk holds its 10 GiB (preallocated): one at a time
        rm.remove(f"pyct-t{i}")
    print(f"\nrootfs timing (median of 20): create(10 GiB ext4, "
          f"preallocated) "
          f"{statistics.median(creates) * 1e3:.1f} ms, mount(loop+ext4+"
          f"overlay) {statistics.median(mounts) * 1e3:.1f} ms, "
          f"create+mount size 0 {statistics.median(zero) * 1e3:.1f} ms")
    assert statistics.median(mounts) < 0.5


def test_mount_tops_up_a_sparse_disk(env, bb_layers):
    _, rm, base = env
    # a disk of an older pyct (or with a hole punched): sparse
    overlay.RootManager(rm.base_dir, preallocate=False).create("pyct-old", 1)
    image = os.path.join(rm.base_dir, "instances", "pyct-old", "disk.img")
    assert disk.allocated_bytes(image) < (1 << 30)
    rm.mount("pyct-old", bb_layers)
    assert disk.allocated_bytes(image) >= 1 << 30
    assert rm.allocated_bytes() == disk.allocated_bytes(image)


def test_enospc_from_fallocate_leaves_no_disk(tmp_path, monkeypatch):
    # The free-space check passed, then a concurrent writer took the
    # space (modelled by skipping the check): the kernel's ENOSPC becomes
    # the same clean refusal, with nothing left behind.
    small = tmp_path / "pyct-small"
    small.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=48m", "tmpfs",
                    str(small)], check=True)
    try:
        rm = overlay.RootManager(str(small / "roots"))
        disk.ensure_template(os.path.join(rm.base_dir, "templates"), 1)
        free = os.statvfs(str(small)).f_bavail
        monkeypatch.setattr(disk, "_check_room", lambda *args: None)
        with pytest.raises(exception.RootfsError,
                           match="not enough free disk space"):
            rm.create("pyct-big", 1)
        assert rm.list_instances() == []
        assert os.statvfs(str(small)).f_bavail == free
    finally:
        subprocess.run(["umount", str(small)], check=True)


def test_remount_waits_for_a_lazily_unmounted_disk(env, bb_layers):
    """A process still inside the root makes the unmount a detach; the
    next mount waits until that file system is gone, so the disk is never
    mounted twice (the old one's unwritten changes would be lost)."""
    _, rm, base = env
    rm.create("pyct-i5", 1)
    h = rm.mount("pyct-i5", bb_layers)
    holder = subprocess.Popen(["sleep", "60"], cwd=h.path)
    try:
        rm.unmount("pyct-i5")
        assert not rm.is_mounted("pyct-i5")
        done = []
        remount = threading.Thread(
            target=lambda: done.append(rm.mount("pyct-i5", bb_layers)))
        remount.start()
        remount.join(0.5)
        assert not done  # the old file system is still alive
    finally:
        holder.kill()
        holder.wait()
    remount.join(10)
    assert done and rm.is_mounted("pyct-i5")
    assert os.path.islink(os.path.join(done[0].path, "bin/sh"))
    rm.unmount("pyct-i5")  # nothing busy now: no detach, no wait


def test_a_restarted_service_still_waits_for_the_last_loop_device(
        env, bb_layers):
    """The record of the disk's last loop device is on disk: a new root
    manager (a compute service restarted while the old file system is
    still alive in a guest's namespace) waits for it too."""
    _, rm, base = env
    rm.create("pyct-i6", 1)
    rm.mount("pyct-i6", bb_layers)
    top = base / "roots" / "instances" / "pyct-i6"
    image = str(top / "disk.img")
    minor = int((top / "disk.loop").read_text())
    assert loop.holders(image) == [f"loop{minor}"]
    ours = os.readlink("/proc/self/ns/mnt")
    holder = subprocess.Popen(["unshare", "-m", "--propagation", "private",
                               "sleep", "2"])
    try:
        wait_for(lambda: os.readlink(f"/proc/{holder.pid}/ns/mnt") != ours,
                 5.0, what="the holder's mount namespace")
        rm.unmount("pyct-i6")
        fresh = type(rm)(rm.base_dir, userns_for=rm.userns_for,
                         preallocate=rm.preallocate,
                         reserved_bytes=rm.reserved_bytes)
        fresh.mount("pyct-i6", bb_layers)
        assert holder.poll() is not None  # mounted once it was gone
        assert len(loop.holders(image)) == 1
    finally:
        holder.kill()
        holder.wait()
        rm.unmount("pyct-i6")
