"""The kernel side of pyct's port and bridge filters: an eBPF program
loaded with bpf(2) (``load``) and attached in direct-action mode as the
one ``bpf`` filter of a link's ingress qdisc (``attach``), or replaced
there. ``antispoof`` writes the programs; this module only hands them to
the kernel, so its errors carry the verifier's log.
"""

from __future__ import annotations

import ctypes
import errno
import os
import platform

from pyct_driver import exception
from pyct_driver.virt.network import netlink

INGRESS = 0xFFFF0000
ETH_P_ALL = 0x0003
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351}

libc = ctypes.CDLL(None, use_errno=True)
libc.syscall.restype = ctypes.c_long


class _ProgLoadAttr(ctypes.Structure):
    _fields_ = [("prog_type", ctypes.c_uint32),
                ("insn_cnt", ctypes.c_uint32),
                ("insns", ctypes.c_uint64),
                ("license", ctypes.c_uint64),
                ("log_level", ctypes.c_uint32),
                ("log_size", ctypes.c_uint32),
                ("log_buf", ctypes.c_uint64),
                ("kern_version", ctypes.c_uint32),
                ("prog_flags", ctypes.c_uint32),
                ("prog_name", ctypes.c_char * 16)]


def load(code: bytes, name: str) -> int:
    """Load the program into the kernel; returns its fd (caller closes)."""
    nr = SYS_BPF.get(platform.machine())
    if nr is None:
        raise exception.NetworkError(
            reason=f"bpf(2) number unknown on {platform.machine()}")
    insns = ctypes.create_string_buffer(code, len(code))
    license_ = ctypes.create_string_buffer(b"GPL")
    log = ctypes.create_string_buffer(65536)
    attr = _ProgLoadAttr(prog_type=BPF_PROG_TYPE_SCHED_CLS,
                         insn_cnt=len(code) // 8,
                         insns=ctypes.addressof(insns),
                         license=ctypes.addressof(license_),
                         log_level=1, log_size=len(log),
                         log_buf=ctypes.addressof(log),
                         prog_name=name.encode()[:15])
    fd = libc.syscall(ctypes.c_long(nr), ctypes.c_int(BPF_PROG_LOAD),
                       ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if fd < 0:
        code_ = ctypes.get_errno()
        raise exception.NetworkError(
            reason=f"bpf prog load: {os.strerror(code_)}: "
                   f"{log.value.decode(errors='replace')[-500:]}",
            errno=code_)
    return fd


def attach(host: netlink.HostNetlink, index: int, ifname: str,
            code: bytes, name: str, replace: bool = False) -> None:
    fd = load(code, name)
    try:
        with host.lock, netlink.wrap(f"anti-spoofing on {ifname}"):
            if not replace:
                host.ipr.tc("add", "ingress", index, INGRESS)
            host.ipr.tc("replace-filter" if replace else "add-filter",
                        "bpf", index, ":1", parent=INGRESS,
                        prio=1, protocol=ETH_P_ALL, fd=fd,
                        name=name, direct_action=True)
    finally:
        # The filter holds its own reference to the program.
        os.close(fd)


def installed(host: netlink.HostNetlink, index: int) -> bool:
    """Whether a bpf filter sits on the ingress of ``index``."""
    try:
        with host.lock:
            filters = host.ipr.get_filters(index=index, parent=INGRESS)
    except OSError as err:
        if err.errno == errno.ENODEV:
            return False
        raise
    return any(f.get_attr("TCA_KIND") == "bpf" for f in filters)
