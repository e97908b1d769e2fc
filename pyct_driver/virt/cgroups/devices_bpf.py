"""cgroup v2's device allow-list: an eBPF program generated here and attached.

cgroup v2 has no devices controller; the kernel instead runs a
BPF_PROG_TYPE_CGROUP_DEVICE program attached to the group (and inherited by
its sub-groups) on every open and mknod of a device node, and refuses the
access when it returns 0. ``build_program`` turns ``"c 1:3 rwm"`` rules into
such a program, the way runc does; ``attach`` loads it with bpf(2)
(``virt.kernel.bpf``, instructions encoded by ``virt.kernel.ebpf``) and
attaches it with flags 0, which replaces a program attached
before (a resize re-applies limits) and forbids sub-groups from overriding
it. The guest cannot detach it: bpf(2) is in its seccomp deny list. The
program stays alive while it is attached, so the fds are closed at once.
"""

from __future__ import annotations

import os
from typing import Iterable

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.kernel import bpf, ebpf, files

# struct bpf_cgroup_dev_ctx { u32 access_type; u32 major; u32 minor; };
# access_type = (BPF_DEVCG_ACC_* << 16) | BPF_DEVCG_DEV_*.
DEV_TYPE = {"b": 1, "c": 2}
ACCESS_BITS = {"m": 1, "r": 2, "w": 4}


def _rule_block(prog: ebpf.Program, rule: base.DeviceRule,
                nxt: str) -> bool:
    """Checks that jump to ``nxt`` (the next rule) when ``rule`` does not
    match, then "allow"; whether the rule matches everything."""
    start = len(prog)
    if rule.kind != "a":
        prog.jump(ebpf.JNE_K, DEV_TYPE[rule.kind], nxt, dst=2)
    mask = sum(ACCESS_BITS[c] for c in rule.access)
    if mask != 7:
        # The requested access must be a subset of the rule's.
        prog.op(ebpf.MOV32_X, dst=1, src=3)
        prog.op(ebpf.AND32_K, dst=1, imm=mask)
        prog.jump(ebpf.JNE_X, 0, nxt, dst=1, src=3)
    if rule.major is not None:
        prog.jump(ebpf.JNE_K, rule.major, nxt, dst=4)
    if rule.minor is not None:
        prog.jump(ebpf.JNE_K, rule.minor, nxt, dst=5)
    catch_all = len(prog) == start
    prog.op(ebpf.MOV64_K, dst=0, imm=1)
    prog.op(ebpf.EXIT)
    prog.label(nxt)
    return catch_all


def build_program(rules: Iterable[str]) -> bytes:
    """The eBPF instructions allowing exactly ``rules``; default deny."""
    prog = ebpf.Program()
    prog.op(ebpf.LDX_W, dst=2, src=1, off=0)     # r2 = device type
    prog.op(ebpf.AND32_K, dst=2, imm=0xFFFF)
    prog.op(ebpf.LDX_W, dst=3, src=1, off=0)     # r3 = access requested
    prog.op(ebpf.RSH32_K, dst=3, imm=16)
    prog.op(ebpf.LDX_W, dst=4, src=1, off=4)     # r4 = major
    prog.op(ebpf.LDX_W, dst=5, src=1, off=8)     # r5 = minor
    for num, rule in enumerate(rules):
        if _rule_block(prog, base.parse_device_rule(rule), f"rule{num}"):
            # "a *:* rwm" matches everything: what follows is unreachable,
            # and the verifier refuses unreachable instructions.
            return prog.assemble()
    prog.op(ebpf.MOV64_K, dst=0, imm=0)
    prog.op(ebpf.EXIT)
    return prog.assemble()


def is_cgroup2(path: str) -> bool:
    """Whether ``path`` lives on a cgroup2 filesystem (statfs f_type)."""
    return files.fs_type(path) == files.CGROUP2_SUPER_MAGIC


def load(rules: Iterable[str]) -> int:
    """Load the program for ``rules``; returns its fd (caller closes it)."""
    try:
        return bpf.prog_load(bpf.BPF_PROG_TYPE_CGROUP_DEVICE,
                             build_program(rules), "pyct_devices",
                             "Apache-2.0")
    except OSError as err:
        raise exception.CgroupError(
            reason=f"load device program: {err.strerror}",
            errno=err.errno) from err


def _attach_cmd(attach: bool, cgroup_dir: str, prog_fd: int) -> None:
    what = "attach device program to" if attach else \
        "detach device program from"
    try:
        dir_fd = os.open(cgroup_dir, os.O_RDONLY | os.O_DIRECTORY
                         | os.O_CLOEXEC)
    except OSError as err:
        raise exception.CgroupError(
            reason=f"cannot open {cgroup_dir}: {err}") from err
    try:
        if attach:
            bpf.prog_attach(dir_fd, prog_fd, bpf.BPF_CGROUP_DEVICE)
        else:
            bpf.prog_detach(dir_fd, prog_fd, bpf.BPF_CGROUP_DEVICE)
    except OSError as err:
        raise exception.CgroupError(
            reason=f"{what} {cgroup_dir}: {os.strerror(err.errno)}",
            errno=err.errno) from err
    finally:
        os.close(dir_fd)


def attach_fd(cgroup_dir: str, prog_fd: int) -> None:
    """Attach a loaded program, replacing the one there (no override)."""
    _attach_cmd(True, cgroup_dir, prog_fd)


def detach_fd(cgroup_dir: str, prog_fd: int) -> None:
    _attach_cmd(False, cgroup_dir, prog_fd)


def attach(cgroup_dir: str, rules: Iterable[str]) -> None:
    """Enforce ``rules`` on ``cgroup_dir`` and everything below it."""
    fd = load(rules)
    try:
        attach_fd(cgroup_dir, fd)
    finally:
        os.close(fd)
