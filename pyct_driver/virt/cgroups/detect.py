"""Pick the cgroup backend this host needs: v2 where it is usable, else v1.

A host is treated as v2 when ``mount_root`` is a cgroup2 mount whose
``cgroup.controllers`` lists at least one controller. A cgroup2 mount with no
controllers is the "hybrid" layout's systemd-only tree (every controller is
bound to a v1 hierarchy), so it means v1. When ``mount_root`` is not a mount
point at all (a test's temporary layout), a non-empty ``cgroup.controllers``
file there decides the same way. A v2 mount without ``nsdelegate`` is
used but logged: there a privileged guest could raise its own limits.
"""

from __future__ import annotations

import logging
import os

from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import v1
from pyct_driver.virt.cgroups import v2

LOG = logging.getLogger(__name__)


def _unescape(field: str) -> str:
    # /proc/self/mountinfo octal-escapes space, tab, newline and backslash.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                       ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def mount_at(mountinfo: str, target: str) -> tuple[str, set[str]] | None:
    """(filesystem type, superblock options) of the mount exactly at
    ``target`` in /proc/self/mountinfo text; the last one on top wins."""
    found = None
    for line in mountinfo.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) > 4 and len(tail) > 2 and \
                _unescape(fields[4]) == target:
            found = (tail[0], set(tail[2].split(",")))
    return found


def _mount(mount_root: str) -> tuple[str, set[str]] | None:
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            return mount_at(f.read(), os.path.realpath(mount_root))
    except OSError:
        return None


def _has_controllers(mount_root: str) -> bool:
    try:
        with open(os.path.join(mount_root, "cgroup.controllers"),
                  encoding="ascii") as f:
            return bool(f.read().split())
    except OSError:
        return False


def detect_backend(mount_root: str = "/sys/fs/cgroup",
                   parent: str = "pyct") -> base.CgroupBackend:
    """Return the backend for the hierarchy at ``mount_root``.

    Raises ``CgroupError`` (from the backend) when neither layout is usable.
    """
    mount = _mount(mount_root)
    fstype = mount[0] if mount else None
    if fstype in (None, "cgroup2") and _has_controllers(mount_root):
        if mount and "nsdelegate" not in mount[1]:
            # a privileged guest is host root: only the delegation boundary
            # keeps it from writing its own group's limit files
            LOG.warning("cgroup2 at %s is mounted without nsdelegate: a "
                        "privileged guest can raise its own limits (mount "
                        "-o remount,nsdelegate %s, as systemd does)",
                        mount_root, mount_root)
        return v2.V2Backend(mount_root, parent)
    return v1.V1Backend(mount_root, parent)
