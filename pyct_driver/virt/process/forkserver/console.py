"""A guest's console on the host: the launcher's side of its pty, and
its log (append-only, bounded in size).

Runs in the fork server (``forkserver.daemon``): host root in the initial
namespaces, one thread (it imports nothing that starts one). The launcher's
poll loop calls it; no thread of its own.

``Consoles`` reads every guest's pty master, within a per-guest byte rate,
and feeds what it reads into that guest's ``ConsoleLog`` and to the clients
attached to it (the serial console proxy, through the compute service);
what a client sends goes to the guest's console input, within the same
budget. The file never grows past ``max_bytes``: when a write would
cross the bound, the file is rewritten (temp file + rename, so a reader never
sees a half-written log) with only the newest half, cut at a line start.
Bounding by rewrite rather than rotation keeps one file per instance, which
is what Nova's get_console_output reads.
"""

from __future__ import annotations

import errno
import logging
import os
import select
import socket
import time

from pyct_driver import exception

LOG = logging.getLogger("pyct.launcher")
READ_CHUNK = 65536


class ConsoleLog:
    """Bounded sink for one guest's console output; ``path=''`` discards."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0
        if path:
            try:
                self._open()
            except OSError as err:
                raise exception.ProcessError(
                    reason=f"cannot open console log {path}: {err}",
                    step="open console log") from err
            if self._size > max_bytes:
                self._rewrite(b"")

    @property
    def size(self) -> int:
        return self._size

    def _open(self) -> None:
        # O_NOFOLLOW: the log may live next to guest-writable files.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                           | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self._size = os.fstat(self._fd).st_size

    def append(self, data: bytes) -> None:
        if self._fd is None or not data:
            return
        if self._size + len(data) > self.max_bytes:
            self._rewrite(data)
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def _rewrite(self, data: bytes) -> None:
        keep = self.max_bytes // 2
        if len(data) >= keep:
            tail = data[-keep:]
        else:
            with open(self.path, "rb") as old:
                old.seek(max(0, self._size - (keep - len(data))))
                tail = old.read() + data
        newline = tail.find(b"\n")
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1:]
        tmp = f"{self.path}.pyct-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                     | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, tail)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.close()
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class Console:
    """One guest's console as the launcher holds it: the pty master it
    reads, a slave it keeps open, the log, and a byte budget (a token
    bucket: ``rate`` bytes a second, up to ``burst`` at once)."""

    def __init__(self, uuid: str, master: int, slave: int, log: ConsoleLog,
                 rate: int, burst: int) -> None:
        self.uuid = uuid
        self.master: int | None = master
        # Holding a slave fd keeps the master from reporting hang-up while
        # the guest init closes and reopens /dev/console (busybox, systemd).
        self.slave: int | None = slave
        self.log = log
        self.rate = rate
        self.burst = burst
        self.tokens = float(burst)
        self.stamp = time.monotonic()
        self.read_bytes = 0
        self.clients: set[int] = set()  # attached sockets (``attach``)

    def allowance(self, now: float) -> int:
        if self.rate:
            self.tokens = min(self.burst, self.tokens
                              + (now - self.stamp) * self.rate)
            self.stamp = now
            return int(self.tokens)
        return READ_CHUNK

    def spend(self, n: int) -> None:
        self.read_bytes += n
        if self.rate:
            self.tokens -= n


class Consoles:
    """The launcher's guest consoles, in its poll set.

    Each is copied into its log at no more than its rate: over budget, its
    master leaves the poll set until the bucket refills, the pty's buffer
    fills and the guest's console writes block -- as on a VM's serial line
    -- so a guest flooding its console costs the launcher (whom no cgroup
    charges) a bounded amount of CPU.
    """

    def __init__(self, poll: select.poll) -> None:
        self.poll = poll
        self.by_fd: dict[int, Console] = {}
        self.clients: dict[int, Console] = {}  # client fd -> its console
        self.paused: dict[int, float] = {}  # master fd -> when to resume

    def add(self, con: Console) -> None:
        os.set_blocking(con.master, False)
        self.by_fd[con.master] = con
        self.poll.register(con.master, select.POLLIN)

    def pump(self, con: Console, last: bool = False) -> None:
        """Copy what the guest wrote into its log, within its budget (or,
        ``last``, what is left in the pty after the guest died)."""
        for _ in range(16):  # bounded, so one chatty guest can't starve us
            if con.master is None:
                return
            now = time.monotonic()
            want = READ_CHUNK if last else min(READ_CHUNK,
                                               con.allowance(now))
            if want < 1:
                self._pause(con, now)
                return
            try:
                data = os.read(con.master, want)
            except BlockingIOError:
                return
            except OSError as err:
                if err.errno != errno.EIO:
                    LOG.warning("console of %s: %s", con.uuid, err)
                self.close(con)
                return
            if not data:
                self.close(con)
                return
            con.spend(len(data))
            try:
                con.log.append(data)
            except OSError as err:
                LOG.warning("console log of %s: %s", con.uuid, err)
            self._fan_out(con, data)

    def attach(self, con: Console) -> int:
        """A new client of ``con``: returns the caller's end of a socket
        pair whose other end this loop reads (guest input) and writes
        (guest output). Only output from now on reaches it."""
        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        fd = ours.detach()
        os.set_blocking(fd, False)
        # room for a few seconds of output at the console's rate
        sock = socket.socket(fileno=os.dup(fd))
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 1 << 18)
        sock.close()
        con.clients.add(fd)
        self.clients[fd] = con
        self.poll.register(fd, select.POLLIN)
        return theirs.detach()

    def _fan_out(self, con: Console, data: bytes) -> None:
        for fd in list(con.clients):
            try:
                sent = os.write(fd, data)
            except (BlockingIOError, OSError):
                sent = -1
            # A client that can't keep up is dropped rather than buffered
            # for: the launcher's memory stays bounded, the log has it all.
            if sent != len(data):
                self.detach(fd)

    def feed(self, fd: int) -> None:
        """Copy what a client typed to its guest's console input, within
        the console's budget (over it, the client waits, as output does)."""
        con = self.clients[fd]
        now = time.monotonic()
        want = min(4096, con.allowance(now))
        if want < 1:
            self._pause_fd(con, fd, now)
            return
        try:
            data = os.read(fd, want)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data or con.master is None:
            self.detach(fd)
            return
        con.spend(len(data))
        try:
            os.write(con.master, data)
        except OSError:
            pass  # the guest reads no input: like a serial line, it is lost

    def detach(self, fd: int) -> None:
        con = self.clients.pop(fd, None)
        if con is None:
            return
        con.clients.discard(fd)
        if self.paused.pop(fd, None) is None:
            self.poll.unregister(fd)
        os.close(fd)

    def _pause(self, con: Console, now: float) -> None:
        self._pause_fd(con, con.master, now)

    def _pause_fd(self, con: Console, fd: int, now: float) -> None:
        if fd in self.paused:
            return
        self.poll.unregister(fd)
        # resume once a useful chunk has accrued, not after every byte
        self.paused[fd] = now + min(con.burst, 4096) / con.rate

    def resume_due(self) -> float:
        """Put paused consoles whose time came back in the poll set;
        returns the seconds until the next one is due (or 1.0)."""
        now = time.monotonic()
        wait = 1.0
        for fd, due in list(self.paused.items()):
            if due <= now:
                del self.paused[fd]
                self.poll.register(fd, select.POLLIN)
            else:
                wait = min(wait, due - now)
        return wait

    def close(self, con: Console) -> None:
        for fd in list(con.clients):
            self.detach(fd)
        if con.master is not None:
            if self.paused.pop(con.master, None) is None:
                self.poll.unregister(con.master)
            self.by_fd.pop(con.master, None)
            os.close(con.master)
            con.master = None
        if con.slave is not None:
            os.close(con.slave)
            con.slave = None
