"""The guest's own view of its flavor: the view service's files bound
over /proc and /sys inside the guest, following the service's restarts.

Runs in C1 (``hold_views``, ``follow_views``: host root, one thread, in
its fresh mount namespace) and in the guest init's mount helper (or a
privileged guest's init) before exec (``clone_views`` before the root
exists, ``bind_views`` after: host root, one thread, the same mount
namespace).

The view service (``viewservice``: one lxcfs per host) serves
``/proc/meminfo``, ``/proc/cpuinfo`` and the rest computed from the cgroup
of the process that reads them, and publishes each file on an anchor: a
file of a shared tmpfs on the host (``<views>/files``) with lxcfs' file
bound on it. When lxcfs restarts, its new FUSE mount is a new file system
(the old binds fail with ENOTCONN) and the service binds the new files
on top of the dead ones, on the host's anchors; mount propagation stacks
them on every guest's views too -- also where the guest cannot unmount
them (an unprivileged guest's binds are locked once its user namespace
copies the mount namespace; propagation is the kernel's, not the guest's
doing, and what it stacks comes locked as well).

For that the guest's views must be slaves of the host's anchors, but C1
makes its whole namespace private before mounting anything (no host
mount may leak into a guest later). So ``hold_views`` takes a detached
clone of the anchors before that -- a clone of a shared mount joins its
peer group, and a detached tree is not part of the namespace the
recursive ``MS_PRIVATE`` walks -- and ``follow_views`` attaches it over
the (now private) anchors and turns it into a slave: it receives the
host's mounts and sends none back (a privileged guest's namespace, owned
by the host, would otherwise be a peer). ``clone_views`` then clones the
files of that tree and ``bind_views`` attaches them; they are slaves too.
The mounts name only the file system ("lxcfs") and the file, never the
service's host directory.
"""

from __future__ import annotations

import os

from pyct_driver.virt.kernel import mounts as km

VIEW_FILES = ("proc/cpuinfo", "proc/diskstats", "proc/loadavg",
              "proc/meminfo", "proc/stat", "proc/swaps", "proc/uptime",
              "sys/devices/system/cpu/online")


def hold_views(views_dir: str) -> int:
    """C1, before its namespace goes private: a detached clone of the
    host's anchors at ``views_dir`` (their peer); the caller's fd."""
    return km.open_tree(views_dir, km.OPEN_TREE_CLONE | km.AT_RECURSIVE)


def follow_views(tree: int, views_dir: str) -> None:
    """C1, namespace private: stack the held clone on ``views_dir`` and
    make it a slave of the host's anchors; closes ``tree``."""
    try:
        km.move_mount(tree, km.AT_FDCWD, views_dir)
    finally:
        os.close(tree)
    km.mount(None, views_dir, None, km.MS_SLAVE | km.MS_REC)


def clone_views(views_dir: str) -> list[tuple[str, int]]:
    """Before the root exists (host root, in C1's namespace, views
    followed): a detached bind of each file the service publishes, with
    its path relative to the guest's root. Each look-up of a file is a
    round trip to lxcfs, slow when the host is busy: made here, off the
    spawn's critical path. The clones are slaves of the anchors, as binds
    of them are."""
    held = []
    try:
        for rel in VIEW_FILES:
            source = os.path.join(views_dir, rel)
            if os.path.exists(source):
                held.append((rel, km.open_tree(source, km.OPEN_TREE_CLONE)))
    except BaseException:
        close_views(held)
        raise
    return held


def bind_views(held: list[tuple[str, int]]) -> None:
    """cwd = the guest's root, /proc and /sys mounted: attach the binds
    ``clone_views`` made over the kernel's files; a file the service does
    not publish keeps the kernel's, one the guest lacks is skipped.
    Closes them."""
    try:
        for rel, tree in held:
            if os.path.exists(rel):
                km.move_mount(tree, km.AT_FDCWD, rel)
    finally:
        close_views(held)


def close_views(held: list[tuple[str, int]]) -> None:
    for _rel, tree in held:
        os.close(tree)
    held.clear()
