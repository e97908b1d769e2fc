"""User namespaces: a guest's ids 0..65535 are an unprivileged host range.

C1 unshares the user namespace together with the others (so each of them
is owned by it), then asks its parent, the launcher -- host root in the
initial namespace, the only one allowed to write an arbitrary map -- to
write ``0 <start> <count>`` into its uid_map and gid_map over a socketpair
(``request_map`` / ``grant_map``); it then becomes uid/gid 0 inside, which
is ``start`` on the host, keeping its full capability set in the new
namespace only. ``make_userns_fd`` gives the compute side a namespace with
the same map for idmapped mounts of the image layers: the guest and that
namespace are different objects, but an idmapping is only its map.
"""

from __future__ import annotations

import os
import select
import socket
import time

from pyct_driver.virt.process import syscalls as sc

_GO = b"m"


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


def request_map(sock: socket.socket) -> None:
    """C1, after unshare(CLONE_NEWUSER): wait for the map, become root."""
    sock.sendall(b"u")
    if sock.recv(1) != _GO:
        raise OSError(0, "launcher did not map the user namespace")
    become_root()


def become_root() -> None:
    # setgroups first: the host's supplementary groups are unmapped here.
    os.setresgid(0, 0, 0)
    os.setgroups([])
    os.setresuid(0, 0, 0)


def grant_map(sock: socket.socket, pid: int, id_range: tuple[int, int],
              deadline: float) -> bool:
    """Launcher: wait for C1's request, write its maps, let it go on.
    False if C1 gave up before asking (its error is on the report pipe)."""
    remaining = max(0.0, deadline - time.monotonic())
    ready, _, _ = select.select([sock], [], [], remaining)
    if not ready or sock.recv(1) != b"u":
        return False
    write_maps(pid, id_range)
    sock.sendall(_GO)
    return True


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
