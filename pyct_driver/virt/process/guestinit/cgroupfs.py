"""The guest's /sys/fs/cgroup: what an init such as systemd needs to run.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.

Runs in the guest's PID 1 after pivot_root, once /proc is mounted, inside
the guest's cgroup namespace -- so every hierarchy mounted here shows only
the instance's own subtree, never the host's groups.

cgroup v2 host: cgroup2 is mounted at /sys/fs/cgroup. The namespace root is
a delegation boundary on hosts that mount cgroup2 with ``nsdelegate`` (the
systemd default), so the guest can make sub-groups but cannot raise its own
limits.

cgroup v1 host: a small tmpfs at /sys/fs/cgroup holds one mount per
hierarchy the guest belongs to, laid out the way systemd and
systemd-nspawn expect (co-mounted controllers in ``cpu,cpuacct`` with
``cpu`` and ``cpuacct`` symlinks). The controller hierarchies are
read-only: v1 has no delegation boundary, so a writable one would let the
guest rewrite its flavor's limits in its namespace root. The named
``name=systemd`` hierarchy (no controllers, no limits) stays writable --
systemd tracks its services there. It is only safe because the host puts
each guest in a group of its own in that hierarchy too; the tmpfs is then
made read-only. A controller-less cgroup2 next to v1 (``unified``) is not
mounted: the host does not place guests in it, so the guest would see the
host's group there.

A pyct:nesting guest on v1 gets the controller hierarchies the host
delegated to it writable, and not the others (the host keeps cpuset: not
mounted, a nested runtime skips what is absent). Writable mounts give
nothing by themselves: the host chowns to guest root only the guest's
group directories and their cgroup.procs and tasks
(``virt.ownership``), so guest root makes and fills sub-groups
while its own group's limit files stay host-owned (guest root has no
mapping for host uid 0: EACCES). Every v1 limit is hierarchical, so a
sub-group's cannot exceed the guest's.
"""

from __future__ import annotations

import os

from pyct_driver.virt.kernel.mounts import MS_BIND, MS_NODEV, MS_NOEXEC
from pyct_driver.virt.kernel.mounts import MS_NOSUID, MS_RDONLY, MS_REMOUNT
from pyct_driver.virt.kernel.mounts import mount as _mount
from pyct_driver.virt.kernel.mounts import umount2 as _umount2

CGROUP_DIR = "/sys/fs/cgroup"
TRACKER = "name=systemd"
_FLAGS = MS_NOSUID | MS_NODEV | MS_NOEXEC


def hierarchies(proc_cgroup: str) -> tuple[list[list[str]], bool]:
    """Parse /proc/self/cgroup text: (the v1 hierarchies, each as its list
    of controllers or ``name=`` tag, and whether a cgroup2 line exists)."""
    v1: list[list[str]] = []
    unified = False
    for line in proc_cgroup.splitlines():
        hid, _, rest = line.partition(":")
        ctrls, _, _path = rest.partition(":")
        if hid == "0" and ctrls == "":
            unified = True
        elif ctrls:
            v1.append(ctrls.split(","))
    return v1, unified


def mount_plan(v1: list[list[str]], nesting: bool = False
               ) -> list[tuple[str, str, bool]]:
    """(directory name, mount options, writable) for each v1 hierarchy;
    ``nesting``: the controller hierarchies are writable too (those the
    host did not delegate are then left out by ``mount_cgroupfs``)."""
    plan = []
    for ctrls in v1:
        named = [c for c in ctrls if c.startswith("name=")]
        if named:
            if named == [TRACKER] and len(ctrls) == 1:
                plan.append(("systemd", "none," + TRACKER, True))
            continue  # other named hierarchies are the host's business
        plan.append((",".join(ctrls), ",".join(ctrls), nesting))
    return sorted(plan)


def _delegated(target: str, tmpfs_owner: str) -> bool:
    """Whether the host gave guest root (``uid=N,...``) the group mounted
    at ``target`` (``virt.ownership.delegate_cgroup``)."""
    uid = dict(part.split("=", 1) for part in tmpfs_owner.split(",")
               if "=" in part).get("uid")
    return uid is not None and os.stat(target).st_uid == int(uid)


def mount_cgroupfs(proc_cgroup: str | None = None,
                   tmpfs_owner: str = "", nesting: bool = False) -> str:
    """Mount the guest's cgroup tree; return "v2", "v1" or "none".
    ``tmpfs_owner`` ("uid=N,gid=N") owns the v1 tmpfs; ``nesting``: see
    ``mount_plan``."""
    if proc_cgroup is None:
        with open("/proc/self/cgroup") as f:
            proc_cgroup = f.read()
    v1, unified = hierarchies(proc_cgroup)
    if not os.path.isdir(CGROUP_DIR):
        return "none"  # a sysfs without cgroup support: nothing to offer
    if not v1:
        if not unified:
            return "none"
        _mount("cgroup2", CGROUP_DIR, "cgroup2", _FLAGS)
        return "v2"
    extra = f",{tmpfs_owner}" if tmpfs_owner else ""
    _mount("tmpfs", CGROUP_DIR, "tmpfs", _FLAGS, "mode=755,size=64k" + extra)
    for name, options, writable in mount_plan(v1, nesting):
        target = os.path.join(CGROUP_DIR, name)
        os.mkdir(target, 0o755)
        _mount("cgroup", target, "cgroup", _FLAGS, options)
        if nesting and not _delegated(target, tmpfs_owner):
            # a nested runtime skips an absent hierarchy, fails on a
            # read-only one
            _umount2(target)
            os.rmdir(target)
            continue
        if not writable:
            # a bind remount makes this mount read-only without touching
            # the hierarchy's superblock, which the host shares
            _mount(None, target, None,
                   MS_REMOUNT | MS_BIND | MS_RDONLY | _FLAGS)
        parts = name.split(",")
        if len(parts) > 1:
            for part in parts:
                os.symlink(name, os.path.join(CGROUP_DIR, part))
    _mount(None, CGROUP_DIR, None, MS_REMOUNT | MS_RDONLY | _FLAGS,
           "mode=755" + extra)
    return "v1"
