"""Per-instance copy-on-write roots: the read-only image layers under an
overlayfs whose upper directory lives on the instance's own disk.

The disk is a file formatted ext4 (``create``; preallocated unless
``preallocate`` is off, see ``rootfs.disk``) and attached to a loop device
with ``LOOP_CONFIGURE`` and ``LO_FLAGS_AUTOCLEAR`` (``mount``), so the
flavor's root size is a hard limit -- writes past it fail with ENOSPC
inside the guest -- and the loop device's ``MAJ:MIN`` is what blkio
throttling keys on. Autoclear frees the loop device when the ext4 is
finally unmounted, including after a lazy unmount. Size 0 means no disk:
the upper directory is on the host file system, unlimited. Everything is
done with direct syscalls through ``virt.kernel`` (the loop ioctls,
mount(2), the new mount API for long layer lists): no subprocess on the
hot path; the disk is a copy of a template formatted once per size
(``rootfs.disk``). Layout:
``base_dir/instances/<uuid>/{disk.img,disk/,root/}``, every directory 0700.

Unprivileged roots (``create`` with an id range, kept in the host-only file
``id_range`` next to the disk) see the shared image layers through idmapped
mounts: each layer is cloned with ``open_tree`` and idmapped with the range's
map (``mount_setattr(MOUNT_ATTR_IDMAP)`` with a user namespace fd from the
``userns_for`` seam -- the launcher makes them), and the clones are handed to
overlayfs as fds (before Linux 6.8, which cannot take them, attached at staging
directories and named by path) -- so a layer's root-owned files appear owned by
guest root, with no copy and a few microseconds per layer per boot. The upper
directory is not idmapped: it belongs to the range's first id, and what the
guest creates lands there with its real host ids, so nothing the guest makes on
its disk is owned by host root.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import os
import shutil
from typing import Callable

from pyct_driver import exception
from pyct_driver.virt.kernel import loop
from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.rootfs import disk as disk_mod
from pyct_driver.virt.rootfs import disk_grow
from pyct_driver.virt.rootfs import fdnames

_MOUNT_DATA_MAX = 4000  # mount(2) data is one page, minus slack
_RANGE_FILE = "id_range"


@dataclasses.dataclass(frozen=True)
class RootHandle:
    """A mounted root: the merged directory and its backing block device
    ("MAJ:MIN", or None for a size-0 root on the host file system)."""

    path: str
    device: str | None


def _idmapped_clone(path: str, userns_fd: int) -> int:
    """A detached clone of the mount at ``path`` that shows its ids through
    the map of ``userns_fd`` (on-disk 0 appears as the map's host start)."""
    return km.clone_with_attrs(path, km.MOUNT_ATTR_IDMAP, userns_fd)


def _idmapped_overlay(target: str, lowers: list[str], upper: str,
                      work: str, userns_fd: int, stage: str) -> None:
    """Overlay over idmapped clones of ``lowers``; closes ``userns_fd``
    (the clones keep the namespace's map alive). ``stage``: an empty
    directory's path for ``_staged_overlay``."""
    trees: list[int] = []
    try:
        for lower in lowers:
            trees.append(_idmapped_clone(lower, userns_fd))
        try:
            _fsconfig_overlay(target, list(trees), upper, work)
        except OSError as err:
            # layers as fds (lowerdir+) came in Linux 6.8; older kernels
            # (Debian 12's 6.1) refuse them with EOPNOTSUPP or EINVAL
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL):
                raise
            _staged_overlay(target, trees, upper, work, stage)
    finally:
        for tree in trees:
            os.close(tree)
        os.close(userns_fd)


def _staged_overlay(target: str, trees: list[int], upper: str, work: str,
                    stage: str) -> None:
    """The same overlay for kernels without ``lowerdir+``: each detached
    clone is attached at ``stage/<n>``, named in a plain ``lowerdir=``, and
    detached again once overlayfs holds it (the overlay keeps its layers)."""
    paths: list[str] = []
    try:
        for num, tree in enumerate(trees):
            path = os.path.join(stage, str(num))
            os.makedirs(path, mode=0o700, exist_ok=True)
            km.move_mount(tree, km.AT_FDCWD, path)
            paths.append(path)
        with fdnames.named(paths) as names:  # no host path in mountinfo
            km.mount("overlay", target, "overlay", 0,
                     f"lowerdir={':'.join(names)},upperdir={upper},"
                     f"workdir={work}")
    finally:
        for path in paths:
            with contextlib.suppress(OSError):
                km.umount2(path, km.MNT_DETACH)
        shutil.rmtree(stage, ignore_errors=True)


def _fsconfig_overlay(target: str, lowers: list[str | int], upper: str,
                      work: str) -> None:
    """Mount overlayfs with the new mount API: one ``lowerdir+`` per layer
    (a path, or an fd of a detached mount), so the layer list is not
    bounded by mount(2)'s one-page data."""
    km.fs_mount("overlay", [*(("lowerdir+", lower) for lower in lowers),
                            ("upperdir", upper), ("workdir", work)], target)


class RootManager:
    """Instance roots under ``base_dir/instances``; ``userns_for`` returns
    a user namespace fd mapped onto an id range (the caller's to close)."""

    def __init__(self, base_dir: str,
                 userns_for: Callable[[tuple[int, int]], int] | None = None,
                 preallocate: bool = True, reserved_bytes: int = 0) -> None:
        self.userns_for = userns_for
        self.preallocate = preallocate
        self.reserved_bytes = reserved_bytes
        for ch in ",:\\":
            if ch in base_dir:
                raise exception.RootfsError(
                    reason=f"base_dir {base_dir!r} contains {ch!r}, which "
                    "overlayfs options cannot carry")
        self.base_dir = base_dir
        self._instances = os.path.join(base_dir, "instances")
        self._templates = os.path.join(base_dir, "templates")
        os.makedirs(self._instances, mode=0o700, exist_ok=True)

    def _dir(self, uuid: str) -> str:
        if not uuid or "/" in uuid or uuid.startswith(".") or \
                any(ch in uuid for ch in ",:\\"):
            raise exception.InvalidInput(reason=f"bad instance id {uuid!r}")
        return os.path.join(self._instances, uuid)

    def create(self, uuid: str, size_gb: int,
               id_range: tuple[int, int] | None = None) -> None:
        """Make the instance's writable disk (size 0: no disk, unlimited);
        with ``id_range`` its first id (guest root) owns the upper dir and
        every mount idmaps the layers onto the range."""
        top = self._dir(uuid)
        owner = (id_range[0], id_range[0]) if id_range else (0, 0)
        try:
            os.mkdir(top, 0o700)
        except FileExistsError as err:
            raise exception.Duplicate(what=f"Root of instance {uuid}") \
                from err
        try:
            disk = os.path.join(top, "disk")
            os.mkdir(disk, 0o700)
            os.mkdir(os.path.join(top, "root"), 0o700)
            if id_range:
                with open(os.path.join(top, _RANGE_FILE), "x") as f:
                    f.write(f"{id_range[0]} {id_range[1]}\n")
            if size_gb <= 0:
                _make_upper(disk, owner)
                return
            loop.record_attached(os.path.join(top, "disk.img"), None)
            # a copy of a per-size template formatted once (rootfs.disk):
            # no mkfs on the spawn path; the first mount makes upper/work
            disk_mod.make_disk(self._templates, size_gb,
                               os.path.join(top, "disk.img"),
                               self.preallocate, self.reserved_bytes)
        except BaseException as err:
            shutil.rmtree(top, ignore_errors=True)
            if isinstance(err, OSError):
                raise exception.RootfsError(
                    reason=f"creating root of {uuid}: {err}") from err
            raise

    def id_range(self, uuid: str) -> tuple[int, int] | None:
        """The range the root was created with (None: host ids)."""
        try:
            with open(os.path.join(self._dir(uuid), _RANGE_FILE)) as f:
                start, count = (int(v) for v in f.read().split())
                return start, count
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise exception.RootfsError(
                reason=f"unreadable id range of {uuid}: {err}") from err

    def mount(self, uuid: str, layers: list[str]) -> RootHandle:
        """Mount the instance's root over ``layers`` (lowest first),
        idmapped if it has an id range. Mounting a mounted root returns
        its handle."""
        top = self._dir(uuid)
        disk, root = os.path.join(top, "disk"), os.path.join(top, "root")
        image = os.path.join(top, "disk.img")
        if not os.path.isdir(disk):
            raise exception.InstanceNotFound(instance_id=uuid)
        if not layers:
            raise exception.RootfsError(reason=f"no layers for {uuid}")
        for layer in layers:
            if any(ch in layer for ch in ",:\\"):
                raise exception.RootfsError(reason=f"bad layer {layer!r}")
        if os.path.ismount(root):
            return self._handle(top)
        has_disk, names = os.path.exists(image), []
        id_range = self.id_range(uuid)
        owner = (id_range[0], id_range[0]) if id_range else (0, 0)
        if id_range and self.userns_for is None:
            raise exception.RootfsError(reason=f"root of {uuid} needs "
                                        "idmapped layers: no userns_for")
        try:
            self._mount_disk(image, disk, owner)
            upper = os.path.join(disk, "upper")
            work = os.path.join(disk, "work")
            # by descriptor: no host path in the guest's mount table
            upper, work, *lowers = names = fdnames.open_names(
                [upper, work, *reversed(layers)])
            data = (f"lowerdir={':'.join(lowers)},upperdir={upper},"
                    f"workdir={work}")
            if id_range:
                _idmapped_overlay(root, lowers, upper, work,
                                  self.userns_for(id_range),
                                  os.path.join(top, "lowers"))
            elif len(data) <= _MOUNT_DATA_MAX:
                km.mount("overlay", root, "overlay", 0, data)
            else:
                _fsconfig_overlay(root, list(lowers), upper, work)
        except OSError as err:
            with contextlib.suppress(OSError):
                km.umount_lazily_if_busy(disk) if has_disk else None
            raise exception.RootfsError(
                reason=f"mounting root of {uuid}: {err}") from err
        finally:
            fdnames.close_names(names)
        return self._handle(top)

    def _mount_disk(self, image: str, disk: str,
                    owner: tuple[int, int], readonly: bool = False) -> None:
        """Mount the instance's disk (if it has one) with its upper and
        work directories (OSError on failure); ``readonly``: as found,
        every byte of its image left as it was."""
        if os.path.exists(image) and not os.path.ismount(disk):
            if not readonly:
                if self.preallocate:
                    disk_mod.top_up(image, self.reserved_bytes)
                disk_grow.finish_pending(image)  # a resize's, deferred
            if not loop.wait_last_released(image, 30.0):
                raise OSError(errno.EBUSY, "its last loop device still "
                              "holds it 30 s after its unmount")
            lfd, rdev = loop.attach(image)
            loop.record_attached(image, os.minor(rdev))
            flags = km.MS_NOATIME | km.MS_NOSUID
            try:  # nodiscard: freed blocks stay the disk's
                km.mount(f"/dev/loop{os.minor(rdev)}", disk, "ext4",
                         flags | (km.MS_RDONLY if readonly else 0),
                         "nodiscard")
            except OSError:
                with contextlib.suppress(OSError):
                    loop.detach(lfd)
                raise
            finally:
                os.close(lfd)
        if not readonly and not os.path.isdir(os.path.join(disk, "upper")):
            _make_upper(disk, owner)

    def upper_dir(self, uuid: str, readonly: bool = False) -> str:
        """The instance's own changes (its overlay's upper directory),
        its disk mounted for them (``readonly``: read-only, the image
        untouched); ``unmount`` releases it. For a stopped guest: a cold
        migration reads or fills it here."""
        top = self._dir(uuid)
        disk = os.path.join(top, "disk")
        if not os.path.isdir(disk):
            raise exception.InstanceNotFound(instance_id=uuid)
        id_range = self.id_range(uuid)
        try:
            self._mount_disk(os.path.join(top, "disk.img"), disk,
                             (id_range[0],) * 2 if id_range else (0, 0),
                             readonly)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"mounting disk of {uuid}: {err}") from err
        return os.path.join(disk, "upper")

    @staticmethod
    def _handle(top: str) -> RootHandle:
        disk = os.path.join(top, "disk")
        device = None
        if os.path.ismount(disk):
            dev = os.stat(disk).st_dev
            device = f"{os.major(dev)}:{os.minor(dev)}"
        return RootHandle(path=os.path.join(top, "root"), device=device)

    def unmount(self, uuid: str) -> None:
        """Unmount overlay then disk (idempotent); autoclear frees the
        loop device once nothing holds it."""
        top = self._dir(uuid)
        try:
            for sub in ("root", "disk"):
                path = os.path.join(top, sub)
                if os.path.ismount(path):
                    # busy: detached, and the next mount waits for it
                    km.umount_lazily_if_busy(path)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"unmounting root of {uuid}: {err}") from err

    def wait_released(self, uuid: str, timeout: float = 30.0) -> None:
        """Return once no loop device holds the instance's disk: a lazy
        unmount (a dying guest kept it busy) leaves the old file system
        alive with unwritten changes, and a second mount of the image
        beside it would read it stale and corrupt it."""
        image = os.path.join(self._dir(uuid), "disk.img")
        if not loop.wait_last_released(image, timeout):
            raise exception.RootfsError(
                reason=f"disk of {uuid} is still in use {timeout:.0f}"
                " s after its unmount")

    def remove(self, uuid: str) -> None:
        """Unmount and delete everything of the instance (idempotent)."""
        top = self._dir(uuid)
        if not os.path.isdir(top):
            return
        self.unmount(uuid)
        try:
            shutil.rmtree(top)
        except OSError as err:
            raise exception.RootfsError(
                reason=f"removing root of {uuid}: {err}") from err

    def is_mounted(self, uuid: str) -> bool:
        return os.path.ismount(os.path.join(self._dir(uuid), "root"))

    def allocated_bytes(self) -> int:
        """Bytes the instances' disks hold on the host file system."""
        return sum(disk_mod.allocated_bytes(os.path.join(
            self._instances, uuid, "disk.img"))
            for uuid in self.list_instances())

    def list_instances(self) -> list[str]:
        return sorted(e.name for e in os.scandir(self._instances)
                      if e.is_dir(follow_symlinks=False) and
                      not e.name.startswith("."))


def _make_upper(parent: str, owner: tuple[int, int] = (0, 0)) -> None:
    # The upper dir's owner and mode become those of the guest's "/"; the
    # work dir is only used with the mounter's (host root's) credentials.
    for sub in ("upper", "work"):
        path = os.path.join(parent, sub)
        os.mkdir(path, 0o755)
        os.chmod(path, 0o755)
    os.chown(os.path.join(parent, "upper"), *owner)
