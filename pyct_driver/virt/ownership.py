"""Who owns what of an unprivileged guest on the host.

An unprivileged guest's ids 0..65535 are its instance's id range on the
host (allocated in the database, ``InstanceSpec.id_range``); guest root is
host uid ``start``. The range is what its user namespace maps guest ids
onto, who owns its writable disk, its console, its systemd cgroup and the
files injected into it; the image layers are idmapped onto it
(``rootfs.overlay``). It is recorded at spawn and never changes for the
instance's life: its disk's ownership depends on it. Only an admin's
flavor makes a guest without one: ``pyct:privileged`` (host ids, Docker's
default capabilities) or ``pyct:host_root`` (every capability, where the
operator allows it). This module holds the container driver's rules for
that: which range a spec asks for (none only for an admin's privileged
flavor; an unprivileged spec without one fails closed), that an instance
keeps the range it was created with (its disk's files are owned by it),
host-side file injection owned by guest root, and the cgroup delegation
systemd in the guest needs (and, with pyct:nesting, a nested runtime).
Used only by ``virt.container``, which passes the cgroup backend in.
"""

from __future__ import annotations

import os

from pyct_driver import exception
from pyct_driver.virt import base
from pyct_driver.virt.cgroups import base as cg_base
from pyct_driver.virt.cgroups.v2 import V2Backend
from pyct_driver.virt.process.spec import check_id_range
from pyct_driver.virt.rootfs import inject

HOST_ROOT = (0, 0)


def id_range(instance: base.InstanceSpec) -> tuple[int, int] | None:
    """The guest's id range; None only for a privileged flavor."""
    if instance.privileged:
        return None
    if instance.id_range is None:
        raise exception.VirtError(
            reason=f"instance {instance.uuid} has no uid/gid range and its "
                   "flavor is not privileged")
    try:
        return check_id_range(instance.id_range)
    except exception.InvalidInput as err:
        raise exception.VirtError(reason=str(err)) from err


def owner(id_range_: tuple[int, int] | None) -> tuple[int, int]:
    """Guest root's host (uid, gid)."""
    return (id_range_[0], id_range_[0]) if id_range_ else HOST_ROOT


def recorded_range(instance: base.InstanceSpec,
                   record: dict) -> tuple[int, int] | None:
    """The range the instance was created with; it must still be the one
    its spec names (a disk owned by one range is never remapped)."""
    wanted = id_range(instance)
    value = record.get("id_range")
    recorded = (int(value[0]), int(value[1])) if value else None
    if recorded != wanted:
        raise exception.VirtError(
            reason=f"instance {instance.uuid} was created with id range "
                   f"{recorded}, now asked for {wanted}")
    return recorded


def inject_owned(root: str, instance: base.InstanceSpec,
                 who: tuple[int, int]) -> None:
    """``inject.inject``, owned by guest root: a file owned by an id
    outside the guest's map is 'nobody' inside, and guest root could not
    even read a 0600 one (sshd and authorized_keys)."""
    inject.inject(root, instance, *who)


# Bounds on a pyct:nesting guest's own cgroup tree on v2 (host-owned
# files in its group): nested runtimes make a few groups per container;
# each memory cgroup holds one of the host's 65535 memory cgroup ids.
NESTED_MAX_DESCENDANTS = 1000
NESTED_MAX_DEPTH = 16
# v1 hierarchies a pyct:nesting guest gets no say in (``cgroupfs``'s
# guest-side twin explains why cpuset).
NOT_DELEGATED_V1 = ("cpuset",)
_V1_TRACKER_NAMES = ("cgroup.procs", "tasks", "cgroup.clone_children",
                     "notify_on_release")
_V1_NESTING_NAMES = ("cgroup.procs", "tasks")


def delegate_cgroup(cgroups: cg_base.CgroupBackend, uuid: str,
                    who: tuple[int, int], nesting: bool = False) -> None:
    """Let guest root manage the groups systemd needs: its group in the
    controller-less name=systemd hierarchy on v1, its cgroup2 group (none
    of the limit files in it) on v2. Controller groups on v1 stay
    host-owned -- v1 has no delegation boundary -- unless ``nesting``
    (pyct:nesting): then guest root also gets each controller group but
    cpuset (the directory, cgroup.procs and tasks: it makes sub-groups
    and moves its tasks among them; the limit files stay the host's),
    and on v2 its tree is bounded (``NESTED_MAX_*``)."""
    for group, names in _delegated(cgroups, uuid, nesting):
        try:
            os.chown(group, *who)
            for name in names:
                path = os.path.join(group, name)
                if os.path.exists(path):
                    os.chown(path, *who)
        except OSError as err:
            raise exception.CgroupError(
                reason=f"delegating {group} to {who}: {err}") from err
    if nesting and isinstance(cgroups, V2Backend):
        group = os.path.dirname(cgroups.procs_files(uuid)[0])
        cg_base.write_text(os.path.join(group, "cgroup.max.descendants"),
                           str(NESTED_MAX_DESCENDANTS))
        cg_base.write_text(os.path.join(group, "cgroup.max.depth"),
                           str(NESTED_MAX_DEPTH))


def _delegated(cgroups: cg_base.CgroupBackend, uuid: str, nesting: bool
               ) -> list[tuple[str, tuple[str, ...]]]:
    """(group directory, files in it) guest root gets."""
    groups = [os.path.dirname(p) for p in cgroups.procs_files(uuid)]
    if isinstance(cgroups, V2Backend):
        return [(g, ("cgroup.procs", "cgroup.threads",
                     "cgroup.subtree_control")) for g in groups]

    def under(name: str) -> str:
        return os.path.realpath(os.path.join(cgroups.mount_root,
                                             name)) + os.sep
    out = []
    for group in groups:
        if group.startswith(under("systemd")):
            out.append((group, _V1_TRACKER_NAMES))
        elif nesting and not any(group.startswith(under(name))
                                 for name in NOT_DELEGATED_V1):
            out.append((group, _V1_NESTING_NAMES))
    return out
