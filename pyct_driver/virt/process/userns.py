"""User namespaces: a guest's ids 0..65535 are an unprivileged host range.

The launcher -- host root in the initial namespace, the only one allowed
to write an arbitrary map -- makes each guest's user namespace
(``make_userns_fd``: a helper unshares, the launcher writes
``0 <start> <count>`` into its uid_map and gid_map). One namespace serves
twice: the compute side idmaps the image layers with it, and the guest's
C1 joins it (``enter``) before unsharing the other namespaces, so they all
belong to it, then becomes uid/gid 0 inside (``become_root``), which is
``start`` on the host, keeping its full capability set in that namespace
only.
"""

from __future__ import annotations

import ctypes
import os
import platform

from pyct_driver.virt.process import syscalls as sc

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


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
    """C1: join the guest's user namespace (full capabilities inside it,
    none outside); the namespaces it unshares next belong to it."""
    if _libc.setns(fd, sc.CLONE_NEWUSER) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"setns user: {os.strerror(err)}")


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


# clone(2) with every argument but the flags 0: the same on these
# architectures (s390x swaps the first two).
_SYS_CLONE = {"x86_64": 56, "aarch64": 220, "ppc64le": 120}.get(
    platform.machine())
_SIGCHLD = 17


def _clone_in_userns(go_r: int, go_w: int) -> int | None:
    """A child born in a new user namespace (raw clone: nobody waits for
    it to unshare), or None where that is not available."""
    if _SYS_CLONE is None:
        return None
    # Like fork() without Python's at-fork hooks: fine in a single-
    # threaded process whose child only reads a pipe and exits.
    pid = _libc.syscall(ctypes.c_long(_SYS_CLONE),
                        ctypes.c_ulong(sc.CLONE_NEWUSER | _SIGCHLD),
                        ctypes.c_ulong(0), ctypes.c_ulong(0),
                        ctypes.c_ulong(0), ctypes.c_ulong(0))
    if pid == 0:
        _child_wait(go_r, go_w)
    if pid < 0:
        return None
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
