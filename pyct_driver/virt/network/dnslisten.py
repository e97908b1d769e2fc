"""Where the gateway's DNS forwarder (``dnsforward``) listens: per network,
a UDP socket and a TCP listener on the gateway address, port 53.

Both are bound to the address *and* to the network's bridge device
(``SO_BINDTODEVICE``): the kernel hands them only packets that arrived on
that bridge, never one from the uplink, the host itself or another
network's bridge (the host accepts packets for any of its addresses on
any interface). ``Network.member`` says which source addresses may be
the network's ports: its subnet, less the gateway, network and broadcast
addresses (the ports' filters make a guest's source its own address).
``Network`` also carries the forwarder's per-network read budget
(``dnslimits.NETWORK_BUDGET``).
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket

from pyct_driver import exception

PORT = 53
TCP_BACKLOG = 16


@dataclasses.dataclass
class Network:
    """One served network: its sockets and its budget's state."""

    network_id: str
    ifindex: int
    subnet: ipaddress.IPv4Network
    gateway: ipaddress.IPv4Address
    udp: socket.socket
    tcp: socket.socket
    closed: bool = False
    paused: bool = False  # its budget spent: its sockets are not read
    spent: int = 0
    window_end: float = 0.0

    def member(self, ip: str) -> bool:
        """``ip`` may be one of the network's ports."""
        try:
            addr = ipaddress.IPv4Address(ip)
        except ValueError:
            return False
        return (addr in self.subnet and addr != self.gateway and addr
                not in (self.subnet.network_address,
                        self.subnet.broadcast_address))


def _socket(kind: int, ifname: str, gateway: str) -> socket.socket:
    sock = socket.socket(socket.AF_INET, kind | socket.SOCK_CLOEXEC)
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_BINDTODEVICE,
                        ifname.encode())
        if kind == socket.SOCK_STREAM:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((gateway, PORT))
        if kind == socket.SOCK_STREAM:
            sock.listen(TCP_BACKLOG)
        sock.setblocking(False)
    except BaseException:
        sock.close()
        raise
    return sock


def listen(network_id: str, ifname: str, ifindex: int,
           iface: ipaddress.IPv4Interface) -> Network:
    """The network's two sockets on ``iface``'s address, bound to the
    bridge ``ifname``; NetworkError when they cannot be had."""
    gateway = str(iface.ip)
    try:
        udp = _socket(socket.SOCK_DGRAM, ifname, gateway)
        try:
            tcp = _socket(socket.SOCK_STREAM, ifname, gateway)
        except BaseException:
            udp.close()
            raise
    except OSError as err:
        raise exception.NetworkError(
            reason=f"DNS forwarder cannot listen on {gateway}:53 of "
                   f"{ifname}: {err.strerror or err} (a host DNS server on "
                   f"*:53? set [network] dns_forwarder = false or bind it "
                   f"to its own addresses)", errno=err.errno) from err
    return Network(network_id, ifindex, iface.network, iface.ip, udp, tcp)
