"""The child side of a spawn: from a fresh fork of the launcher to the guest's init.

The launcher forks C1, which calls ``child_main``: C1 joins the guest's
cgroups, unshares every namespace but the user one, forks C2 (PID 1 of the
new pid namespace) and exits. C2 builds the guest's view of the world — root
bind-mounted and pivoted into, /proc, read-only /sys, a tmpfs /dev holding
only safe nodes, a private devpts, the console pty at /dev/console, tmpfs
/dev/shm and /run — makes the pty its controlling terminal and execs the init
with a clean environment. With ``GuestSpec.hold`` C2 stops just before the
exec: it reports ``{"held": true}`` and blocks reading the hold pipe until
the launcher writes the go byte (``release``) -- the create/start split that
lets the host plumb the guest's network namespace before its init runs; EOF
instead (launcher gone, guest forgotten) makes it exit. Each step that can
fail is named; a failure is written as one JSON line on the CLOEXEC report
pipe so the launcher can raise a ProcessError naming it. EOF on that pipe without an error means the exec
succeeded; ``wait_for_exec`` is the launcher's side of that handshake.
The kernel calls Python lacks (unshare, mount, pivot_root,
close_range, ...) are ctypes wrappers here.
"""

from __future__ import annotations

import ctypes
import errno
import fcntl
import json
import os
import platform
import select
import signal
import stat
import termios
import time
from typing import NoReturn

from pyct_driver import exception
from pyct_driver.virt.process import cgroupfs, spec as spec_mod

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
GUEST_NAMESPACES = (CLONE_NEWNS | CLONE_NEWUTS | CLONE_NEWIPC | CLONE_NEWNET
                    | CLONE_NEWPID | CLONE_NEWCGROUP)

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
CLOSE_RANGE_CLOEXEC = 0x4

# pivot_root has no glibc wrapper; close_range's number is the same on all
# architectures (it is newer than the syscall table unification).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203,
                   "s390x": 217}
_SYS_CLOSE_RANGE = 436

DEV_NODES = ("null", "zero", "full", "random", "urandom", "tty")
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    enc = (lambda s: s.encode() if s is not None else None)
    _check(_libc.mount(enc(source), enc(target), enc(fstype),
                       ctypes.c_ulong(flags), enc(data)), f"mount {target}")


def umount2(target: str, flags: int) -> None:
    _check(_libc.umount2(target.encode(), ctypes.c_int(flags)),
           f"umount {target}")


def pivot_root(new_root: str, put_old: str) -> None:
    nr = _SYS_PIVOT_ROOT.get(platform.machine())
    if nr is None:
        raise OSError(errno.ENOSYS, f"pivot_root: unknown syscall number "
                      f"on {platform.machine()}")
    _check(_libc.syscall(ctypes.c_long(nr), new_root.encode(),
                         put_old.encode()), "pivot_root")


def sethostname(name: str) -> None:
    raw = name.encode()
    _check(_libc.sethostname(raw, ctypes.c_size_t(len(raw))), "sethostname")


def close_range(first: int, last: int, flags: int = 0) -> None:
    _check(_libc.syscall(ctypes.c_long(_SYS_CLOSE_RANGE), ctypes.c_uint(first),
                         ctypes.c_uint(last), ctypes.c_uint(flags)),
           "close_range")


def _step(name: str, func, *args):
    """Run one setup step; an OSError becomes a ProcessError naming it."""
    try:
        return func(*args)
    except OSError as err:
        raise exception.ProcessError(
            reason=f"{name}: {err.strerror or err}", step=name,
            errno=err.errno) from err


def _report(fd: int, message: dict) -> None:
    # One line under PIPE_BUF is written atomically, so C1's and C2's lines
    # never interleave on the shared pipe.
    data = json.dumps(message).encode()[:3000] + b"\n"
    try:
        os.write(fd, data)
    except OSError:
        pass


def _fail(fd: int, err: BaseException) -> NoReturn:
    if isinstance(err, exception.ProcessError):
        _report(fd, {"error": err.kwargs.get("reason", err.message),
                     "step": err.kwargs.get("step"),
                     "errno": err.kwargs.get("errno")})
    else:
        _report(fd, {"error": f"unexpected {type(err).__name__}: {err}",
                     "step": "internal"})
    os._exit(127)


def _reset_signals() -> None:
    # The launcher's Python runtime ignores SIGPIPE/SIGXFSZ and catches
    # SIGCHLD into its wakeup pipe; exec would keep the ignores, so put every
    # disposition back to default before the guest sees them.
    signal.set_wakeup_fd(-1)
    for sig in signal.valid_signals():
        if sig in (signal.SIGKILL, signal.SIGSTOP):
            continue
        try:
            signal.signal(sig, signal.SIG_DFL)
        except (OSError, ValueError):
            pass
    signal.pthread_sigmask(signal.SIG_SETMASK, [])


RELEASE_BYTE = b"g"


def child_main(guest: spec_mod.GuestSpec, console_fd: int,
               report_fd: int, hold_fd: int | None = None) -> NoReturn:
    """C1: join cgroups, unshare, fork the guest's PID 1, report it, exit."""
    try:
        _reset_signals()
        for procs in guest.cgroup_procs:
            _step(f"join cgroup {procs}", _write_file, procs,
                  str(os.getpid()))
        _step("unshare namespaces", unshare, GUEST_NAMESPACES)
        pid = _step("fork guest init", os.fork)
        if pid == 0:
            _guest_main(guest, console_fd, report_fd, hold_fd)
        _report(report_fd, {"pid": pid})
        os._exit(0)
    except BaseException as err:  # noqa: B902 - never return into the launcher
        _fail(report_fd, err)


def _guest_main(guest: spec_mod.GuestSpec, console_fd: int,
                report_fd: int, hold_fd: int | None = None) -> NoReturn:
    """C2, PID 1 of the new pid namespace: build the guest's root and exec."""
    try:
        setup_root(guest.root, console_fd)
        _step("sethostname", sethostname, guest.hostname)
        _step("attach console", _attach_console, console_fd)
        _step("close inherited fds", _cloexec_all_but_stdio, report_fd)
        env = {"PATH": DEFAULT_PATH, "TERM": "linux", "container": "pyct",
               "HOME": "/root"}
        env.update(guest.env or {})
        if hold_fd is not None:
            _report(report_fd, {"held": True})
            if _step("wait for release", os.read, hold_fd, 1) != RELEASE_BYTE:
                os._exit(0)  # never released: leave quietly, exec nothing
        _step(f"exec {guest.argv[0]}", os.execve, guest.argv[0],
              list(guest.argv), env)
    except BaseException as err:  # noqa: B902 - never return into C1's code
        _fail(report_fd, err)
    os._exit(127)


def setup_root(root: str, console_fd: int) -> None:
    """The mount recipe; runs in the guest's fresh mount namespace.

    Bind mounts from host paths must happen before pivot_root (afterwards the
    host mounts are detached and can no longer be a bind source). Before the
    pivot the only guest-controlled path used is ``root/dev`` itself, checked
    not to be a symlink; no guest process exists yet to race the check, and
    everything below it is our fresh tmpfs. Everything else is mounted after
    the pivot, where guest symlinks can only resolve inside the guest's root.
    """
    _step("make / rprivate", mount, None, "/", None, MS_REC | MS_PRIVATE)
    _step("bind root", mount, root, root, None, MS_BIND | MS_REC)
    dev = os.path.join(root, "dev")
    _step("check /dev", _ensure_real_dir, dev)
    _step("mount /dev", mount, "tmpfs", dev, "tmpfs", MS_NOSUID,
          "mode=755,size=65536k")
    for node in DEV_NODES:
        target = os.path.join(dev, node)
        _step(f"bind /dev/{node}", _bind_file, f"/dev/{node}", target)
    # By name, not /proc/self/fd/N: that magic link points at the pty in the
    # launcher's mount namespace, which mount(2) refuses as a bind source.
    tty = _step("find console name", os.ttyname, console_fd)
    _step("bind /dev/console", _bind_file, tty, os.path.join(dev, "console"))
    for name in ("pts", "shm"):
        _step(f"mkdir /dev/{name}", os.mkdir, os.path.join(dev, name), 0o755)
    _step("chdir root", os.chdir, root)
    _step("pivot_root", pivot_root, ".", ".")
    _step("detach old root", umount2, ".", MNT_DETACH)
    _step("chdir /", os.chdir, "/")

    _step("mount /proc", _mount_dir, "proc", "/proc", "proc",
          MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    _step("mount /sys", _mount_dir, "sysfs", "/sys", "sysfs",
          MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC, None)
    _step("mount /sys/fs/cgroup", cgroupfs.mount_cgroupfs)
    _step("mount /dev/pts", mount, "devpts", "/dev/pts", "devpts",
          MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620,gid=5")
    _step("mount /dev/shm", mount, "tmpfs", "/dev/shm", "tmpfs",
          MS_NOSUID | MS_NODEV, "mode=1777")
    _step("mount /run", _mount_dir, "tmpfs", "/run", "tmpfs",
          MS_NOSUID | MS_NODEV, "mode=755")
    links = {"ptmx": "pts/ptmx", "fd": "/proc/self/fd",
             "stdin": "/proc/self/fd/0", "stdout": "/proc/self/fd/1",
             "stderr": "/proc/self/fd/2"}
    for name, target in links.items():
        _step(f"symlink /dev/{name}", os.symlink, target, f"/dev/{name}")


def _read_report(fd: int, deadline: float,
                 until_held: bool) -> tuple[int | None, dict | None, bool,
                                            bool]:
    """Read report lines until EOF (or, if ``until_held``, the pid and the
    held line); returns (pid, first error, timed out, held)."""
    data = b""
    pid, error, held = None, None, False
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            return pid, error, True, held
        ready, _, _ = select.select([fd], [], [], remaining)
        if not ready:
            continue
        chunk = os.read(fd, 4096)
        if not chunk:
            return pid, error, False, held
        data += chunk
        *lines, data = data.split(b"\n")
        for line in lines:
            message = spec_mod.decode(line)
            if "pid" in message:
                pid = int(message["pid"])
            elif message.get("held"):
                held = True
            elif error is None:
                error = message
        if until_held and pid is not None and (held or error is not None):
            return pid, error, False, held


def wait_for_exec(fd: int, c1: int, deadline: float,
                  until_held: bool = False) -> tuple[int | None, dict | None]:
    """Parent side of the handshake: wait for EOF on the report pipe.

    Returns (guest pid, None) once the init is exec'd -- or, with
    ``until_held``, once it waits for release; ``fd`` then stays open for
    ``wait_for_release`` -- or (None, error) after reaping C1 and any failed
    C2 (the caller must be the subreaper so a failed C2 is its child to
    reap).
    """
    try:
        pid, error, timed_out, held = _read_report(fd, deadline, until_held)
    except BaseException:
        os.close(fd)
        raise
    if until_held and not held and error is None and not timed_out:
        error = {"error": "guest init exited before it was held",
                 "step": "hold"}
    if not until_held or error is not None or timed_out:
        os.close(fd)
    if timed_out:
        error = {"error": "guest setup did not finish by its deadline",
                 "step": "timeout"}
        for victim in (c1, pid):
            if victim:
                _kill(victim)
    _waitpid(c1)
    if error is not None and pid is not None:
        # The failed PID 1 is ours now (C1 exited, we are the subreaper).
        _kill(pid)
        _waitpid(pid)
        pid = None
    return pid, error


def wait_for_release(fd: int, pid: int, deadline: float) -> dict | None:
    """After the go byte: EOF on the report pipe means the init is exec'd.

    Returns None, or the error after killing the failed init (the caller's
    SIGCHLD handling reaps it). Closes ``fd``.
    """
    try:
        _pid, error, timed_out, _held = _read_report(fd, deadline, False)
    finally:
        os.close(fd)
    if timed_out and error is None:
        error = {"error": "guest init did not exec by its deadline",
                 "step": "timeout"}
    if error is not None:
        _kill(pid)
    return error


def _kill(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _waitpid(pid: int) -> None:
    try:
        os.waitpid(pid, 0)
    except ChildProcessError:
        pass


def _write_file(path: str, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CLOEXEC)
    try:
        os.write(fd, text.encode())
    finally:
        os.close(fd)


def _ensure_real_dir(path: str) -> None:
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        os.mkdir(path, 0o755)
        return
    if not stat.S_ISDIR(st.st_mode):
        raise OSError(errno.ENOTDIR, f"{path} is not a directory (symlink?)")


def _bind_file(source: str, target: str) -> None:
    os.close(os.open(target, os.O_CREAT | os.O_EXCL | os.O_WRONLY
                     | os.O_CLOEXEC, 0o644))
    mount(source, target, None, MS_BIND)


def _mount_dir(source: str, target: str, fstype: str, flags: int,
               data: str | None) -> None:
    if not os.path.isdir(target):
        os.mkdir(target, 0o755)
    mount(source, target, fstype, flags, data)


def _attach_console(fd: int) -> None:
    os.setsid()
    fcntl.ioctl(fd, termios.TIOCSCTTY, 0)
    for target in (0, 1, 2):
        os.dup2(fd, target, inheritable=True)


def _cloexec_all_but_stdio(report_fd: int) -> None:
    # CLOEXEC rather than close: the report pipe must survive until the exec
    # succeeds, and then every host fd (listening socket, other guests' pty
    # masters, log files) vanishes atomically with it.
    try:
        close_range(3, 0xFFFFFFFF, CLOSE_RANGE_CLOEXEC)
    except OSError:
        for name in os.listdir("/proc/self/fd"):
            fd = int(name)
            if fd > 2:
                try:
                    os.set_inheritable(fd, False)
                except OSError:
                    pass
