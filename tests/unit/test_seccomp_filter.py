"""The generated seccomp program, run through a classic-BPF interpreter."""

import errno
import re
import struct

import pytest

from pyct_driver import exception
from pyct_driver.virt.process.guestinit import seccomp

ARCHES = ("x86_64", "aarch64")
ALLOW = seccomp.SECCOMP_RET_ALLOW
KILL = seccomp.SECCOMP_RET_KILL_PROCESS


def ret_errno(e):
    return seccomp.SECCOMP_RET_ERRNO | e


def decode(code):
    assert len(code) % 8 == 0
    return [struct.unpack("<HBBI", code[i:i + 8])
            for i in range(0, len(code), 8)]


def run(code, arch_id, nr, args=(0,) * 6):
    """Evaluate the filter on one seccomp_data, as the kernel would."""
    data = struct.pack("<iIQ6Q", nr, arch_id, 0, *args)
    insns = decode(code)
    pc, acc = 0, 0
    for _ in range(len(insns)):
        op, jt, jf, k = insns[pc]
        if op == 0x20:
            acc = struct.unpack_from("<I", data, k)[0]
            pc += 1
        elif op in (0x15, 0x35, 0x45):
            cond = {0x15: acc == k, 0x35: acc >= k, 0x45: bool(acc & k)}[op]
            pc += 1 + (jt if cond else jf)
        elif op == 0x06:
            return k
        else:
            raise AssertionError(f"unexpected opcode {op:#x}")
    raise AssertionError("program fell off the end")


@pytest.mark.parametrize("arch", ARCHES)
def test_arch_check_comes_first_and_kills_foreign(arch):
    code = seccomp.build_filter(arch)
    insns = decode(code)
    assert insns[0] == (0x20, 0, 0, 4)  # load seccomp_data.arch
    assert insns[1][0] == 0x15 and insns[1][3] == seccomp.AUDIT_ARCH[arch]
    assert insns[2] == (0x06, 0, 0, KILL)
    for foreign in (0x40000003, 0x40000028, 0xC00000B7, 0xC000003E):
        if foreign != seccomp.AUDIT_ARCH[arch]:
            # i386's getpid, arm's write... numbers are irrelevant: killed.
            assert run(code, foreign, 20) == KILL


@pytest.mark.parametrize("arch", ARCHES)
def test_every_denied_syscall_present(arch):
    code = seccomp.build_filter(arch)
    aid = seccomp.AUDIT_ARCH[arch]
    nrs = seccomp.SYSCALLS[arch]
    checked = 0
    for name in seccomp.DENIED:
        if name in ("socket", "socketpair", "personality"):
            continue
        if name not in nrs:
            assert name in ("iopl", "ioperm", "uselib", "_sysctl",
                            "create_module", "get_kernel_syms",
                            "query_module") and arch == "aarch64"
            continue
        want = errno.ENOSYS if name in seccomp._ERRNO else errno.EPERM
        assert run(code, aid, nrs[name]) == ret_errno(want), name
        checked += 1
    assert checked >= (42 if arch == "x86_64" else 35)
    assert len(code) // 8 < seccomp.BPF_MAXINSNS


@pytest.mark.parametrize("arch", ARCHES)
def test_everything_else_allowed(arch):
    code = seccomp.build_filter(arch)
    aid = seccomp.AUDIT_ARCH[arch]
    denied = set(seccomp.SYSCALLS[arch].values()) - {
        seccomp.SYSCALLS[arch][n] for n in ("socket", "socketpair",
                                            "personality")}
    for nr in range(0, 470):
        if nr not in denied:
            assert run(code, aid, nr) == ALLOW, nr


@pytest.mark.parametrize("arch", ARCHES)
@pytest.mark.parametrize("call", ["socket", "socketpair"])
def test_socket_families(arch, call):
    code = seccomp.build_filter(arch)
    aid, nr = seccomp.AUDIT_ARCH[arch], seccomp.SYSCALLS[arch][call]
    for family in (38, 40, (1 << 32) | 40):  # high word ignored, as kernel
        assert run(code, aid, nr, (family, 1, 0, 0, 0, 0)) == \
            ret_errno(errno.EAFNOSUPPORT)
    for family in (1, 2, 10, 16, 17, 39, 41):
        assert run(code, aid, nr, (family, 1, 0, 0, 0, 0)) == ALLOW


@pytest.mark.parametrize("arch", ARCHES)
def test_personality(arch):
    code = seccomp.build_filter(arch)
    aid, nr = seccomp.AUDIT_ARCH[arch], seccomp.SYSCALLS[arch]["personality"]
    for ok in (0, 8, 0x20000, 0x40000, 0x60008, 0xFFFFFFFF):
        assert run(code, aid, nr, (ok, 0, 0, 0, 0, 0)) == ALLOW
    for bad in (0x0400000, 0x0100000, 0x10, 0x1):  # RIE, PAGE_ZERO, SVR4...
        assert run(code, aid, nr, (bad, 0, 0, 0, 0, 0)) == \
            ret_errno(errno.EPERM)


def test_x32_refused_on_x86_64():
    code = seccomp.build_filter("x86_64")
    aid = seccomp.AUDIT_ARCH["x86_64"]
    assert run(code, aid, 0x40000000 | 39) == KILL
    assert run(code, aid, 39) == ALLOW


def test_reboot_ptrace_mount_allowed():
    for arch, nrs in (("x86_64", (169, 101, 165, 166, 272, 303)),
                      ("aarch64", (142, 117, 40, 39, 97, 264))):
        code = seccomp.build_filter(arch)
        for nr in nrs:
            assert run(code, seccomp.AUDIT_ARCH[arch], nr) == ALLOW


def test_x86_64_table_matches_headers():
    path = "/usr/include/x86_64-linux-gnu/asm/unistd_64.h"
    try:
        with open(path) as f:
            text = f.read()
    except FileNotFoundError:
        pytest.fail(f"{path} missing (linux-libc-dev)")
    header = {m[0]: int(m[1]) for m in
              re.findall(r"#define __NR_(\w+) (\d+)", text)}
    for name, nr in seccomp.SYSCALLS["x86_64"].items():
        if name in header:
            assert header[name] == nr, name


def test_generic_table_matches_headers():
    with open("/usr/include/asm-generic/unistd.h") as f:
        text = f.read()
    header = {m[0]: int(m[1]) for m in
              re.findall(r"#define __NR(?:3264)?_(\w+) (\d+)", text)}
    for name, nr in seccomp.SYSCALLS["aarch64"].items():
        if name in header:
            assert header[name] == nr, name


def test_unknown_arch_refused():
    with pytest.raises(exception.ProcessError):
        seccomp.build_filter("s390x")
