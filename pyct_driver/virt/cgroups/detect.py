"""Pick the cgroup backend this host needs: v2 where it is usable, else v1.

A host is treated as v2 when ``mount_root`` is a cgroup2 mount whose
``cgroup.controllers`` lists at least one controller. A cgroup2 mount with no
controllers is the "hybrid" layout's systemd-only tree (every controller is
bound to a v1 hierarchy), so it means v1. When ``mount_root`` is not a mount
point at all (a test's temporary layout), a non-empty ``cgroup.controllers``
file there decides the same way.
"""

from __future__ import annotations

import os

from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import v1
from pyct_driver.virt.cgroups import v2


def _unescape(field: str) -> str:
    # /proc/self/mountinfo octal-escapes space, tab, newline and backslash.
    for code, char in (("\\040", " "), ("\\011", "\t"), ("\\012", "\n"),
                       ("\\134", "\\")):
        field = field.replace(code, char)
    return field


def _fstype(mount_root: str) -> str | None:
    """The filesystem type mounted exactly at ``mount_root``, if any."""
    target = os.path.realpath(mount_root)
    found = None
    try:
        with open("/proc/self/mountinfo", encoding="utf-8") as f:
            for line in f:
                left, _, right = line.partition(" - ")
                fields = left.split()
                if len(fields) > 4 and _unescape(fields[4]) == target:
                    found = right.split()[0]  # the last mount on top wins
    except OSError:
        return None
    return found


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
    fstype = _fstype(mount_root)
    if fstype in (None, "cgroup2") and _has_controllers(mount_root):
        return v2.V2Backend(mount_root, parent)
    return v1.V1Backend(mount_root, parent)
