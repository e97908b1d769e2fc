"""The host's IPv4 routes, as the API sees them when it carves subnets.

Project subnets must never shadow a route the host already has (its uplink,
a VPN, another bridge): a guest address inside such a range would hijack or
blackhole real traffic. The API app factory hands ``read_ipv4_routes`` to
the IPAM code, which reads it each time a network is created, so a route
added after start-up is still honoured. Only the main table is read (what
``/proc/net/route`` shows); the default route is not a conflict.
"""

from __future__ import annotations

import ipaddress
import socket
import struct

from pyct_driver import exception

PROC_ROUTE = "/proc/net/route"


def _hex_addr(text: str) -> ipaddress.IPv4Address:
    # the kernel prints addresses as host-endian hex words
    return ipaddress.IPv4Address(socket.inet_ntoa(
        struct.pack("=I", int(text, 16))))


def parse_proc_route(text: str) -> list[ipaddress.IPv4Network]:
    """Destinations of ``/proc/net/route`` content, default route excluded."""
    routes = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 8:
            continue
        dest, mask = _hex_addr(fields[1]), _hex_addr(fields[7])
        net = ipaddress.IPv4Network(f"{dest}/{mask}", strict=False)
        if net.prefixlen > 0:
            routes.append(net)
    return routes


def read_ipv4_routes(path: str = PROC_ROUTE) -> list[ipaddress.IPv4Network]:
    """The host's IPv4 routes (main table), default route excluded."""
    try:
        with open(path, encoding="ascii") as f:
            return parse_proc_route(f.read())
    except (OSError, ValueError) as err:
        raise exception.InvalidInput(
            reason=f"cannot read the host's routes from {path}: {err}"
        ) from err
