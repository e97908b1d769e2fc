"""tools/bench/root_disk.py's pure parts: the btrfs ioctl numbers and
argument layouts ``btrfs_store`` hands the kernel, and how a fill's end
is reported.

The expected ioctl numbers are the values of ``linux/btrfs.h``'s macros
(printed by a C program compiled against the header); a wrong size or
direction in ``btrfs_store.ioc`` would make the kernel answer ENOTTY.
"""

from __future__ import annotations

import pathlib
import struct
import sys

import pytest

BENCH = pathlib.Path(__file__).resolve().parents[2] / "tools" / "bench"
sys.path.insert(0, str(BENCH))

import btrfs_store  # noqa: E402
import root_checks  # noqa: E402
import root_disk  # noqa: E402

GIB = 1 << 30


@pytest.mark.parametrize("name, value", [
    ("IOC_SNAP_CREATE", 0x50009401),
    ("IOC_SUBVOL_CREATE", 0x5000940E),
    ("IOC_SNAP_DESTROY", 0x5000940F),
    ("IOC_QUOTA_CTL", 0xC0109428),
    ("IOC_QGROUP_LIMIT", 0x8030942B),
    ("IOC_QUOTA_RESCAN_WAIT", 0x942E),
])
def test_ioctl_numbers_are_the_headers(name, value):
    assert getattr(btrfs_store, name) == value


def test_vol_args_is_the_4096_byte_struct_with_fd_and_name():
    args = btrfs_store.vol_args("g7", fd=5)
    assert isinstance(args, bytearray)  # fcntl copies bytes only to 1 KiB
    assert len(args) == 4096
    fd, name = struct.unpack("=q4088s", args)
    assert fd == 5 and name.rstrip(b"\0") == b"g7"


@pytest.mark.parametrize("bad", ["", ".", "..", "a/b", "a\0b", "x" * 4088])
def test_vol_args_refuses_what_is_not_one_entry(bad):
    with pytest.raises(ValueError):
        btrfs_store.vol_args(bad)


def test_vol_args_takes_the_longest_name():
    assert len(btrfs_store.vol_args("x" * 4087)) == 4096


def test_qgroup_limit_args_limit_the_callers_subvolume():
    qgroupid, flags, rfer, excl, rsv_rfer, rsv_excl = struct.unpack(
        "=6Q", btrfs_store.qgroup_limit_args(GIB))
    assert (qgroupid, flags, rfer, excl) == (
        0, btrfs_store.QGROUP_LIMIT_MAX_RFER, GIB, 0)
    assert rsv_rfer == rsv_excl == 0
    _, flags, rfer, excl, _, _ = struct.unpack(
        "=6Q", btrfs_store.qgroup_limit_args(GIB, exclusive=True))
    assert (flags, rfer, excl) == (btrfs_store.QGROUP_LIMIT_MAX_EXCL, 0, GIB)
    with pytest.raises(ValueError):
        btrfs_store.qgroup_limit_args(0)


def test_describe_fill_says_how_far_past_the_limit():
    out = root_checks.describe_fill(GIB + (3 << 20), "Disk quota exceeded")
    assert out == {"host root write":
                   "stopped at 1027 MiB (Disk quota exceeded)",
                   "host root write: past limit MiB": 3.0}
    short = root_checks.describe_fill(989 << 20, "No space left on device",
                                      who="4 writers")
    assert short["4 writers: past limit MiB"] == -35.0
    free = root_checks.describe_fill(2 * GIB, None)
    assert free == {"host root write": "NOT stopped (2048 MiB written)",
                    "host root write: past limit MiB": 1024.0}


def test_parallel_fill_sums_the_writers_and_removes_their_files(tmp_path):
    written, errors = root_checks.parallel_fill(str(tmp_path), 3, 2 << 20)
    assert (written, errors) == (6 << 20, "not stopped")
    assert list(tmp_path.iterdir()) == []


def test_grown_keeps_names_that_grew_by_one_per_two_guests():
    before = root_disk.collections.Counter(
        {"kworker/R-ext4-rsv-conversion": 3, "kworker/0:1": 2})
    after = root_disk.collections.Counter(
        {"kworker/R-ext4-rsv-conversion": 203, "kworker/0:1": 1,
         "kworker/1:2-events": 40, "btrfs-cleaner": 100})
    assert root_disk.grown(before, after, 200) == {
        "btrfs-cleaner": 100, "kworker/R-ext4-rsv-conversion": 200}
