"""The guest's seccomp deny list: classic BPF made here, installed before exec.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.
``install`` also runs in ``server exec``'s E2 (a fork of the fork server:
``forkserver.guest_exec``).

Guests run as root with the host's capabilities, so the kernel interfaces
that are not namespaced (modules, kexec, the clock, keyrings, swap, raw I/O
ports) or that have been a steady source of kernel exploits (bpf, io_uring,
userfaultfd, perf events, AF_ALG, AF_VSOCK) are refused before the kernel
looks at their arguments. Everything else is allowed: it is a deny list, so
a guest distribution behaves as on a VM. The program checks the AUDIT_ARCH
first and kills a process that enters through a foreign ABI (i386 compat on
x86_64, x32, arm32 on aarch64) — each ABI has its own syscall numbers, so a
deny list written for one would be bypassed through another. Calls whose
verdict does not depend on arguments come out as constant-allow, which the
kernel (5.11+) caches per syscall number, so allowed calls cost nothing.
A pyct:nesting guest gets a variant that allows nothing more: keyrings
fail with ENOSYS instead of EPERM (``NESTING_ERRNO``), which nested
runtimes take as "no keyrings here". ``install`` runs in the guest's PID 1
right before execve; no_new_privs is not set (the caller has
CAP_SYS_ADMIN), so setuid programs keep working.
"""

from __future__ import annotations

import errno
import functools
import platform
import struct

from pyct_driver import exception
from pyct_driver.virt.kernel import proc, sysnr

SECCOMP_RET_KILL_PROCESS = 0x80000000
SECCOMP_RET_ERRNO = 0x00050000
SECCOMP_RET_ALLOW = 0x7FFF0000
AUDIT_ARCH = {"x86_64": 0xC000003E, "aarch64": 0xC00000B7}
X32_SYSCALL_BIT = 0x40000000
BPF_MAXINSNS = 4096

# seccomp_data: int nr; u32 arch; u64 instruction_pointer; u64 args[6].
# Both supported arches are little-endian: an argument's low word comes first.
_OFF_NR, _OFF_ARCH, _OFF_ARG0 = 0, 4, 16

_LD_W_ABS = 0x20
_JEQ_K, _JGE_K, _JSET_K = 0x15, 0x35, 0x45
_RET_K = 0x06

AF_ALG = 38
AF_VSOCK = 40
# Personality bits a guest may set: 32-bit uname, 2.6-style uname and
# disabling its own ASLR. The kernel clears the latter on setuid exec;
# READ_IMPLIES_EXEC, MMAP_PAGE_ZERO and the foreign-OS personas stay out.
PERSONALITY_SAFE_BITS = 0x0008 | 0x0020000 | 0x0040000
PERSONALITY_QUERY = 0xFFFFFFFF

_ENOSYS_WHY = ("new mount API: refused as not implemented so libmount and "
               "systemd fall back to mount(2), which the guest keeps; "
               "fsconfig's parameter parser was CVE-2022-0185")
DENIED: dict[str, str] = {
    "add_key": "kernel keyrings are not namespaced (host keys, quota DoS)",
    "keyctl": "kernel keyrings are not namespaced (host keys, quota DoS)",
    "request_key": "kernel keyrings are not namespaced; upcalls run on host",
    "bpf": "eBPF is a kernel attack surface; would also detach the "
           "cgroup2 device program that guards the host's devices",
    "perf_event_open": "perf events leak host-wide data; frequent CVEs",
    "userfaultfd": "used to widen kernel race windows in exploits",
    "io_uring_setup": "io_uring: large attack surface, many CVEs",
    "io_uring_enter": "io_uring: large attack surface, many CVEs",
    "io_uring_register": "io_uring: large attack surface, many CVEs",
    "init_module": "would load code into the host kernel",
    "finit_module": "would load code into the host kernel",
    "delete_module": "would unload the host kernel's modules",
    "kexec_load": "would replace the host kernel",
    "kexec_file_load": "would replace the host kernel",
    "open_by_handle_at": "opens any inode on a host filesystem by handle "
                         "(the 'shocker' escape)",
    "swapon": "host swap configuration",
    "swapoff": "host swap configuration",
    "syslog": "host kernel log (addresses, other tenants' messages)",
    "acct": "host-wide process accounting",
    "settimeofday": "the clock is the host's",
    "clock_settime": "the clock is the host's",
    "clock_adjtime": "the clock is the host's (timex has no read-only "
                     "flag a filter can see)",
    "adjtimex": "the clock is the host's (timex has no read-only flag a "
                "filter can see)",
    "lookup_dcookie": "profiling interface that leaks host paths",
    "quotactl": "host filesystem quotas",
    "quotactl_fd": "host filesystem quotas",
    "nfsservctl": "legacy kernel NFS server control",
    "iopl": "raw I/O port access to host hardware (x86)",
    "ioperm": "raw I/O port access to host hardware (x86)",
    "uselib": "legacy a.out loader, dead code in the kernel",
    "_sysctl": "legacy binary sysctl",
    "create_module": "module loading (legacy)",
    "get_kernel_syms": "module loading (legacy)",
    "query_module": "module loading (legacy)",
    "fsopen": _ENOSYS_WHY, "fsconfig": _ENOSYS_WHY, "fsmount": _ENOSYS_WHY,
    "fspick": _ENOSYS_WHY, "open_tree": _ENOSYS_WHY,
    "move_mount": _ENOSYS_WHY, "mount_setattr": _ENOSYS_WHY,
    "open_tree_attr": _ENOSYS_WHY,
    "socket": "only AF_ALG (kernel crypto, frequent CVEs) and AF_VSOCK "
              "(host channel): EAFNOSUPPORT",
    "socketpair": "only AF_ALG and AF_VSOCK: EAFNOSUPPORT",
    "personality": "only READ_IMPLIES_EXEC, MMAP_PAGE_ZERO and foreign "
                   "personas: EPERM",
}
_ERRNO = {name: errno.ENOSYS for name in
          ("fsopen", "fsconfig", "fsmount", "fspick", "open_tree",
           "move_mount", "mount_setattr", "open_tree_attr")}
# The deny list's numbers, from the one syscall table (``sysnr``).
SYSCALLS: dict[str, dict[str, int]] = {
    arch: {name: nr for name, nr in sysnr.TABLE[arch].items()
           if name in DENIED} for arch in AUDIT_ARCH}
_ARG_CHECKED = ("socket", "socketpair", "personality")
# pyct:nesting's variant changes verdicts, allows nothing more: runc (and
# so Docker, containerd) joins a fresh session keyring for each container
# and gives up on any error but ENOSYS ("no keyrings here"), as it does
# under LXC's filter. Still refused: the keyrings stay host-wide.
NESTING_ERRNO = {name: errno.ENOSYS
                 for name in ("keyctl", "add_key", "request_key")}
# Kept ALLOWED on purpose: reboot (a guest's init reboots or powers off its
# own pid namespace), ptrace (confined to the guest's pid namespace), mount,
# umount2, unshare, setns, pivot_root (guest inits mount proc/tmpfs; a
# pyct:nesting guest runs containers), name_to_handle_at (systemd finds
# mount ids with it; the handle is useless without open_by_handle_at).


def native_arch() -> str:
    arch = platform.machine()
    if arch not in AUDIT_ARCH:
        raise exception.ProcessError(
            reason=f"no seccomp filter for architecture {arch}")
    return arch


def _assemble(prog: list[tuple]) -> bytes:
    """Resolve labels: entries are ("label", name) or (code, jt, jf, k)."""
    labels, pc = {}, 0
    for item in prog:
        if item[0] == "label":
            labels[item[1]] = pc
        else:
            pc += 1
    out, pc = [], 0
    for item in prog:
        if item[0] == "label":
            continue
        code, jt, jf, k = item
        offs = []
        for target in (jt, jf):
            off = (labels[target] - pc - 1 if isinstance(target, str)
                   else target)
            if not 0 <= off <= 255:
                raise exception.ProcessError(
                    reason=f"seccomp jump out of range at {pc}")
            offs.append(off)
        out.append(struct.pack("<HBBI", code, offs[0], offs[1], k))
        pc += 1
    return b"".join(out)


@functools.lru_cache(maxsize=None)
def build_filter(arch: str | None = None, nesting: bool = False) -> bytes:
    """The ``struct sock_filter`` array for ``arch`` (default: this host);
    ``nesting``: pyct:nesting's variant (``NESTING_ERRNO``)."""
    arch = arch or native_arch()
    verdicts = {**_ERRNO, **NESTING_ERRNO} if nesting else _ERRNO
    if arch not in SYSCALLS:
        raise exception.ProcessError(
            reason=f"no seccomp filter for architecture {arch}")
    nrs = SYSCALLS[arch]
    errno_ret = lambda e: SECCOMP_RET_ERRNO | e  # noqa: E731
    prog: list[tuple] = [
        (_LD_W_ABS, 0, 0, _OFF_ARCH),
        (_JEQ_K, 1, 0, AUDIT_ARCH[arch]),
        (_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        (_LD_W_ABS, 0, 0, _OFF_NR),
    ]
    if arch == "x86_64":
        prog.append((_JGE_K, "kill", 0, X32_SYSCALL_BIT))
    prog += [(_JEQ_K, "sock", 0, nrs["socket"]),
             (_JEQ_K, "sock", 0, nrs["socketpair"]),
             (_JEQ_K, "pers", 0, nrs["personality"])]
    for name in sorted(DENIED, key=lambda n: nrs.get(n, -1)):
        if name in nrs and name not in _ARG_CHECKED:
            label = ("enosys" if verdicts.get(name) == errno.ENOSYS
                     else "eperm")
            prog.append((_JEQ_K, label, 0, nrs[name]))
    prog += [
        ("label", "allow"), (_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ("label", "eperm"), (_RET_K, 0, 0, errno_ret(errno.EPERM)),
        ("label", "enosys"), (_RET_K, 0, 0, errno_ret(errno.ENOSYS)),
        ("label", "kill"), (_RET_K, 0, 0, SECCOMP_RET_KILL_PROCESS),
        # The domain is an int: the kernel ignores the register's high word.
        # BPF jumps only forward, so each argument check ends in its own
        # return instructions.
        ("label", "sock"), (_LD_W_ABS, 0, 0, _OFF_ARG0),
        (_JEQ_K, 1, 0, AF_ALG),
        (_JEQ_K, 0, 1, AF_VSOCK),
        (_RET_K, 0, 0, errno_ret(errno.EAFNOSUPPORT)),
        (_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        ("label", "pers"), (_LD_W_ABS, 0, 0, _OFF_ARG0),
        (_JEQ_K, 1, 0, PERSONALITY_QUERY),
        (_JSET_K, 1, 0, ~PERSONALITY_SAFE_BITS & 0xFFFFFFFF),
        (_RET_K, 0, 0, SECCOMP_RET_ALLOW),
        (_RET_K, 0, 0, errno_ret(errno.EPERM)),
    ]
    code = _assemble(prog)
    if len(code) // 8 >= BPF_MAXINSNS:
        raise exception.ProcessError(reason="seccomp filter too long")
    return code


def prepare() -> None:
    """Build both variants now: the fork server calls this at start, so
    every guest init it forks inherits them built (assembling one takes
    ~0.5 ms on the spawn's critical path)."""
    try:
        arch = native_arch()
    except exception.ProcessError:
        return  # ``install`` names the problem, guest by guest
    for nesting in (False, True):
        build_filter(arch, nesting)


def install(nesting: bool = False) -> None:
    """Apply the filter (``nesting``: pyct:nesting's variant) to the
    calling (single-threaded) process.

    Relies on CAP_SYS_ADMIN instead of no_new_privs, so setuid binaries in
    the guest keep their meaning. Inherited across fork and execve; cannot
    be removed. Raises ``ProcessError`` if the kernel refuses it.
    """
    try:
        proc.seccomp_filter(build_filter(native_arch(), nesting))
    except OSError as err:
        raise exception.ProcessError(
            reason=f"seccomp filter refused: {err.strerror}",
            step="seccomp", errno=err.errno) from err
