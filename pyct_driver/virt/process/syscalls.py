"""The kernel calls the guest's start path needs and Python lacks.

ctypes wrappers for fork (without Python's at-fork hooks), unshare, setns,
mount, umount2, pivot_root, sethostname, close_range and prctl, plus the flag
constants the namespace and mount code share. Each raises ``OSError`` with the
errno, so callers can wrap it in a ``ProcessError`` that names the step that
failed. No policy here.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform
import resource

CLONE_NEWNS = 0x00020000
CLONE_NEWCGROUP = 0x02000000
CLONE_NEWUTS = 0x04000000
CLONE_NEWIPC = 0x08000000
CLONE_NEWUSER = 0x10000000
CLONE_NEWPID = 0x20000000
CLONE_NEWNET = 0x40000000

MS_RDONLY = 0x1
MS_NOSUID = 0x2
MS_NODEV = 0x4
MS_NOEXEC = 0x8
MS_REMOUNT = 0x20
MS_BIND = 0x1000
MS_REC = 0x4000
MS_PRIVATE = 0x40000
MNT_DETACH = 0x2
CLOSE_RANGE_CLOEXEC = 0x4
PR_SET_NO_NEW_PRIVS = 38

# pivot_root has no glibc wrapper; close_range's number is the same on all
# architectures (it is newer than the syscall table unification).
_SYS_PIVOT_ROOT = {"x86_64": 155, "aarch64": 41, "ppc64le": 203,
                   "s390x": 217}
_SYS_CLOSE_RANGE = 436

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long
LIBC = _libc  # for the few callers with structs of their own (caps)


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


def _enc(text: str | None) -> bytes | None:
    return text.encode() if text is not None else None


def fork_bare() -> int:
    """fork(2) without Python's at-fork hooks (threading, logging, random
    re-initialising in the child: ~0.5 ms of a spawn's critical path).
    Only for the single-threaded launcher and its spawn children, which
    run pyct's own code and then exec or exit."""
    return _check(_libc.fork(), "fork")


def unshare(flags: int) -> None:
    _check(_libc.unshare(ctypes.c_int(flags)), "unshare")


def setns(fd: int, nstype: int = 0) -> None:
    _check(_libc.setns(ctypes.c_int(fd), ctypes.c_int(nstype)), "setns")


def prctl(option: int, arg2: int = 0, arg3: int = 0, arg4: int = 0,
          arg5: int = 0) -> int:
    return _check(_libc.prctl(ctypes.c_int(option), ctypes.c_ulong(arg2),
                              ctypes.c_ulong(arg3), ctypes.c_ulong(arg4),
                              ctypes.c_ulong(arg5)), f"prctl({option})")


def mount(source: str | None, target: str, fstype: str | None, flags: int,
          data: str | None = None) -> None:
    _check(_libc.mount(_enc(source), _enc(target), _enc(fstype),
                       ctypes.c_ulong(flags), _enc(data)), f"mount {target}")


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


def limit_nofile(soft: int, hard: int) -> None:
    """Set RLIMIT_NOFILE; a caller without CAP_SYS_RESOURCE cannot raise
    its hard limit, so it gets at most the one it has."""
    try:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    except ValueError:
        hard = min(hard, resource.getrlimit(resource.RLIMIT_NOFILE)[1])
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(soft, hard), hard))


def set_no_new_privs() -> None:
    prctl(PR_SET_NO_NEW_PRIVS, 1)
