"""Syscall numbers, per architecture, of every raw syscall pyct makes.

The one table: ``libc.Libc.syscall`` looks names up here, and the
guest's seccomp deny list (``virt.process.guestinit.seccomp``) takes its
numbers from it too, so a syscall is numbered once. Numbers come from
the kernel's
arch/x86/entry/syscalls/syscall_64.tbl, include/uapi/asm-generic/unistd.h
(aarch64), arch/powerpc/kernel/syscalls/syscall.tbl and
arch/s390/kernel/syscalls/syscall.tbl. Syscalls added after the tables
were unified (424 and up) share one number on every architecture
(``COMMON``). pivot_root and the raw clone have no glibc wrapper pyct can
use; bpf, seccomp, the new mount API, openat2 and close_range none at all
in the glibc versions pyct supports.
"""

from __future__ import annotations

import errno
import platform

COMMON: dict[str, int] = {
    "pidfd_send_signal": 424, "io_uring_setup": 425,
    "io_uring_enter": 426, "io_uring_register": 427, "open_tree": 428,
    "move_mount": 429, "fsopen": 430, "fsconfig": 431, "fsmount": 432,
    "fspick": 433, "pidfd_open": 434, "clone3": 435, "close_range": 436,
    "openat2": 437, "pidfd_getfd": 438, "mount_setattr": 442,
    "quotactl_fd": 443, "open_tree_attr": 467,
}

_OWN: dict[str, dict[str, int]] = {
    "x86_64": {
        "clone": 56, "pivot_root": 155, "bpf": 321, "seccomp": 317,
        "socket": 41, "socketpair": 53, "personality": 135,
        "add_key": 248, "keyctl": 250, "request_key": 249,
        "perf_event_open": 298, "userfaultfd": 323, "init_module": 175,
        "finit_module": 313, "delete_module": 176, "kexec_load": 246,
        "kexec_file_load": 320, "open_by_handle_at": 304, "swapon": 167,
        "swapoff": 168, "syslog": 103, "acct": 163, "settimeofday": 164,
        "clock_settime": 227, "clock_adjtime": 305, "adjtimex": 159,
        "lookup_dcookie": 212, "quotactl": 179, "nfsservctl": 180,
        "iopl": 172, "ioperm": 173, "uselib": 134, "_sysctl": 156,
        "create_module": 174, "get_kernel_syms": 177, "query_module": 178,
    },
    "aarch64": {
        "clone": 220, "pivot_root": 41, "bpf": 280, "seccomp": 277,
        "socket": 198, "socketpair": 199, "personality": 92,
        "add_key": 217, "keyctl": 219, "request_key": 218,
        "perf_event_open": 241, "userfaultfd": 282, "init_module": 105,
        "finit_module": 273, "delete_module": 106, "kexec_load": 104,
        "kexec_file_load": 294, "open_by_handle_at": 265, "swapon": 224,
        "swapoff": 225, "syslog": 116, "acct": 89, "settimeofday": 170,
        "clock_settime": 112, "clock_adjtime": 266, "adjtimex": 171,
        "lookup_dcookie": 18, "quotactl": 60, "nfsservctl": 42,
    },
    # s390x has clone too (120), but with its first two arguments
    # swapped: left out so nobody calls it with the common order.
    "ppc64le": {"clone": 120, "pivot_root": 203, "bpf": 361,
                "seccomp": 358},
    "s390x": {"pivot_root": 217, "bpf": 351, "seccomp": 348},
}

TABLE: dict[str, dict[str, int]] = {
    arch: {**own, **COMMON} for arch, own in _OWN.items()}


def machine() -> str:
    return platform.machine()


def lookup(name: str, arch: str | None = None) -> int | None:
    """``name``'s number on ``arch`` (default: this host), or None."""
    return TABLE.get(arch or machine(), COMMON).get(name)


def number(name: str, arch: str | None = None) -> int:
    """Like ``lookup``, but an unknown number is ENOSYS."""
    nr = lookup(name, arch)
    if nr is None:
        raise OSError(errno.ENOSYS, f"{name}: no syscall number known on "
                      f"{arch or machine()}")
    return nr
