"""The config drive bound read-only into a guest root: the mount point is
made inside the root even when the guest planted symlinks, and goes away."""

from __future__ import annotations

import os

import pytest

from pyct_driver import exception
from pyct_driver.virt.rootfs import configdrive, inject


def mounts_under(path) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f
                if line.split()[1].startswith(str(path))]


@pytest.fixture
def roots(tmp_path):
    root = tmp_path / "pyct-root"
    (root / "mnt").mkdir(parents=True)
    canary = tmp_path / "pyct-hostdir"
    canary.mkdir()
    drive = tmp_path / "pyct-drive"
    yield root, canary, drive
    for target in sorted(mounts_under(tmp_path), reverse=True):
        os.system(f"umount -l {target!r}")  # noqa: S605 - cleanup only
    assert not mounts_under(tmp_path)


FILES = (("openstack/latest/meta_data.json", b'{"uuid": "x"}'),
         ("nocloud/meta-data", b'{"instance-id": "x"}'),
         ("nocloud/user-data", b""))


def test_attach_detach(roots):
    root, _, drive = roots
    configdrive.build(str(drive), FILES)
    configdrive.attach(str(root), str(drive))
    assert (root / "mnt/config/openstack/latest/meta_data.json"
            ).read_bytes() == b'{"uuid": "x"}'
    seed = root / "var/lib/cloud/seed/nocloud-net"
    assert (seed / "meta-data").read_bytes() == b'{"instance-id": "x"}'
    with pytest.raises(OSError):
        (seed / "new").write_text("guest write")
    assert len(mounts_under(root)) == 2
    configdrive.detach(str(root))
    configdrive.detach(str(root))  # idempotent
    assert not mounts_under(root)
    assert not (root / "mnt/config/openstack").exists()


def test_rebuild_replaces_stale_files(roots):
    _, _, drive = roots
    configdrive.build(str(drive), FILES + (("openstack/latest/x", b"1"),))
    configdrive.build(str(drive), FILES)
    assert not (drive / "openstack/latest/x").exists()
    with pytest.raises(exception.InvalidInput):
        configdrive.build(str(drive), (("../escape", b"x"),))


@pytest.mark.parametrize("link", ["abs", "dotdot"])
def test_symlinked_mount_point_stays_in_root(roots, link):
    root, canary, drive = roots
    target = str(canary) if link == "abs" else \
        "../../../../../../../.." + str(canary)
    (root / "mnt/config").symlink_to(target)
    configdrive.build(str(drive), FILES)
    # dangling inside the root: refused, nothing mounted anywhere
    with pytest.raises(exception.RootfsError):
        configdrive.attach(str(root), str(drive))
    assert not mounts_under(root) and not mounts_under(canary)
    inside = root / str(canary).lstrip("/")
    inside.mkdir(parents=True)
    configdrive.attach(str(root), str(drive))
    assert (inside / "openstack").is_dir()
    assert not mounts_under(canary) and not os.listdir(canary)
    configdrive.detach(str(root))
    assert not mounts_under(root)


def test_unbind_never_unmounts_the_root_itself(roots):
    root, _, _ = roots
    inject.unbind(str(root), "/mnt")
    inject.unbind(str(root), "/nonexistent/dir")
    assert root.is_dir()
