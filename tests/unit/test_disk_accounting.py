"""Disk a host reports for instances, and preallocated instance disks.

On the real file system under pytest's tmp dir (no root needed: the disks
are files formatted by mkfs.ext4, never mounted). The host's disk figure
is free space for unprivileged writers (``f_bavail``) plus what instance
disks already hold -- not the file system's size -- and a preallocated
disk holds its full size from the start, so making one moves space from
"free" to "held" and leaves the figure where it was.
"""

from __future__ import annotations

import os
import subprocess

import pytest

from pyct_driver import exception
from pyct_driver.virt.host_resources import host_resources
from pyct_driver.virt.rootfs import disk

GIB = 1 << 30


def _expected_gb(path: str, held: int) -> int:
    st = os.statvfs(path)
    return (st.f_bavail * st.f_frsize + held) // GIB


def _settled(fn, tries: int = 5):
    """``fn()`` -> (got, want) until they agree: other processes on this
    host write too, and a GiB boundary may move between two looks."""
    for _ in range(tries):
        got, want = fn()
        if got == want:
            return got
    assert got == want
    return got


def test_host_reports_free_space_plus_instance_disks(tmp_path):
    state = str(tmp_path / "state")
    st = os.statvfs(str(tmp_path))
    size_gb = st.f_blocks * st.f_frsize // GIB
    local = _settled(lambda: (host_resources(state).local_gb,
                              _expected_gb(state, 0)))
    # what the file system can still give, not its size (here 251 GiB
    # against ~77 GiB free; the old report said the former)
    if st.f_blocks - st.f_bavail > GIB // st.f_frsize:
        assert local < size_gb
    held = 5 * GIB + 123
    _settled(lambda: (host_resources(state, held).local_gb,
                      _expected_gb(state, held)))


def test_preallocated_disk_holds_its_size_and_keeps_the_total(tmp_path):
    image = str(tmp_path / "disk.img")
    templates = str(tmp_path / "templates")
    disk.ensure_template(templates, 1)
    before = _settled(lambda: (host_resources(str(tmp_path)).local_gb,
                               _expected_gb(str(tmp_path), 0)))
    disk.make_disk(templates, 1, image)
    assert os.path.getsize(image) == GIB
    assert disk.allocated_bytes(image) >= GIB
    after = host_resources(str(tmp_path), disk.allocated_bytes(image))
    assert abs(after.local_gb - before) <= 1  # others write meanwhile
    os.unlink(image)
    assert disk.allocated_bytes(image) == 0


def test_disk_eating_into_the_reserve_is_refused_and_leaves_nothing(
        tmp_path):
    image = str(tmp_path / "disk.img")
    templates = str(tmp_path / "templates")
    disk.ensure_template(templates, 1)
    st = os.statvfs(str(tmp_path))
    reserve = st.f_bavail * st.f_frsize - GIB // 2  # only half a GiB left
    with pytest.raises(exception.RootfsError) as err:
        disk.make_disk(templates, 1, image, reserved_bytes=reserve)
    assert str(err.value) == ("root filesystem error: not enough free disk "
                              "space on the host for the 1 GiB root disk")
    assert not os.path.exists(image)
    assert os.listdir(str(tmp_path)) == ["templates"]


def test_sparse_without_preallocation_and_top_up_fills_holes(tmp_path):
    image = str(tmp_path / "disk.img")
    templates = str(tmp_path / "templates")
    disk.make_disk(templates, 1, image, preallocate=False)
    assert disk.allocated_bytes(image) < GIB // 16  # template's metadata
    disk.top_up(image, 0)  # what each mount does
    assert disk.allocated_bytes(image) >= GIB
    # a hole punched in it comes back on the next mount
    subprocess.run(["fallocate", "--punch-hole", "--length", "512MiB",
                    image], check=True)
    assert disk.allocated_bytes(image) < GIB
    disk.top_up(image, 0)
    assert disk.allocated_bytes(image) >= GIB
