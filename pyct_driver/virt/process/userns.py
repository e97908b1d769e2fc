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

from pyct_driver.virt.process import syscalls as sc

_libc = ctypes.CDLL(None, use_errno=True)


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


def make_userns_fd(id_range: tuple[int, int]) -> int:
    """An fd of a fresh user namespace mapped onto ``id_range``.

    Forks a child that unshares and waits: only call this from a
    single-threaded process (the launcher). The namespace outlives the
    child for as long as the fd (or a mount idmapped with it) exists.
    """
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    go_r, go_w = os.pipe2(os.O_CLOEXEC)
    pid = os.fork()
    if pid == 0:
        try:
            os.close(ready_r)
            os.close(go_w)
            sc.unshare(sc.CLONE_NEWUSER)
            os.write(ready_w, b"u")
            os.read(go_r, 1)
        finally:
            os._exit(0)
    os.close(ready_w)
    os.close(go_r)
    try:
        if os.read(ready_r, 1) != b"u":
            raise OSError(0, "user namespace helper failed to unshare")
        write_maps(pid, id_range)
        return os.open(f"/proc/{pid}/ns/user", os.O_RDONLY | os.O_CLOEXEC)
    finally:
        os.close(ready_r)
        os.close(go_w)  # EOF lets the helper exit
        os.waitpid(pid, 0)
