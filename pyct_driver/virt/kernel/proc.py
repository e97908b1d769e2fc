"""Process and namespace calls: fork without Python's hooks, unshare,
setns, a raw clone into a new user namespace, prctl, capabilities,
sethostname, close_range, the open-file limit, and installing a seccomp
filter.

The namespace flag constants (``CLONE_NEW*``) are declared here once.
Each call raises ``OSError`` with errno, so callers can wrap it in a
``ProcessError`` that names the step that failed. No policy here: which
capabilities a guest keeps and what its seccomp filter denies are
``virt.process``'s business.
"""

from __future__ import annotations

import ctypes
import resource

from pyct_driver.virt.kernel import libc, sysnr

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000
SIGCHLD = 17
CLOSE_RANGE_CLOEXEC = 0x4
PR_SET_CHILD_SUBREAPER = 36
PR_SET_NO_NEW_PRIVS = 38
PR_CAPBSET_DROP = 24
PR_CAP_AMBIENT = 47
PR_CAP_AMBIENT_CLEAR_ALL = 4
SECCOMP_SET_MODE_FILTER = 1
_LINUX_CAPABILITY_VERSION_3 = 0x20080522


def fork_bare() -> int:
    """fork(2) without Python's at-fork hooks (threading, logging, random
    re-initialising in the child: ~0.5 ms of a spawn's critical path).
    Only for the single-threaded launcher and its spawn children, which
    run pyct's own code and then exec or exit."""
    return libc.current().call("fork", what="fork")


def clone_newuser() -> int | None:
    """A raw clone(2) of the caller into a new user namespace (flags
    only, like fork() without Python's hooks: single-threaded callers
    whose child only reads a pipe and exits); 0 in the child, the pid in
    the parent, None where the raw call is not available or refused."""
    if sysnr.lookup("clone") is None:
        return None
    try:
        return libc.current().syscall("clone", CLONE_NEWUSER | SIGCHLD,
                                      0, 0, 0, 0)
    except OSError:
        return None


def unshare(flags: int) -> None:
    libc.current().call("unshare", flags, what="unshare")


def setns(fd: int, nstype: int = 0) -> None:
    libc.current().call("setns", fd, nstype, what="setns")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
          arg5: int = 0) -> int:
    return libc.current().call("prctl", option, arg2, arg3, arg4, arg5,
                               what=f"prctl({option})")


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)


def sethostname(name: str) -> None:
    raw = name.encode()
    libc.current().call("sethostname", raw, len(raw), what="sethostname")


def close_range(first: int, last: int, flags: int = 0) -> None:
    libc.current().syscall("close_range", first, last, flags)


def limit_nofile(soft: int, hard: int) -> None:
    """Set RLIMIT_NOFILE; a caller without CAP_SYS_RESOURCE cannot raise
    its hard limit, so it gets at most the one it has."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    except ValueError:
        hard = min(hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [("effective", ctypes.c_uint32),
                ("permitted", ctypes.c_uint32),
                ("inheritable", ctypes.c_uint32)]


def drop_bounding(keep_mask: int, last_cap: int) -> None:
    """Drop every capability up to ``last_cap`` not in ``keep_mask`` from
    the bounding set, and empty the inheritable and ambient sets (needs
    CAP_SETPCAP); effective and permitted stay as they are."""
    for cap in range(last_cap + 1):
        if not keep_mask & (1 << cap):
            prctl(PR_CAPBSET_DROP, cap)
    prctl(PR_CAP_AMBIENT, PR_CAP_AMBIENT_CLEAR_ALL)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    lib = libc.current()
    for func in ("capget", "capset"):
        lib.call(func, ctypes.addressof(header), ctypes.addressof(data),
                 what=func)
        for half in data:
            half.inheritable = 0


class _SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def seccomp_filter(code: bytes) -> None:
    """Install the classic-BPF ``struct sock_filter`` array ``code`` as
    the calling thread's seccomp filter (SECCOMP_SET_MODE_FILTER, no
    flags): inherited across fork and execve, never removed."""
    buf = ctypes.create_string_buffer(code, len(code))
    prog = _SockFprog(len(code) // 8, ctypes.addressof(buf))
    libc.current().syscall("seccomp", SECCOMP_SET_MODE_FILTER, 0,
                           libc.pointer(prog), what="seccomp")
