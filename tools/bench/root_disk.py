"""Root-size enforcement compared: what each way of giving a guest a
size-limited writable root costs the host per guest.

Usage (root): ``python tools/bench/root_disk.py [--guests 100]``

For each method, makes ``--guests`` roots (a writable layer limited to
1 GiB plus an overlay over a one-file lower dir, as a guest's root is)
and prints, per guest: kernel threads added (children of kthreadd),
MemAvailable drop and Slab growth, time to make one root (median, p95),
whether statfs(2) on the overlay answers the 1 GiB limit (``df -h /``
in the guest), and whether host root writing through the overlay (as
overlayfs does with its mounter's credentials) is stopped at the limit.

* ``ext4-loop``: a journal-less ext4 per guest in a file on a loop device
  (``mkfs.ext4 -O ^has_journal``, what pyct did before).
* ``ext2-loop``: the same with the ext2 driver (a file system without a
  journal or extents, mounted as ext2).
* ``xfs-prjquota``: one loop-backed XFS per host mounted ``prjquota``;
  per guest a directory with its own project id and block hard limit.
* ``ext4-prjquota``: the same on one ext4 (``-O quota,project``).

Everything is unmounted, detached and removed at the end.
"""

from __future__ import annotations

import argparse
import ctypes
import fcntl
import os
import shutil
import statistics
import struct
import subprocess
import sys
import tempfile
import time

import report

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from pyct_driver.virt.kernel import libc, loop  # noqa: E402
from pyct_driver.virt.kernel import mounts as km  # noqa: E402
from pyct_driver.virt.rootfs import disk as disk_mod  # noqa: E402

GIB = 1 << 30
# project quotas (linux/fs.h, linux/quota.h), for the store methods;
# pyct itself has none: this host's kernel has no CONFIG_QUOTA
FS_IOC_FSGETXATTR = 0x801C581F
FS_IOC_FSSETXATTR = 0x401C5820
FS_XFLAG_PROJINHERIT = 0x200
_FSXATTR = "=IIIII8x"  # xflags, extsize, nextents, projid, cowextsize
_PRJQUOTA = 2
_Q_SETQUOTA = 0x800008
_QIF_BLIMITS = 1
_QIF_DQBLKSIZE = 1024  # quota block limits are in KiB


class DqBlk(ctypes.Structure):
    """struct if_dqblk (linux/quota.h)."""

    _fields_ = [("bhardlimit", ctypes.c_uint64),
                ("bsoftlimit", ctypes.c_uint64),
                ("curspace", ctypes.c_uint64),
                ("ihardlimit", ctypes.c_uint64),
                ("isoftlimit", ctypes.c_uint64),
                ("curinodes", ctypes.c_uint64),
                ("btime", ctypes.c_uint64), ("itime", ctypes.c_uint64),
                ("valid", ctypes.c_uint32)]


def set_project(fd: int, projid: int) -> None:
    """Give the directory open at ``fd`` project ``projid``, inherited by
    everything created under it."""
    buf = bytearray(struct.calcsize(_FSXATTR))
    fcntl.ioctl(fd, FS_IOC_FSGETXATTR, buf)
    xflags, extsize, nextents, _, cowext = struct.unpack(_FSXATTR, buf)
    fcntl.ioctl(fd, FS_IOC_FSSETXATTR, struct.pack(
        _FSXATTR, xflags | FS_XFLAG_PROJINHERIT, extsize, nextents,
        projid, cowext))


def quotactl(fd: int, cmd: int, projid: int, blk: DqBlk) -> None:
    libc.current().syscall("quotactl_fd", fd, (cmd << 8) | _PRJQUOTA,
                           projid, libc.pointer(blk),
                           what=f"quotactl project {projid}")


def set_limit(fd: int, projid: int, limit_bytes: int) -> None:
    """Hard block limit of project ``projid`` on the file system holding
    ``fd`` (0: no limit)."""
    blk = DqBlk()
    blk.bhardlimit = blk.bsoftlimit = -(-limit_bytes // _QIF_DQBLKSIZE)
    blk.valid = _QIF_BLIMITS
    quotactl(fd, _Q_SETQUOTA, projid, blk)


def open_dir(path: str) -> int:
    return os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)



def kthreads() -> int:
    count = 0
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    if f.read().rsplit(")", 1)[1].split()[1] == "2":
                        count += 1
            except OSError:
                pass
    return count


def meminfo(key: str) -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def overlay(top: str, lower: str, upper_parent: str) -> str:
    root = os.path.join(top, "root")
    os.makedirs(root)
    for sub in ("upper", "work"):
        os.makedirs(os.path.join(upper_parent, sub), exist_ok=True)
    km.mount("overlay", root, "overlay", 0,
             f"lowerdir={lower},upperdir={upper_parent}/upper,"
             f"workdir={upper_parent}/work")
    return root


def disk_loop(base: str, num: int, lower: str, fstype: str) -> str:
    top = os.path.join(base, str(num))
    os.makedirs(os.path.join(top, "disk"))
    image = os.path.join(top, "disk.img")
    if fstype == "ext4":
        disk_mod.make_disk(os.path.join(base, "tpl"), 1, image, False)
    else:
        with open(os.path.join(base, "ext2.img"), "rb") as src, \
                open(image, "wb") as dst:
            disk_mod._sparse_copy(src.fileno(), dst.fileno(), GIB)
    lfd, rdev = loop.attach(image)
    try:
        km.mount(f"/dev/loop{os.minor(rdev)}", os.path.join(top, "disk"),
                 fstype, km.MS_NOATIME, "")
    finally:
        os.close(lfd)
    return overlay(top, lower, os.path.join(top, "disk"))


def store(fstype: str, base: str) -> str:
    image, mnt = os.path.join(base, "store.img"), os.path.join(base, "s")
    os.makedirs(mnt)
    with open(image, "wb") as f:
        f.truncate(16 * GIB)
    mkfs = (["mkfs.xfs", "-q", "-f"] if fstype == "xfs" else
            ["mkfs.ext4", "-q", "-F", "-O", "quota,project,^has_journal"])
    subprocess.run([*mkfs, image], check=True, capture_output=True)
    lfd, rdev = loop.attach(image)
    try:
        km.mount(f"/dev/loop{os.minor(rdev)}", mnt, fstype, km.MS_NOATIME,
                 "prjquota")
    finally:
        os.close(lfd)
    return mnt


def project_dir(mnt: str, base: str, num: int, lower: str) -> str:
    top = os.path.join(base, str(num))
    disk = os.path.join(mnt, str(num))
    os.makedirs(top)
    os.mkdir(disk)
    fd = open_dir(disk)
    try:
        set_project(fd, num + 1)
        set_limit(fd, num + 1, GIB)
    finally:
        os.close(fd)
    return overlay(top, lower, disk)


def write_past(root: str) -> str:
    """Host root writes 1.1 GiB into the overlay: where does it stop?"""
    chunk, done = b"\0" * (1 << 20), 0
    try:
        with open(os.path.join(root, "fill"), "wb") as f:
            while done < GIB + (100 << 20):
                done += f.write(chunk)
            f.flush()
            os.fsync(f.fileno())
    except OSError as err:
        return f"stopped at {done >> 20} MiB ({err.strerror})"
    finally:
        os.unlink(os.path.join(root, "fill"))
    return f"NOT stopped ({done >> 20} MiB written)"


def run(method: str, guests: int) -> dict:
    base = tempfile.mkdtemp(prefix="pyct-bench-rootdisk-")
    lower = os.path.join(base, "lower")
    os.makedirs(lower)
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("x")
    mnt = None
    try:
        if not method.endswith("-loop"):
            mnt = store(method.split("-")[0], base)
        elif method == "ext4-loop":  # templates made outside the timing
            disk_mod.ensure_template(os.path.join(base, "tpl"), 1)
        else:
            with open(os.path.join(base, "ext2.img"), "wb") as f:
                f.truncate(GIB)
            subprocess.run(["mkfs.ext2", "-q", "-F", "-m", "0",
                            os.path.join(base, "ext2.img")], check=True)
        threads0, avail0, slab0, stack0 = (
            kthreads(), meminfo("MemAvailable"), meminfo("Slab"),
            meminfo("KernelStack"))
        times, roots = [], []
        for num in range(guests):
            start = time.perf_counter()
            if mnt is None:
                roots.append(disk_loop(base, num, lower,
                                       method.split("-")[0]))
            else:
                roots.append(project_dir(mnt, base, num, lower))
            times.append((time.perf_counter() - start) * 1000)
        time.sleep(1)
        st = os.statvfs(roots[0])
        out = {"method": method,
               "kthreads/guest": (kthreads() - threads0) / guests,
               "avail KiB/guest": (avail0 - meminfo("MemAvailable"))
               / guests / 1024,
               "slab KiB/guest": (meminfo("Slab") - slab0) / guests / 1024,
               "kstack KiB/guest": (meminfo("KernelStack") - stack0)
               / guests / 1024,
               "make ms p50": statistics.median(times),
               "make ms p95": sorted(times)[int(0.95 * (guests - 1))],
               "df size MiB": st.f_blocks * st.f_frsize >> 20,
               "host root write": write_past(roots[0])}
        return out
    finally:
        cleanup(base)


def cleanup(base: str) -> None:
    with open("/proc/self/mountinfo") as f:
        mps = [line.split()[4] for line in f if base in line.split()[4]]
    for mp in reversed(mps):
        subprocess.run(["umount", "-l", mp], capture_output=True)
    time.sleep(0.5)
    shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--guests", type=int, default=100)
    parser.add_argument("--methods", default="ext4-loop,ext2-loop,"
                        "xfs-prjquota,ext4-prjquota")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (report.emit) with "
                        "each method's figures under extra")
    args = parser.parse_args()
    if not args.json:
        print(f"load average {os.getloadavg()}, {args.guests} roots each")
    extra: dict = {"guests": args.guests}
    for method in args.methods.split(","):
        try:
            res = run(method, args.guests)
        except OSError as err:  # e.g. a kernel built without CONFIG_QUOTA
            res = {"method": method, "unavailable": str(err)}
        extra[method] = res
        if not args.json:
            print("  ".join(f"{k}={v:.1f}" if isinstance(v, float) else
                            f"{k}={v}" for k, v in res.items()), flush=True)
    if args.json:
        report.emit(f"root size limit: cost per guest ({args.guests} "
                    "roots per method)", {}, extra, True)


if __name__ == "__main__":
    main()
