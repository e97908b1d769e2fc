"""Root-size enforcement compared: what each way of giving a guest a
size-limited writable root costs the host per guest.

Usage (root): ``python tools/bench/root_disk.py [--guests 100]``

For each method, makes ``--guests`` roots (a writable layer limited to
1 GiB plus an overlay over a one-file lower dir, as a guest's root is)
and prints, per guest: kernel threads added (children of kthreadd; the
store's own, once per host, apart), MemAvailable drop, Slab and kernel
stack growth, time to make one root (median, p95), what statfs(2) on the
root answers (``df -h /`` in the guest), how far host root writing
through the overlay (as overlayfs does with its mounter's credentials)
gets past the limit, whether the room a removed file freed can be written
again at once, the rate of O_DIRECT writes from a blkio group limited to
4 MiB/s on the root's device (what pyct's ``quota:disk_*`` keys on), and
the time to destroy one root (median, p95).

* ``ext4-loop``: a journal-less ext4 per guest in a file on a loop device
  (``mkfs.ext4 -O ^has_journal``, what pyct does).
* ``ext2-loop``: the same with the ext2 driver (a file system without a
  journal or extents, mounted as ext2).
* ``xfs-prjquota``: one loop-backed XFS per host mounted ``prjquota``;
  per guest a directory with its own project id and block hard limit.
* ``ext4-prjquota``: the same on one ext4 (``-O quota,project``).
* ``btrfs-qgroup``: one loop-backed btrfs per host with qgroups; per
  guest a subvolume limited to 1 GiB referenced, holding the overlay's
  upper and work directories (``btrfs_store``: ioctls, no forks).
* ``btrfs-squota``: the same with simple quotas (kernel 6.7 on).
* ``btrfs-snapshot``: the root is a writable snapshot of an image
  subvolume with a qgroup limit, no overlay.

Everything is unmounted, detached and removed at the end; for btrfs the
time until the store's cleaner has dropped the deleted subvolumes
(``btrfs subvolume sync``, once per method) is printed too.
"""

from __future__ import annotations

import argparse
import collections
import dataclasses
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from typing import Callable

import btrfs_store
import project_store
import report
import root_checks

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__)))))

from pyct_driver.virt.kernel import loop  # noqa: E402
from pyct_driver.virt.kernel import mounts as km  # noqa: E402
from pyct_driver.virt.rootfs import disk as disk_mod  # noqa: E402

GIB = 1 << 30


def kthreads() -> collections.Counter:
    """Children of kthreadd by name."""
    names: collections.Counter = collections.Counter()
    for pid in os.listdir("/proc"):
        if pid.isdigit():
            try:
                with open(f"/proc/{pid}/stat") as f:
                    head, tail = f.read().rsplit(")", 1)
                if tail.split()[1] == "2":
                    names[head.split("(", 1)[1]] += 1
            except OSError:
                pass
    return names


def grown(before: collections.Counter, after: collections.Counter,
          guests: int) -> dict:
    """Kernel-thread names that grew by at least one per two guests: the
    per-guest threads, told apart from the churn of other work on the
    host (kworkers come and go)."""
    return {name: count for name, count in sorted((after - before).items())
            if count * 2 >= guests}


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


@dataclasses.dataclass
class Root:
    """One guest's root: the directory it sees as ``/``, the block device
    (MAJ:MIN) its blkio limits key on, and how it is taken down."""

    path: str
    device: str
    destroy: Callable[[], None]


def majmin(rdev: int) -> str:
    return f"{os.major(rdev)}:{os.minor(rdev)}"


def attach_mount(image: str, mnt: str, fstype: str, data: str) -> str:
    """Mount ``image`` through a loop device (autoclear); its MAJ:MIN."""
    lfd, rdev = loop.attach(image)
    try:
        km.mount(f"/dev/loop{os.minor(rdev)}", mnt, fstype, km.MS_NOATIME,
                 data)
    finally:
        os.close(lfd)
    return majmin(rdev)


def disk_loop(base: str, num: int, lower: str, fstype: str) -> Root:
    top = os.path.join(base, str(num))
    disk = os.path.join(top, "disk")
    os.makedirs(disk)
    image = os.path.join(top, "disk.img")
    if fstype == "ext4":
        disk_mod.make_disk(os.path.join(base, "tpl"), 1, image, False)
    else:
        with open(os.path.join(base, "ext2.img"), "rb") as src, \
                open(image, "wb") as dst:
            disk_mod._sparse_copy(src.fileno(), dst.fileno(), GIB)
    device = attach_mount(image, disk, fstype, "")
    root = overlay(top, lower, disk)

    def destroy() -> None:  # as pyct's overlay.destroy: no lazy unmounts
        km.umount2(root)
        km.umount2(disk)  # autoclear frees the loop device
        shutil.rmtree(top)
    return Root(root, device, destroy)


def store(fstype: str, base: str,
          btrfs_options: str = "") -> tuple[str, str]:
    """One loop-backed store of ``fstype`` for every guest: its mount
    point and MAJ:MIN."""
    image, mnt = os.path.join(base, "store.img"), os.path.join(base, "s")
    os.makedirs(mnt)
    with open(image, "wb") as f:
        f.truncate(16 * GIB)
    mkfs = {"xfs": ["mkfs.xfs", "-q", "-f"],
            "ext4": ["mkfs.ext4", "-q", "-F", "-O",
                     "quota,project,^has_journal"],
            "btrfs": ["mkfs.btrfs", "-q", "-f"]}[fstype]
    subprocess.run([*mkfs, image], check=True, capture_output=True)
    device = attach_mount(image, mnt, fstype,
                          btrfs_options if fstype == "btrfs" else "prjquota")
    return mnt, device


def project_dir(mnt: str, device: str, base: str, num: int,
                lower: str) -> Root:
    top = os.path.join(base, str(num))
    disk = os.path.join(mnt, str(num))
    os.makedirs(top)
    os.mkdir(disk)
    fd = project_store.open_dir(disk)
    try:
        project_store.set_project(fd, num + 1)
        project_store.set_limit(fd, num + 1, GIB)
    finally:
        os.close(fd)
    root = overlay(top, lower, disk)

    def destroy() -> None:
        km.umount2(root)
        shutil.rmtree(disk)
        shutil.rmtree(top)
    return Root(root, device, destroy)


def btrfs_subvolume(mnt: str, device: str, base: str, num: int,
                    lower: str) -> Root:
    """A subvolume limited to 1 GiB holding the overlay's upper and work
    directories."""
    top = os.path.join(base, str(num))
    os.makedirs(top)
    name = f"g{num}"
    disk = btrfs_store.make_subvolume(mnt, name, GIB)
    root = overlay(top, lower, disk)

    def destroy() -> None:
        km.umount2(root)
        btrfs_store.destroy_subvolume(mnt, name)
        os.rmdir(root)
        os.rmdir(top)
    return Root(root, device, destroy)


def btrfs_snapshot(mnt: str, device: str, num: int) -> Root:
    """A writable snapshot of the image subvolume, limited to 1 GiB
    referenced (the image's bytes count, as they do in a VM's root_gb; on
    pyct's disks they do not: the layers are lower directories), is the
    root itself: no overlay."""
    name = f"g{num}"
    root = btrfs_store.make_subvolume(mnt, name, GIB,
                                      os.path.join(mnt, "image"))
    return Root(root, device,
                lambda: btrfs_store.destroy_subvolume(mnt, name))


def setup(method: str, base: str, lower: str,
          btrfs_options: str) -> tuple[Callable[[int], Root], str | None]:
    """Whatever ``method`` needs once per host (templates, the store),
    made outside the timing; returns the per-guest maker and the btrfs
    store's mount point (None for other methods)."""
    kind = method.split("-")[0]
    if method == "ext4-loop":
        disk_mod.ensure_template(os.path.join(base, "tpl"), 1)
        return lambda num: disk_loop(base, num, lower, "ext4"), None
    if method == "ext2-loop":
        with open(os.path.join(base, "ext2.img"), "wb") as f:
            f.truncate(GIB)
        subprocess.run(["mkfs.ext2", "-q", "-F", "-m", "0",
                        os.path.join(base, "ext2.img")], check=True)
        return lambda num: disk_loop(base, num, lower, "ext2"), None
    mnt, device = store(kind, base, btrfs_options)
    if kind != "btrfs":
        return lambda num: project_dir(mnt, device, base, num, lower), None
    btrfs_store.enable_quota(mnt, simple=method == "btrfs-squota")
    if method != "btrfs-snapshot":
        return (lambda num: btrfs_subvolume(mnt, device, base, num, lower),
                mnt)
    image = btrfs_store.make_subvolume(mnt, "image", 64 * GIB)
    shutil.copy(os.path.join(lower, "f"), image)
    return lambda num: btrfs_snapshot(mnt, device, num), mnt


def run(method: str, guests: int, btrfs_options: str = "") -> dict:
    base = tempfile.mkdtemp(prefix="pyct-bench-rootdisk-")
    lower = os.path.join(base, "lower")
    os.makedirs(lower)
    with open(os.path.join(lower, "f"), "w") as f:
        f.write("x")
    try:
        threads_host = kthreads()
        make, btrfs_mnt = setup(method, base, lower, btrfs_options)
        threads0, avail0, slab0, stack0 = (
            kthreads(), meminfo("MemAvailable"), meminfo("Slab"),
            meminfo("KernelStack"))
        times, roots = [], []
        for num in range(guests):
            start = time.perf_counter()
            roots.append(make(num))
            times.append((time.perf_counter() - start) * 1000)
        time.sleep(1)
        threads1 = kthreads()
        st = os.statvfs(roots[0].path)
        out = {"method": method,
               "store kthreads": threads0.total() - threads_host.total(),
               "kthreads/guest": (threads1.total() - threads0.total())
               / guests,
               "kthread names grown": grown(threads0, threads1, guests),
               "avail KiB/guest": (avail0 - meminfo("MemAvailable"))
               / guests / 1024,
               "slab KiB/guest": (meminfo("Slab") - slab0) / guests / 1024,
               "kstack KiB/guest": (meminfo("KernelStack") - stack0)
               / guests / 1024,
               "make ms p50": statistics.median(times),
               "make ms p95": report.percentile(times, 95),
               "df size MiB": st.f_blocks * st.f_frsize >> 20,
               **root_checks.write_past(roots[0].path, roots[1].path),
               "direct writes": root_checks.direct_write_rate(
                   roots[-1].path, roots[-1].device)}
        times = []
        while roots:
            start = time.perf_counter()
            roots.pop().destroy()
            times.append((time.perf_counter() - start) * 1000)
        out["destroy ms p50"] = statistics.median(times)
        out["destroy ms p95"] = report.percentile(times, 95)
        if btrfs_mnt is not None:  # deleted subvolumes: the cleaner's work
            start = time.perf_counter()
            subprocess.run(["btrfs", "subvolume", "sync", btrfs_mnt],
                           check=True, capture_output=True)
            out["cleaner done after destroys, s"] = (
                time.perf_counter() - start)
            out["left in store"] = sorted(os.listdir(btrfs_mnt))
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
                        "xfs-prjquota,ext4-prjquota,btrfs-qgroup,"
                        "btrfs-squota,btrfs-snapshot")
    parser.add_argument("--btrfs-options", default="",
                        help="mount options of the btrfs store, e.g. "
                        "nodatasum (no data checksums)")
    parser.add_argument("--json", action="store_true",
                        help="print one JSON document (report.emit) with "
                        "each method's figures under extra")
    args = parser.parse_args()
    if args.guests < 2:  # the rewrite check compares with a second root
        parser.error("--guests must be at least 2")
    if not args.json:
        print(f"load average {os.getloadavg()}, {args.guests} roots each, "
              f"btrfs store options {args.btrfs_options or '(defaults)'}")
    extra: dict = {"guests": args.guests,
                   "btrfs store options": args.btrfs_options}
    for method in args.methods.split(","):
        try:
            res = run(method, args.guests, args.btrfs_options)
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
