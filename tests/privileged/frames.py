"""Hand-made Ethernet frames for the network filter tests: IPv4 and ARP,
optionally with VLAN tags written into the frame (802.1Q 0x8100, 802.1ad
0x88A8, outermost first)."""

from __future__ import annotations

import socket
import struct

BROADCAST = b"\xff" * 6
DOT1Q, DOT1AD = 0x8100, 0x88A8


def mac_bytes(mac: str) -> bytes:
    return bytes.fromhex(mac.replace(":", ""))


def _tags(tags) -> bytes:
    return b"".join(struct.pack("!HH", tpid, vid) for tpid, vid in tags)


def _checksum(header: bytes) -> int:
    total = sum(struct.unpack(f"!{len(header) // 2}H", header))
    while total >> 16:
        total = (total & 0xFFFF) + (total >> 16)
    return ~total & 0xFFFF


def ipv4(src_mac: bytes, src: str, dst: str, proto: int = 1,
         l4: bytes = b"\x08\x00" + b"\x00" * 6, vhl: int = 0x45,
         frag: int = 0, dst_mac: bytes = BROADCAST, tags=(),
         cut: int | None = None) -> bytes:
    options = b"\x01" * ((vhl & 0xF) * 4 - 20)
    head = struct.pack("!BBHHHBBH4s4s", vhl, 0, 20 + len(options) + len(l4),
                       0, frag, 64, proto, 0, socket.inet_aton(src),
                       socket.inet_aton(dst)) + options
    head = head[:10] + struct.pack("!H", _checksum(head)) + head[12:]
    raw = dst_mac + src_mac + _tags(tags) + b"\x08\x00" + head + l4
    return raw[:cut] if cut else raw


def udp(payload: bytes, sport: int = 40000, dport: int = 9) -> bytes:
    """A UDP header (no checksum) and ``payload``."""
    return struct.pack("!HHHH", sport, dport, 8 + len(payload), 0) + payload


def arp(src_mac: bytes, sender: str, target: str, op: int = 1,
        sha: bytes | None = None, head=(1, 0x0800, 6, 4), tags=(),
        dst_mac: bytes = BROADCAST, trailer: bytes = b"") -> bytes:
    """An ARP request (op 1) or reply (op 2) about ``target``; ``trailer``
    rides in the Ethernet padding."""
    return (dst_mac + src_mac + _tags(tags) + b"\x08\x06"
            + struct.pack("!HHBBH", *head, op) + (sha or src_mac)
            + socket.inet_aton(sender) + b"\x00" * 6
            + socket.inet_aton(target) + trailer)
