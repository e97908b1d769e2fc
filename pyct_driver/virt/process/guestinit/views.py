"""The guest's own view of its flavor: the view service's files bound
over /proc and /sys inside the guest.

Runs in guest init before exec (``bind_views``: C1, host root, one
thread) and in the single-threaded helper the compute service execs to
``rebind`` (host root, ``python -m`` this module).

The view service (``viewservice``: one lxcfs per host) serves
``/proc/meminfo``, ``/proc/cpuinfo`` and the rest computed from the cgroup
of the process that reads them. ``bind_views`` runs in the guest's mount
recipe (``mounts.finish_guest_side``) after /proc and /sys are mounted and
before the pivot; the mounts name only the file system ("lxcfs") and the
file, never the service's host directory.

When the service restarts, its new FUSE mount is a new file system and the
old binds fail with ENOTCONN. ``rebind`` -- run by an exec'd,
single-threaded helper, as ``setns`` into a mount namespace needs a
process that shares its fs with no thread -- enters each running guest's
mount namespace, lazily unmounts the dead views and mounts clones of the
new service's files made in the host's namespace. That works where the
binds are not locked: privileged guests. An unprivileged guest's binds
are locked when its user namespace copies the mount namespace (neither
host root can unmount them, nor can a dead FUSE dentry take a mount on
top: ``move_mount`` answers ENOENT), so it keeps failing views until it
reboots. Binding them unlocked after the copy instead (tried) breaks
systemd's sandboxed services in the guest: systemd unmounts every
unlocked mount below /proc before mounting its own and refuses when it
then may not mount a fresh proc (README).
"""

from __future__ import annotations

import contextlib
import json
import os
import sys

from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.kernel import proc as kp

VIEW_FILES = ("proc/cpuinfo", "proc/diskstats", "proc/loadavg",
              "proc/meminfo", "proc/stat", "proc/swaps", "proc/uptime",
              "sys/devices/system/cpu/online")


def bind_views(views_dir: str) -> None:
    """cwd = the guest's root, /proc and /sys mounted: bind the service's
    files over the kernel's (paths relative to the root)."""
    for rel in VIEW_FILES:
        if os.path.exists(rel):
            km.mount(os.path.join(views_dir, rel), rel, None, km.MS_BIND)


def rebind(views_dir: str, pid: int) -> None:
    """Stack the service's current files over the views of the guest whose
    init is ``pid``, in that init's mount namespace."""
    fds: list[int] = []
    own = _open("/proc/self/ns/mnt", fds)
    home = _open("/", fds)
    target = _open(f"/proc/{pid}/ns/mnt", fds)
    # the guest's root as its init sees it: after setns this process's
    # root is the namespace's root, which need not be the guest's
    root = _open(f"/proc/{pid}/root", fds, os.O_PATH | os.O_DIRECTORY)
    trees = [(rel, km.open_tree(os.path.join(views_dir, rel),
                                     km.OPEN_TREE_CLONE))
             for rel in VIEW_FILES]
    fds.extend(tree for _, tree in trees)
    try:
        kp.setns(target, kp.CLONE_NEWNS)
        try:
            os.fchdir(root)
            os.chroot(".")
            for rel, tree in trees:
                with contextlib.suppress(OSError):  # EINVAL: no view yet
                    km.umount2(rel, km.MNT_DETACH)
                km.move_mount(tree, km.AT_FDCWD, rel)
        finally:
            kp.setns(own, kp.CLONE_NEWNS)
            os.fchdir(home)
            os.chroot(".")
    finally:
        for fd in fds:
            os.close(fd)


def _open(path: str, fds: list[int], flags: int = os.O_RDONLY) -> int:
    fd = os.open(path, flags | os.O_CLOEXEC)
    fds.append(fd)
    return fd


def main(argv: list[str]) -> int:
    """``views <views_dir> <pid>...``: rebind each guest; one JSON line
    per pid ({"pid": .., "error": null or why})."""
    views_dir, pids = argv[0], [int(p) for p in argv[1:]]
    failed = 0
    for pid in pids:
        error = None
        try:
            rebind(views_dir, pid)
        except OSError as err:
            error, failed = str(err), failed + 1
        print(json.dumps({"pid": pid, "error": error}), flush=True)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
