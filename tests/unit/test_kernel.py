"""virt.kernel without root: call sequences and errors through FakeLibc."""

from __future__ import annotations

import errno
import os
import re
import struct

import pytest

from pyct_driver.virt.cgroups import devices_bpf
from pyct_driver.virt.kernel import bpf, ebpf, files, libc, mounts, proc
from pyct_driver.virt.kernel import sysnr
from tests.unit.kernel_fake import FakeLibc, contents, open_fds


@pytest.fixture
def fake():
    double = FakeLibc()
    with libc.replaced(double):
        yield double
    for fd in open_fds(double.fds):
        os.close(fd)


def test_errno_becomes_the_matching_oserror(fake):
    fake.errors["mount"] = errno.ENOENT
    with pytest.raises(FileNotFoundError, match="mount tmpfs on /x"):
        mounts.mount("tmpfs", "/x", "tmpfs", mounts.MS_NOSUID, "size=1k")
    assert fake.calls == [("mount", (b"tmpfs", b"/x", b"tmpfs",
                                     mounts.MS_NOSUID, b"size=1k"))]


def test_real_libc_reports_errno():
    # no root needed: a bad fd is EBADF for anyone
    with pytest.raises(OSError) as info:
        proc.setns(-1, 0)
    assert info.value.errno == errno.EBADF
    assert "setns" in str(info.value)


def test_replaced_restores_the_real_handle():
    real = libc.current()
    with libc.replaced(FakeLibc()) as double:
        assert libc.current() is double
    assert libc.current() is real


def test_syscalls_are_numbered_from_the_one_table(fake, monkeypatch):
    monkeypatch.setattr(sysnr, "machine", lambda: "aarch64")
    mounts.pivot_root(".", ".")
    proc.close_range(3, 10)
    assert fake.names() == ["pivot_root", "close_range"]
    assert fake.numbers == [41, 436]


def test_unknown_number_is_enosys(fake, monkeypatch):
    monkeypatch.setattr(sysnr, "machine", lambda: "riscv64")
    with pytest.raises(OSError) as info:
        mounts.pivot_root(".", ".")
    assert info.value.errno == errno.ENOSYS and fake.calls == []
    assert proc.clone_newuser() is None   # falls back to fork+unshare
    assert sysnr.number("open_tree") == 428  # unified numbers work


@pytest.mark.parametrize("arch", sorted(sysnr.TABLE))
def test_every_architecture_knows_the_calls_pyct_makes(arch):
    table = sysnr.TABLE[arch]
    for name in ("pivot_root", "bpf", "seccomp", "open_tree", "move_mount",
                 "mount_setattr", "fsopen", "fsconfig", "fsmount",
                 "openat2", "close_range"):
        assert name in table, (arch, name)
    assert set(sysnr.TABLE) >= {"x86_64", "aarch64", "ppc64le", "s390x"}


@pytest.mark.parametrize("arch,header,pattern", [
    ("x86_64", "/usr/include/x86_64-linux-gnu/asm/unistd_64.h",
     r"#define __NR_(\w+) (\d+)"),
    ("aarch64", "/usr/include/asm-generic/unistd.h",
     r"#define __NR(?:3264)?_(\w+) (\d+)")])
def test_table_matches_kernel_headers(arch, header, pattern):
    with open(header) as f:
        numbers = dict(re.findall(pattern, f.read()))
    checked = 0
    for name, nr in sysnr.TABLE[arch].items():
        if name in numbers:
            assert int(numbers[name]) == nr, name
            checked += 1
    assert checked >= 40


def test_fs_mount_sequence(fake):
    mounts.fs_mount("overlay", [("lowerdir+", "/l1"), ("lowerdir+", 7),
                                ("upperdir", "/u")], "/t")
    assert fake.names() == ["fsopen", "fsconfig", "fsconfig", "fsconfig",
                            "fsconfig", "fsmount", "move_mount"]
    fs = fake.fds[0]
    cfg = [args for name, args in fake.calls if name == "fsconfig"]
    assert cfg[0] == (fs, mounts.FSCONFIG_SET_STRING, b"lowerdir+", b"/l1",
                      0)
    assert cfg[1] == (fs, mounts.FSCONFIG_SET_FD, b"lowerdir+", None, 7)
    assert cfg[3][1] == mounts.FSCONFIG_CMD_CREATE
    mnt = fake.fds[1]
    assert fake.calls[-1] == ("move_mount", (
        mnt, b"", mounts.AT_FDCWD, b"/t", mounts.MOVE_MOUNT_F_EMPTY_PATH))
    assert open_fds(fake.fds) == []


def test_fs_mount_failure_closes_and_stops(fake):
    fake.errors["fsconfig"] = errno.EINVAL
    with pytest.raises(OSError) as info:
        mounts.fs_mount("overlay", [("lowerdir+", 5)], "/t")
    assert info.value.errno == errno.EINVAL
    assert "fsmount" not in fake.names()
    assert open_fds(fake.fds) == []


def test_idmapped_clone(fake):
    tree = mounts.clone_with_attrs("/layer", mounts.MOUNT_ATTR_IDMAP, 9)
    name, args = fake.calls[0]
    assert name == "open_tree"
    assert args == (mounts.AT_FDCWD, b"/layer",
                    mounts.OPEN_TREE_CLONE | os.O_CLOEXEC)
    name, args = fake.calls[1]
    assert name == "mount_setattr" and args[0] == tree
    attr = contents(args[3])
    assert (attr.attr_set, attr.userns_fd) == (mounts.MOUNT_ATTR_IDMAP, 9)
    os.close(tree)


def test_idmap_refused_closes_the_clone(fake):
    fake.errors["mount_setattr"] = errno.EPERM
    with pytest.raises(PermissionError):
        mounts.clone_with_attrs("/layer", mounts.MOUNT_ATTR_IDMAP, 9)
    assert open_fds(fake.fds) == []


def test_clone_without_attrs_is_recursive_open_tree_only(fake):
    os.close(mounts.clone_with_attrs(".", 0, recursive=True))
    assert fake.names() == ["open_tree"]
    assert fake.calls[0][1][2] == (mounts.OPEN_TREE_CLONE
                                   | mounts.AT_RECURSIVE | os.O_CLOEXEC)


@pytest.mark.parametrize("first,want", [
    (errno.EBUSY, ["umount2", "umount2"]), (errno.EINVAL, ["umount2"])])
def test_umount_detaches_only_when_busy(fake, first, want):
    fake.fail_next["umount2"] = [first]
    mounts.umount_lazily_if_busy("/m")
    assert fake.names() == want
    if len(want) == 2:
        assert fake.calls[1][1] == (b"/m", mounts.MNT_DETACH)


def _attr(args) -> bytes:
    return contents(args[1]).raw


def test_prog_load_retries_with_the_verifier_log(fake):
    fake.errors["bpf"] = errno.EACCES
    code = ebpf.insn(ebpf.MOV64_K) + ebpf.insn(ebpf.EXIT)
    with pytest.raises(PermissionError, match="verifier"):
        bpf.prog_load(bpf.BPF_PROG_TYPE_SCHED_CLS, code, "t")
    levels = []
    for name, args in fake.calls:
        assert name == "bpf" and args[0] == bpf.BPF_PROG_LOAD
        ptype, count, _insns, _lic, level = struct.unpack_from(
            "<IIQQI", _attr(args))
        assert (ptype, count) == (bpf.BPF_PROG_TYPE_SCHED_CLS, 2)
        levels.append(level)
    assert levels == [0, 1]


def test_device_filter_loads_attaches_and_closes(fake, tmp_path):
    devices_bpf.attach(str(tmp_path), ["c 1:3 rwm"])
    assert [args[0] for _, args in fake.calls] == [bpf.BPF_PROG_LOAD,
                                                  bpf.BPF_PROG_ATTACH]
    prog_fd = fake.fds[0]
    target, fd, kind, flags = struct.unpack_from("<IIII",
                                                 _attr(fake.calls[1][1]))
    assert (fd, kind, flags) == (prog_fd, bpf.BPF_CGROUP_DEVICE, 0)
    assert target != prog_fd
    assert open_fds(fake.fds) == []


def test_device_filter_error_is_a_cgroup_error(fake, tmp_path):
    from pyct_driver import exception
    fake.errors["bpf"] = errno.EPERM
    with pytest.raises(exception.CgroupError):
        devices_bpf.attach(str(tmp_path), ["c 1:3 rwm"])


def test_seccomp_filter_passes_the_program(fake):
    proc.seccomp_filter(b"\x06\x00\x00\x00\x00\x00\xff\x7f" * 3)
    name, args = fake.calls[0]
    assert name == "seccomp"
    assert args[:2] == (proc.SECCOMP_SET_MODE_FILTER, 0)
    assert contents(args[2]).len == 3


def test_openat2_asks_for_cloexec_and_the_resolve_flags(fake):
    fd = files.openat2(5, "/etc", os.O_RDONLY, files.RESOLVE_IN_ROOT)
    name, args = fake.calls[0]
    how = contents(args[2])
    assert (name, args[0], args[1]) == ("openat2", 5, b"/etc")
    assert how.flags & os.O_CLOEXEC and how.resolve == files.RESOLVE_IN_ROOT
    os.close(fd)


def test_ebpf_encoding_and_labels():
    assert ebpf.insn(ebpf.MOV64_K, dst=0, imm=-1) == bytes(
        [0xB7, 0, 0, 0, 0xFF, 0xFF, 0xFF, 0xFF])
    prog = ebpf.Program()
    prog.jump(ebpf.JMP32_JEQ_K, 0xFFFFFFFF, "out")   # wraps to -1
    prog.op(ebpf.MOV64_K, imm=1)
    prog.label("out")
    prog.op(ebpf.EXIT)
    code = prog.assemble()
    assert struct.unpack_from("<BBhi", code) == (ebpf.JMP32_JEQ_K, 0, 1, -1)
    bad = ebpf.Program()
    bad.jump(ebpf.JA, 0, "nowhere")
    with pytest.raises(ValueError, match="undefined"):
        bad.assemble()
    with pytest.raises(ValueError):
        ebpf.insn(ebpf.MOV64_K, imm=1 << 32)


def test_prog_load_succeeds_without_the_log(fake):
    fd = bpf.prog_load(bpf.BPF_PROG_TYPE_SCHED_CLS, ebpf.insn(ebpf.EXIT),
                       "t")
    assert fake.names() == ["bpf"] and fd == fake.fds[0]
    os.close(fd)


def test_openat2_tries_again_when_the_kernel_says_eagain(fake):
    # a mount or rename elsewhere during a RESOLVE_IN_ROOT walk: retry
    fake.fail_next["openat2"] = [errno.EAGAIN, errno.EAGAIN]
    fd = files.openat2(3, "../mnt", os.O_PATH, 0)
    assert fd in fake.fds
    assert fake.names() == ["openat2"] * 3


def test_openat2_gives_up_on_eagain_after_its_tries(fake):
    fake.errors["openat2"] = errno.EAGAIN
    with pytest.raises(BlockingIOError, match="openat2 ../mnt"):
        files.openat2(3, "../mnt", os.O_PATH, 0)
    assert len(fake.calls) == files._OPENAT2_TRIES
