"""cgroup v2's device allow-list: an eBPF program generated here and attached.

cgroup v2 has no devices controller; the kernel instead runs a
BPF_PROG_TYPE_CGROUP_DEVICE program attached to the group (and inherited by
its sub-groups) on every open and mknod of a device node, and refuses the
access when it returns 0. ``build_program`` turns ``"c 1:3 rwm"`` rules into
such a program, the way runc does; ``attach`` loads it with bpf(2) through
ctypes and attaches it with flags 0, which replaces a program attached
before (a resize re-applies limits) and forbids sub-groups from overriding
it. The guest cannot detach it: bpf(2) is in its seccomp deny list. The
program stays alive while it is attached, so the fds are closed at once.
"""

from __future__ import annotations

import ctypes
import os
import platform
import struct
from typing import Iterable

from pyct_driver import exception
from pyct_driver.virt.cgroups import base

CGROUP2_SUPER_MAGIC = 0x63677270
BPF_PROG_LOAD = 5
BPF_PROG_ATTACH = 8
BPF_PROG_DETACH = 9
BPF_PROG_TYPE_CGROUP_DEVICE = 15
BPF_CGROUP_DEVICE = 6
_SYS_BPF = {"x86_64": 321, "aarch64": 280}
_ATTR_SIZE = 128

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; };
# access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
DEV_TYPE = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}

_LDX_W = 0x61        # dst = *(u32 *)(src + off)
_AND32_K = 0x54
_RSH32_K = 0x74
_MOV32_X = 0xBC
_MOV64_K = 0xB7
_JNE_K = 0x55
_JNE_X = 0x5D
_EXIT = 0x95

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _insn(code: int, dst: int = 0, src: int = 0, off: int = 0,
          imm: int = 0) -> bytes:
    return struct.pack("<BBhi", code, (src << 4) | dst, off, imm)


def _rule_block(rule: base.DeviceRule) -> list[tuple]:
    """Checks that jump to the next rule ("next") when one does not match."""
    out: list[tuple] = []
    if rule.kind != "a":
        out.append((_JNE_K, 2, 0, "next", DEV_TYPE[rule.kind]))
    mask = sum(ACCESS_BITS[c] for c in rule.access)
    if mask != 7:
        # The requested access must be a subset of the rule's.
        out += [(_MOV32_X, 1, 3, 0, 0), (_AND32_K, 1, 0, 0, mask),
                (_JNE_X, 1, 3, "next", 0)]
    if rule.major is not None:
        out.append((_JNE_K, 4, 0, "next", rule.major))
    if rule.minor is not None:
        out.append((_JNE_K, 5, 0, "next", rule.minor))
    out += [(_MOV64_K, 0, 0, 0, 1), (_EXIT, 0, 0, 0, 0)]
    return out


def build_program(rules: Iterable[str]) -> bytes:
    """The eBPF instructions allowing exactly ``rules``; default deny."""
    code = [_insn(_LDX_W, 2, 1, 0), _insn(_AND32_K, 2, imm=0xFFFF),
            _insn(_LDX_W, 3, 1, 0), _insn(_RSH32_K, 3, imm=16),
            _insn(_LDX_W, 4, 1, 4), _insn(_LDX_W, 5, 1, 8)]
    for rule in rules:
        block = _rule_block(base.parse_device_rule(rule))
        for i, (op, dst, src, off, imm) in enumerate(block):
            if off == "next":
                off = len(block) - i - 1
            code.append(_insn(op, dst, src, off, imm))
        if len(block) == 2:
            # "a *:* rwm" matches everything: what follows is unreachable,
            # and the verifier refuses unreachable instructions.
            return b"".join(code)
    code += [_insn(_MOV64_K, 0, imm=0), _insn(_EXIT)]
    return b"".join(code)


def is_cgroup2(path: str) -> bool:
    """Whether ``path`` lives on a cgroup2 filesystem (statfs f_type)."""
    buf = ctypes.create_string_buffer(256)
    if _libc.statfs(os.fsencode(path), buf) != 0:
        return False
    return struct.unpack_from("l", buf)[0] == CGROUP2_SUPER_MAGIC


def _bpf(cmd: int, attr: bytes, what: str) -> int:
    nr = _SYS_BPF.get(platform.machine())
    if nr is None:
        raise exception.CgroupError(
            reason=f"bpf(2) number unknown on {platform.machine()}")
    buf = ctypes.create_string_buffer(attr.ljust(_ATTR_SIZE, b"\0"))
    ret = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(cmd), buf,
                        ctypes.c_uint(_ATTR_SIZE))
    if ret < 0:
        err = ctypes.get_errno()
        raise exception.CgroupError(
            reason=f"{what}: {os.strerror(err)}", errno=err)
    return ret


def load(rules: Iterable[str]) -> int:
    """Load the program for ``rules``; returns its fd (caller closes it)."""
    code = build_program(rules)
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"Apache-2.0")
    log = ctypes.create_string_buffer(65536)
    for level in (0, 1):  # the verifier's log only when it refuses
        attr = struct.pack(
            "<IIQQIIQII16s", BPF_PROG_TYPE_CGROUP_DEVICE, len(code) // 8,
            ctypes.addressof(insns), ctypes.addressof(license_), level,
            len(log) if level else 0, ctypes.addressof(log) if level else 0,
            0, 0, b"pyct_devices")
        try:
            return _bpf(BPF_PROG_LOAD, attr, "load device program")
        except exception.CgroupError as err:
            if level:
                raise exception.CgroupError(
                    reason=f"{err.kwargs['reason']}; verifier: "
                           f"{log.value.decode(errors='replace')[-500:]}"
                ) from err


def _attach_cmd(cmd: int, cgroup_dir: str, prog_fd: int, what: str) -> None:
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY
                         | os.O_CLOEXEC)
    except OSError as err:
        raise exception.CgroupError(
            reason=f"cannot open {cgroup_dir}: {err}") from err
    try:
        attr = struct.pack("<IIII", dir_fd, prog_fd, BPF_CGROUP_DEVICE, 0)
        _bpf(cmd, attr, f"{what} {cgroup_dir}")
    finally:
        os.close(dir_fd)


def attach_fd(cgroup_dir: str, prog_fd: int) -> None:
    """Attach a loaded program, replacing the one there (no override)."""
    _attach_cmd(BPF_PROG_ATTACH, cgroup_dir, prog_fd,
                "attach device program to")


def detach_fd(cgroup_dir: str, prog_fd: int) -> None:
    _attach_cmd(BPF_PROG_DETACH, cgroup_dir, prog_fd,
                "detach device program from")


def attach(cgroup_dir: str, rules: Iterable[str]) -> None:
    """Enforce ``rules`` on ``cgroup_dir`` and everything below it."""
    fd = load(rules)
    try:
        attach_fd(cgroup_dir, fd)
    finally:
        os.close(fd)
