"""User namespaces: a guest's ids 0..65535 are an unprivileged host range.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.
``make_userns_fd`` is the exception: the fork server calls it, and the helper
it forks only unshares and waits while the fork server writes the maps.

The launcher -- host root in the initial namespace, the only one allowed
to write an arbitrary map -- makes each guest's user namespace
(``make_userns_fd``: a helper unshares, the launcher writes
``0 <start> <count>`` into its uid_map and gid_map). One namespace serves
twice: the compute side idmaps the image layers with it, and it owns every
namespace of the guest: ``fork_in_userns`` (C1) has a short-lived helper
``enter`` it, become uid/gid 0 inside (``become_root``: ``start`` on the
host, full capabilities in that namespace only), unshare the guest's net,
uts, ipc, cgroup and pid namespaces and fork the guest's PID 1 there.
C1 stays host root: ``join_for_mounts`` lets a child of it mount the
guest's /proc, /sys and masks in a mount namespace the host owns; the
guest's PID 1 then unshares its own mount namespace -- a copy across user
namespaces, in which the kernel locks every mount: guest root can
neither unmount a mask nor make a read-only path writable.
"""

from __future__ import annotations

import errno
import os
from typing import Callable, NoReturn

from pyct_driver.virt.kernel import proc as sc


def map_line(id_range: tuple[int, int]) -> str:
    start, count = id_range
    return f"0 {start} {count}\n"


def write_maps(pid: int, id_range: tuple[int, int]) -> None:
    """Map ids 0..count-1 of ``pid``'s user namespace onto the range."""
    line = map_line(id_range).encode()
    for name in ("uid_map", "gid_map"):
        fd = os.open(f"/proc/{pid}/{name}", os.O_WRONLY | os.O_CLOEXEC)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)


def enter(fd: int) -> None:
    """Join the guest's user namespace (full capabilities inside it, none
    outside); namespaces unshared next belong to it."""
    sc.setns(fd, sc.CLONE_NEWUSER)


# Made inside the guest's user namespace, so they belong to it.
OWNED_NAMESPACES = (sc.CLONE_NEWNET | sc.CLONE_NEWUTS | sc.CLONE_NEWIPC
                    | sc.CLONE_NEWCGROUP | sc.CLONE_NEWPID)
# What a host-root helper joins to mount the guest's /proc, /sys and
# cgroup tree (each shows the namespace of its mounter).
_MOUNT_VIEW = (("pid", sc.CLONE_NEWPID), ("net", sc.CLONE_NEWNET),
               ("cgroup", sc.CLONE_NEWCGROUP))


def fork_in_userns(get_userns: Callable[[], int],
                   child: Callable[[], NoReturn]) -> int:
    """C1 (single-threaded): start ``child`` as PID 1 of net, uts, ipc,
    cgroup and pid namespaces owned by the user namespace ``get_userns``
    returns (called in the helper), as uid/gid 0 there; returns its pid.
    A short-lived helper enters the user namespace, unshares them and
    forks ``child`` (which is then reparented to the launcher, the
    subreaper); the caller stays host root."""
    pid_r, pid_w = os.pipe2(os.O_CLOEXEC)
    helper = sc.fork_bare()
    if helper == 0:
        code = 1
        try:
            os.close(pid_r)
            fd = get_userns()
            enter(fd)
            os.close(fd)
            become_root()
            sc.unshare(OWNED_NAMESPACES)
            pid = sc.fork_bare()
            if pid == 0:
                os.close(pid_w)
                child()
            os.write(pid_w, str(pid).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(pid_w)
    try:
        data = os.read(pid_r, 32)
    finally:
        os.close(pid_r)
        os.waitpid(helper, 0)
    if not data:
        raise OSError(errno.ECHILD, "namespace helper failed")
    return int(data)


def join_for_mounts(pid: int, proc_dir: int | None = None) -> None:
    """Host root: join ``pid``'s pid (for children), net and cgroup
    namespaces, so a child forked next can mount its /proc, /sys and
    cgroup tree (``proc_dir``: an fd of the host's /proc, if it is no
    longer at /proc)."""
    fds = []
    try:
        for name, _flag in _MOUNT_VIEW:
            fds.append(os.open(f"{pid}/ns/{name}", os.O_RDONLY
                               | os.O_CLOEXEC, dir_fd=proc_dir)
                       if proc_dir is not None else
                       os.open(f"/proc/{pid}/ns/{name}",
                               os.O_RDONLY | os.O_CLOEXEC))
        for fd, (_name, flag) in zip(fds, _MOUNT_VIEW):
            sc.setns(fd, flag)
    finally:
        for fd in fds:
            os.close(fd)


def become_root() -> None:
    # setgroups first: the host's supplementary groups are unmapped here.
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)


def make_userns_fd(id_range: tuple[int, int], reap: bool = True) -> int:
    """An fd of a fresh user namespace mapped onto ``id_range``.

    Starts a child that sits in the new namespace until the map is
    written: only call this from a single-threaded process (the
    launcher). The namespace outlives the child for as long as the fd (or
    a mount idmapped with it) exists. With ``reap`` False the caller's
    SIGCHLD handling reaps the child (it exits at once).
    """
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    try:
        pid = _clone_in_userns(go_r, go_w)
        if pid is None:
            pid = _fork_and_unshare(go_r, go_w)
    finally:
        os.close(go_r)
    try:
        write_maps(pid, id_range)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(go_w)  # EOF lets the child exit
        if reap:
            os.waitpid(pid, 0)


def _child_wait(go_r: int, go_w: int) -> None:
    try:
        os.close(go_w)
        os.read(go_r, 1)
    finally:
        os._exit(0)


def _clone_in_userns(go_r: int, go_w: int) -> int | None:
    """A child born in a new user namespace (raw clone: nobody waits for
    it to unshare), or None where that is not available."""
    pid = sc.clone_newuser()
    if pid == 0:
        _child_wait(go_r, go_w)
    return pid


def _fork_and_unshare(go_r: int, go_w: int) -> int:
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"u")
        finally:
            _child_wait(go_r, go_w)
    os.close(ready_w)
    try:
        if os.read(ready_r, 1) != b"u":
            os.close(go_w)
            os.waitpid(pid, 0)
            raise OSError(0, "user namespace helper failed to unshare")
    finally:
        os.close(ready_r)
    return pid
