"""The guest's mount recipe, in two halves on either side of its user
namespace.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.
``enter_private_namespace`` and ``attach_root`` run in C1,
``prepare_host_side`` and ``finish_guest_side`` in the guest's PID 1 (or its
mount helper), all still host root.

``enter_private_namespace`` gives C1, before the root exists, a mount
namespace of its own, still owned by the host and private (but for the
view service's anchors, kept a slave of the host's: ``views.hold_views``).
Once the root is ready C1 attaches the launcher's detached clone of it
there (``attach_root``, made private at once), and ``prepare_host_side``
(in the guest init's mount helper, or a privileged guest's init: host
root, same namespace, cwd = the root) mounts everything that needs a host
path -- the /dev tmpfs, the bind mounts of the host's safe device nodes
and of the console pty. Host paths are only reachable from here: instance
directories are 0700 and host-owned, so guest root (an unprivileged host
uid) could not even look them up. When the guest's PID 1 then unshares a
fresh mount namespace in its user namespace, the kernel copies this tree
and locks every mount in it: the guest can neither unmount them nor clear
their flags.

``finish_guest_side`` runs in the guest's PID 1 (in its mount helper for an
unprivileged guest), inside every new namespace but the user namespace,
still host root and in C1's mount namespace (owned by the
host): it re-clones the root (the copy's root mount is locked, and pivot_root
refuses a locked new root; a clone's top mount is not), mounts /proc and a
read-only /sys *before* the pivot (the kernel lets a user namespace mount proc
and sysfs only while a fully visible instance of each is in its mount
namespace), masks and write-protects the /proc and /sys files runc's defaults
also hide (kcore, keys, timer_list, sched_debug, sysrq-trigger, /proc/sys,
/sys/firmware, ...), pivots, and mounts the guest's own devpts (bounded),
/dev/shm, /run and cgroup tree, owned by guest root. Every path it uses before
the pivot is relative to the root (guest symlinks are checked, and no guest
code runs yet to race the checks: the guest's PID 1 still waits in pyct's
code); after the pivot they can only resolve inside the guest.

The guest's PID 1 then copies this mount namespace into one owned by its
user namespace (``nsinit``), and the kernel locks every mount in the copy:
guest root cannot unmount a mask, make a read-only path writable, or
remount the devpts with a larger ``max`` (its superblock belongs to the
host's user namespace). A privileged guest (no user namespace) cannot
either: it lacks CAP_SYS_ADMIN. The price of locked masks: the guest cannot
mount a fresh proc or sysfs (a nested pid or network namespace's own), as
the kernel allows that only while an unmasked instance is visible. A
pyct:nesting guest gets such instances, hidden under its /run
(``hide_full_instances``): its containers mount their own.
"""

from __future__ import annotations

import errno
import os
import stat

from pyct_driver import exception
from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.kernel import proc as sc
from pyct_driver.virt.process.guestinit import cgroupfs
from pyct_driver.virt.process.guestinit import views as views_mod

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
# Hidden from the guest: files get /dev/null bound over them, directories
# an empty read-only tmpfs (paths relative to the guest's root).
MASKED_PATHS = (
    "proc/acpi", "proc/asound", "proc/interrupts", "proc/kcore",
    "proc/keys", "proc/latency_stats", "proc/sched_debug", "proc/scsi",
    "proc/timer_list", "proc/timer_stats", "sys/devices/virtual/powercap",
    "sys/firmware")
READONLY_PATHS = ("proc/bus", "proc/fs", "proc/irq", "proc/sys",
                  "proc/sysrq-trigger")
# Inside the read-only /proc/sys: the guest's own network namespace's
# sysctls stay writable (a VM configures forwarding, rp_filter, ...).
WRITABLE_PATHS = ("proc/sys/net",)
# Where C1 attaches the guest's root in its staged namespace.
STAGE = "/root"

def step(name: str, func, *args):
    """Run one setup step; an OSError becomes a ProcessError naming it."""
    try:
        return func(*args)
    except OSError as err:
        raise exception.ProcessError(
            reason=f"{name}: {err.strerror or err}", step=name,
            errno=err.errno) from err


def enter_private_namespace(views: str = "") -> None:
    """C1, host root, before the root exists: a mount namespace of its
    own (a copy of the host's, owned by the host) in which no mount
    propagates either way; ``views`` the view service's anchors, kept
    following the host's (``views.hold_views``)."""
    step("unshare mount namespace", sc.unshare, sc.CLONE_NEWNS)
    held = step("hold the views", views_mod.hold_views, views) \
        if views else None
    step("make / rprivate", km.mount, None, "/", None,
         km.MS_REC | km.MS_PRIVATE)
    if held is not None:
        step("follow the views", views_mod.follow_views, held, views)


def clone_host_files(console_fd: int) -> dict[str, int]:
    """C1, before ``stage_root``: detached binds of the host's files the
    guest's /dev gets (its safe device nodes and the console pty), by
    name in /dev; the caller's to close."""
    clones: dict[str, int] = {}
    try:
        for node in DEV_NODES:
            clones[node] = step(f"bind /dev/{node}", km.open_tree,
                                f"/dev/{node}", km.OPEN_TREE_CLONE)
        # By name, not /proc/self/fd/N: that magic link points at the pty
        # in the launcher's mount namespace, which cannot be cloned here.
        tty = step("find console name", os.ttyname, console_fd)
        clones["console"] = step("bind /dev/console", km.open_tree, tty,
                                 km.OPEN_TREE_CLONE)
    except BaseException:
        for fd in clones.values():
            os.close(fd)
        raise
    return clones


def stage_root() -> None:
    """C1, before the root exists, once nothing more needs a host path:
    pivot its namespace into an empty tmpfs with ``STAGE`` in it and
    detach the copy of the host's mount tree. The detach waits for an RCU
    grace period and walks every host mount (two per running guest): here
    it is off the spawn's critical path, and the guest's own pivot later
    detaches one mount."""
    stage = step("mount the stage", km.new_mount, "tmpfs",
                 [("mode", "700"), ("size", "16k")])
    try:
        step("stack the stage", km.move_mount, stage, km.AT_FDCWD, "/")
        step("enter the stage", os.fchdir, stage)
    finally:
        os.close(stage)
    step("pivot to the stage", km.pivot_root, ".", ".")
    step("detach the host's mounts", km.umount2, ".", km.MNT_DETACH)
    step("chdir /", os.chdir, "/")
    step("mkdir the stage's root", os.mkdir, STAGE, 0o700)


def prepare_host_side(host_files: dict[str, int],
                      owner: tuple[int, int]) -> None:
    """C1's namespace, cwd = the guest's root (``attach_root``): mount
    the host's files (``clone_host_files``, closed here) into it.
    ``owner`` is the host (uid, gid) of guest root."""
    uid, gid = owner
    try:
        _prepare_dev(host_files, uid, gid)
    finally:
        for fd in host_files.values():
            os.close(fd)
        host_files.clear()


def _prepare_dev(host_files: dict[str, int], uid: int, gid: int) -> None:
    step("check /dev", ensure_real_dir, "dev")
    step("mount /dev", km.mount, "tmpfs", "dev", "tmpfs", km.MS_NOSUID,
         f"mode=755,size=65536k,uid={uid},gid={gid}")
    for node in (*DEV_NODES, "console"):
        step(f"bind /dev/{node}", attach_file, host_files[node],
             f"dev/{node}")
    for name in ("pts", "shm"):
        step(f"mkdir /dev/{name}", os.mkdir, f"dev/{name}", 0o755)
        step(f"chown /dev/{name}", os.chown, f"dev/{name}", uid, gid)
    for name in ("proc", "sys"):
        step(f"check /{name}", ensure_real_dir, name)


def finish_guest_side(owner: tuple[int, int], devpts_max: int,
                      views: list[tuple[str, int]] | None = None,
                      nesting: bool = False) -> None:
    """Guest PID 1, still host root, in a mount namespace the host owns,
    cwd = the root C1 prepared. ``owner`` is guest root's host (uid, gid):
    it owns the tmpfs and devpts made here; ``devpts_max`` bounds the
    guest's ptys (a bound it cannot remount away: the devpts belongs to
    the host's user namespace); ``views``: the view service's files
    (``views.clone_views``, closed here), none for the host's own /proc
    files; ``nesting``: pyct:nesting (``hide_full_instances``, and
    writable v1 controller hierarchies: ``cgroupfs``)."""
    uid, gid = owner
    step("mount /proc", km.mount, "proc", "proc", "proc",
         km.MS_NOSUID | km.MS_NODEV | km.MS_NOEXEC, None)
    step("mount /sys", km.mount, "sysfs", "sys", "sysfs",
         km.MS_RDONLY | km.MS_NOSUID | km.MS_NODEV | km.MS_NOEXEC, None)
    if views:
        step("bind the flavor's views", views_mod.bind_views, views)
    for path in MASKED_PATHS:
        step(f"mask /{path}", mask, path)
    for path in READONLY_PATHS:
        step(f"read-only /{path}", bind_flags, path, km.MS_RDONLY)
    for path in WRITABLE_PATHS:
        step(f"writable /{path}", bind_flags, path, 0)
    step("pivot_root", km.pivot_root, ".", ".")
    # the stage's one tmpfs: the host's mounts were detached before
    step("detach old root", km.umount2, ".", km.MNT_DETACH)
    step("chdir /", os.chdir, "/")

    step("mount /sys/fs/cgroup", cgroupfs.mount_cgroupfs, None,
         f"uid={uid},gid={gid}", nesting)
    # the guest's tty group is its gid 5; ptmx belongs to guest root
    step("mount /dev/pts", mount_devpts, gid + 5, devpts_max)
    step("own /dev/pts/ptmx", os.chown, "/dev/pts/ptmx", uid, gid)
    step("mount /dev/shm", km.mount, "tmpfs", "/dev/shm", "tmpfs",
         km.MS_NOSUID | km.MS_NODEV, f"mode=1777,uid={uid},gid={gid}")
    if nesting:
        step("hide full proc and sysfs", hide_full_instances, "/run")
    step("mount /run", mount_dir, "tmpfs", "/run", "tmpfs",
         km.MS_NOSUID | km.MS_NODEV, f"mode=755,uid={uid},gid={gid}")
    links = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd",
             "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
    for name, target in links.items():
        step(f"symlink /dev/{name}", os.symlink, target, f"/dev/{name}")
        step(f"own /dev/{name}", os.lchown, f"/dev/{name}", uid, gid)


def hide_full_instances(cover: str) -> None:
    """pyct:nesting: an unmasked proc and a read-only sysfs on a tmpfs at
    ``cover``, which the caller then mounts over (the guest's /run).

    The kernel lets a user namespace mount proc or sysfs (a nested pid or
    network namespace's own) only while an instance of it with no locked
    mount over anything but an empty directory is in the mount namespace
    (``mount_too_revealing``); the guest's own /proc and /sys have masks
    and views. These two qualify, sit below a locked mount the guest can
    neither unmount nor see past, and lock their flags onto new mounts:
    a nested sysfs must be read-only, like this one."""
    os.makedirs(cover, 0o755, exist_ok=True)
    km.mount("tmpfs", cover, "tmpfs", km.MS_NOSUID | km.MS_NODEV
             | km.MS_NOEXEC, "mode=700,size=16k")
    for name, fstype, flags in (("proc", "proc", 0),
                                ("sys", "sysfs", km.MS_RDONLY)):
        target = os.path.join(cover, name)
        os.mkdir(target, 0o700)
        km.mount(fstype, target, fstype, flags | km.MS_NOSUID
                 | km.MS_NODEV | km.MS_NOEXEC, None)


def devpts_gid_options(gid: int) -> list[str]:
    """devpts' ``gid=`` option to try, best first. Kernels before devpts
    moved to the fs_parser (Debian 12's 6.1) read it with match_int and
    refuse an id past 2**31 (an id range's start can be) with EINVAL;
    there the fallback is no ``gid=``: a guest's ptys then belong to the
    group of the guest process that opens them instead of its tty group."""
    options = [f"gid={gid},"]
    if gid > 0x7FFFFFFF:
        options.append("")
    return options


def mount_devpts(gid: int, devpts_max: int) -> None:
    """The guest's own devpts at /dev/pts: its ttys in group ``gid``."""
    options = devpts_gid_options(gid)
    for num, gid_option in enumerate(options):
        try:
            km.mount("devpts", "/dev/pts", "devpts",
                     km.MS_NOSUID | km.MS_NOEXEC,
                     f"newinstance,ptmxmode=0666,mode=0620,{gid_option}"
                     f"max={devpts_max}")
            return
        except OSError as err:
            if err.errno != errno.EINVAL or num == len(options) - 1:
                raise


def attach_root(tree: int, root: str) -> None:
    """Stack the detached ``tree`` on ``root`` and move into it. The
    clone is a peer of the host's root mount: made private at once, so
    nothing mounted in the guest reaches the host or back."""
    try:
        km.move_mount(tree, km.AT_FDCWD, root)
        km.mount(None, root, None, km.MS_REC | km.MS_PRIVATE)
        os.fchdir(tree)
    finally:
        os.close(tree)


def ensure_real_dir(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"{path} is not a directory (symlink?)")


def attach_file(tree: int, target: str) -> None:
    """Attach the detached bind ``tree`` on a new file ``target``."""
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY
                     | os.O_CLOEXEC, 0o644))
    km.move_mount(tree, km.AT_FDCWD, target)


def mount_dir(source: str, target: str, fstype: str, flags: int,
              data: str | None) -> None:
    if not os.path.isdir(target):
        os.mkdir(target, 0o755)
    km.mount(source, target, fstype, flags, data)


def mask(path: str) -> None:
    """Hide a kernel file or directory; absent ones need nothing."""
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if stat.S_ISDIR(st.st_mode):
        km.mount("tmpfs", path, "tmpfs", km.MS_RDONLY | km.MS_NOSUID
                 | km.MS_NODEV | km.MS_NOEXEC, "mode=555")
    else:
        km.mount("dev/null", path, None, km.MS_BIND)


def bind_flags(path: str, flags: int) -> None:
    """Bind ``path`` onto itself and remount it with ``flags`` (read-only
    or writable again) without touching the file system's own flags."""
    if not os.path.lexists(path):
        return
    km.mount(path, path, None, km.MS_BIND | km.MS_REC)
    km.mount(None, path, None, km.MS_REMOUNT | km.MS_BIND | flags
             | km.MS_NOSUID | km.MS_NODEV | km.MS_NOEXEC)
