"""Anti-spoofing on a port: an eBPF tc filter on the host end of its veth.

Everything the guest sends arrives on the host end's ingress. An ingress
qdisc there holds one ``bpf`` filter in direct-action mode whose program
(assembled here, loaded with bpf(2)) decides per frame::

    source MAC != port MAC                                    → drop
    IPv4 with source IP == port IP                            → pass
    ARP with sender MAC == port MAC and sender IP == port IP
        (or 0.0.0.0, an address probe)                        → pass
    anything else (IPv6, VLAN tags, runts, other addresses)   → drop

Why eBPF and not u32/flower/basic+gact: hosts like this one build only
cls_u32 and cls_bpf, without the gact action u32 would need to drop, and
pyroute2 0.9 has no flower. A direct-action program needs no action module.
The filter is installed while the host end is still down, so no frame passes
before it exists. The program is ~30 instructions: checks cost nanoseconds.
"""

from __future__ import annotations

import ctypes
import errno
import ipaddress
import os
import platform

from pyct_driver import exception
from pyct_driver.virt.network import netlink

INGRESS = 0xFFFF0000
ETH_P_ALL = 0x0003
TC_ACT_OK = 0
TC_ACT_SHOT = 2
BPF_PROG_LOAD = 5
BPF_PROG_TYPE_SCHED_CLS = 3
_SYS_BPF = {"x86_64": 321, "aarch64": 280, "ppc64le": 361, "s390x": 351}

# eBPF opcodes used below.
_MOV64_X = 0xBF     # dst = src
_MOV64_K = 0xB7     # dst = imm
_LDX_W = 0x61       # dst = *(u32 *)(src + off)
_LD_ABS_W = 0x20    # r0 = ntohl(packet[imm:imm+4])
_LD_ABS_H = 0x28    # r0 = ntohs(packet[imm:imm+2])
_JMP32_JEQ_K = 0x16  # 32-bit compares: imm is not sign-extended to 64 bits
_JMP32_JNE_K = 0x56
_JMP32_JLT_K = 0xA6
_JA = 0x05
_EXIT = 0x95

# Offsets from the Ethernet header (cls_bpf pushes it back on ingress).
ETH_SRC = 6
ETH_TYPE = 12
IP_SADDR = 14 + 12
ARP_SHA = 14 + 8
ARP_SPA = 14 + 14
MIN_IP = 14 + 20
MIN_ARP = 14 + 28

_libc = ctypes.CDLL(None, use_errno=True)
_libc.syscall.restype = ctypes.c_long


def _s32(value: int) -> int:
    return value - (1 << 32) if value >= (1 << 31) else value


class _Asm:
    """A tiny assembler: instructions plus forward jumps to labels."""

    def __init__(self) -> None:
        self.insns: list[list] = []
        self.labels: dict[str, int] = {}

    def op(self, code: int, dst: int = 0, src: int = 0, off: int = 0,
           imm: int = 0) -> None:
        self.insns.append([code, dst, src, off, _s32(imm)])

    def jump(self, code: int, imm: int, label: str) -> None:
        self.insns.append([code, 0, 0, label, _s32(imm)])

    def label(self, name: str) -> None:
        self.labels[name] = len(self.insns)

    def assemble(self) -> bytes:
        out = bytearray()
        for pc, (code, dst, src, off, imm) in enumerate(self.insns):
            if isinstance(off, str):
                off = self.labels[off] - pc - 1
            out += bytes([code, (src << 4) | dst])
            out += off.to_bytes(2, "little", signed=True)
            out += imm.to_bytes(4, "little", signed=True)
        return bytes(out)


def program(mac: str, ip: str) -> bytes:
    """The filter's eBPF instructions for a port with this MAC and IP."""
    raw = bytes(int(part, 16) for part in mac.split(":"))
    if len(raw) != 6:
        raise exception.NetworkError(reason=f"bad MAC {mac!r}")
    mac_hi, mac_lo = int.from_bytes(raw[:4], "big"), int.from_bytes(raw[4:],
                                                                    "big")
    addr = int(ipaddress.IPv4Address(ip))
    a = _Asm()
    a.op(_MOV64_X, dst=6, src=1)             # LD_ABS wants ctx in r6
    a.op(_LDX_W, dst=7, src=6, off=0)        # r7 = skb->len
    a.op(_MOV64_X, dst=0, src=7)
    a.jump(_JMP32_JLT_K, 14, "drop")
    a.op(_LD_ABS_W, imm=ETH_SRC)
    a.jump(_JMP32_JNE_K, mac_hi, "drop")
    a.op(_LD_ABS_H, imm=ETH_SRC + 4)
    a.jump(_JMP32_JNE_K, mac_lo, "drop")
    a.op(_LD_ABS_H, imm=ETH_TYPE)
    a.jump(_JMP32_JEQ_K, 0x0800, "ipv4")
    a.jump(_JMP32_JEQ_K, 0x0806, "arp")
    a.jump(_JA, 0, "drop")
    a.label("ipv4")
    a.op(_MOV64_X, dst=0, src=7)
    a.jump(_JMP32_JLT_K, MIN_IP, "drop")
    a.op(_LD_ABS_W, imm=IP_SADDR)
    a.jump(_JMP32_JEQ_K, addr, "pass")
    a.jump(_JA, 0, "drop")
    a.label("arp")
    a.op(_MOV64_X, dst=0, src=7)
    a.jump(_JMP32_JLT_K, MIN_ARP, "drop")
    a.op(_LD_ABS_W, imm=ARP_SHA)
    a.jump(_JMP32_JNE_K, mac_hi, "drop")
    a.op(_LD_ABS_H, imm=ARP_SHA + 4)
    a.jump(_JMP32_JNE_K, mac_lo, "drop")
    a.op(_LD_ABS_W, imm=ARP_SPA)
    a.jump(_JMP32_JEQ_K, addr, "pass")
    a.jump(_JMP32_JEQ_K, 0, "pass")
    a.label("drop")
    a.op(_MOV64_K, dst=0, imm=TC_ACT_SHOT)
    a.op(_EXIT)
    a.label("pass")
    a.op(_MOV64_K, dst=0, imm=TC_ACT_OK)
    a.op(_EXIT)
    return a.assemble()


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
    nr = _SYS_BPF.get(platform.machine())
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
    fd = _libc.syscall(ctypes.c_long(nr), ctypes.c_int(BPF_PROG_LOAD),
                       ctypes.byref(attr), ctypes.c_uint(ctypes.sizeof(attr)))
    if fd < 0:
        code_ = ctypes.get_errno()
        raise exception.NetworkError(
            reason=f"bpf prog load: {os.strerror(code_)}: "
                   f"{log.value.decode(errors='replace')[-500:]}",
            errno=code_)
    return fd


def install(host: netlink.HostNetlink, index: int, ifname: str, mac: str,
            ip: str) -> None:
    """Put the ingress qdisc and the filter on the host end ``index``."""
    fd = load(program(mac, ip), "pyct_antispoof")
    try:
        with host.lock, netlink.wrap(f"anti-spoofing on {ifname}"):
            host.ipr.tc("add", "ingress", index, INGRESS)
            host.ipr.tc("add-filter", "bpf", index, ":1", parent=INGRESS,
                        prio=1, protocol=ETH_P_ALL, fd=fd,
                        name="pyct_antispoof", direct_action=True)
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
