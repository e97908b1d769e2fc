"""VXLAN segments that join one project network's bridges across hosts.

With ``[network] tunnel_address`` set, each project bridge gets one more
port: a VXLAN link ``pyx-<network id[:11]>`` with the network's VNI, this
host's tunnel address as its source and UDP port 4789. No multicast group
and no learning from the underlay: what the link sends where is only what
pyct programs into its forwarding database (``program``): an all-zero MAC
entry per other host having ports on the network (broadcast, unknown
unicast and multicast are copied to each of them: head-end replication)
and one entry per remote port's MAC to its host's address. The bridge
learns nothing on the VXLAN port either (a frame forged on the underlay
with a local guest's MAC must not pull that guest's traffic into the
tunnel): each remote MAC is a static bridge entry on it instead. ``wanted``
computes those entries from the ports table's view (pure, unit-tested);
``program`` makes the link's database exactly that, adding and deleting
only the difference, so refreshing often costs little.
"""

from __future__ import annotations

import dataclasses
import ipaddress
import socket
from typing import Iterable

from pyct_driver import exception
from pyct_driver.virt.base import TUNNEL_OVERHEAD
from pyct_driver.virt.network import netlink
from pyct_driver.virt.network.names import vxlan_name

PORT = 4789
OVERHEAD = TUNNEL_OVERHEAD
MAX_VNI = (1 << 24) - 1
FLOOD_MAC = "00:00:00:00:00:00"
NUD_NOARP = 0x40  # a static bridge entry
NUD_PERMANENT = 0x80
NTF_SELF = 0x02
NTF_MASTER = 0x04


@dataclasses.dataclass(frozen=True)
class RemotePort:
    """One port of the network as the ports table has it: its MAC and the
    tunnel address of the host its guest is on."""

    mac: str
    tunnel_address: str


def wanted(ports: Iterable[RemotePort], local: str) -> set[tuple[str, str]]:
    """The (MAC, VTEP address) entries the VXLAN link must hold: for every
    other host with a port, one flood entry; for every port there, its
    MAC. Ports on this host (``local``) or of no known host need none."""
    entries: set[tuple[str, str]] = set()
    for port in ports:
        address = port.tunnel_address
        if not address or address == local:
            continue
        ipaddress.IPv4Address(address)  # ValueError: a bad row, loudly
        entries.add((FLOOD_MAC, address))
        entries.add((port.mac.lower(), address))
    return entries


def ensure(host: netlink.HostNetlink, network_id: str, vni: int,
           local: str, bridge_index: int, mtu: int) -> int:
    """Create (or check) the network's VXLAN link on its bridge; returns
    its index. The caller holds ``host.lock``."""
    if not 0 < vni <= MAX_VNI:
        raise exception.NetworkError(reason=f"bad VNI {vni}")
    name = vxlan_name(network_id)
    index = host.link_index(name)
    if index is not None:
        link = host.ipr.get_links(index)[0]
        data = dict(link.get(("IFLA_LINKINFO", "IFLA_INFO_DATA"))["attrs"])
        if (data.get("IFLA_VXLAN_ID") != vni
                or data.get("IFLA_VXLAN_LOCAL") != local):
            # from another configuration: the segment must be this one
            with netlink.wrap(f"replace {name}"):
                host.ipr.link("del", index=index)
            index = None
    if index is None:
        with netlink.wrap(f"create vxlan {name} (VNI {vni})"):
            host.ipr.link("add", ifname=name, kind="vxlan", vxlan_id=vni,
                          vxlan_local=local, vxlan_port=PORT,
                          vxlan_learning=0, mtu=mtu)
        index = host.link_index(name)
        if index is None:
            raise exception.NetworkError(reason=f"{name} vanished")
    with netlink.wrap(f"attach {name}"):
        host.ipr.link("set", index=index, master=bridge_index, mtu=mtu,
                      state="up")
        host.ipr.brport("set", index=index, learning=0)
    return index


def entries(host: netlink.HostNetlink, index: int
            ) -> tuple[set[tuple[str, str]], set[str]]:
    """The (MAC, VTEP) entries pyct programmed on link ``index``, and
    the MACs of the static bridge entries on it."""
    out, bridged = set(), set()
    with host.lock, netlink.wrap("dump vxlan forwarding entries"):
        for entry in host.ipr.neigh("dump", family=socket.AF_BRIDGE,
                                    ifindex=index):
            if entry["ifindex"] != index:
                continue
            dst = entry.get("NDA_DST")
            if dst and entry["flags"] & NTF_SELF:
                out.add((entry.get("NDA_LLADDR"), dst))
            elif entry.get("NDA_MASTER") and entry["state"] == NUD_NOARP:
                bridged.add(entry.get("NDA_LLADDR"))
    return out, bridged


def program(host: netlink.HostNetlink, network_id: str,
            want: set[tuple[str, str]]) -> bool:
    """Make the network's VXLAN forwarding entries exactly ``want``;
    False if the network has no VXLAN link on this host."""
    with host.lock:
        index = host.link_index(vxlan_name(network_id))
        if index is None:
            return False
        master = host.ipr.get_links(index)[0].get("master")
        have, bridged = entries(host, index)
        macs = {mac for mac, _ in want if mac != FLOOD_MAC}
        with netlink.wrap(f"program vxlan of network {network_id}"):
            for mac in sorted(bridged - macs):
                host.ipr.neigh("del", family=socket.AF_BRIDGE,
                               ifindex=index, lladdr=mac, master=master,
                               flags=NTF_MASTER)
            for mac in sorted(macs - bridged):
                host.ipr.neigh("replace", family=socket.AF_BRIDGE,
                               ifindex=index, lladdr=mac, master=master,
                               state=NUD_NOARP, flags=NTF_MASTER)
            for mac, dst in sorted(have - want):
                host.ipr.neigh("del", family=socket.AF_BRIDGE,
                               ifindex=index, lladdr=mac, dst=dst,
                               flags=NTF_SELF)
            for mac, dst in sorted(want - have):
                # "append": several flood entries share the zero MAC
                host.ipr.neigh("append", family=socket.AF_BRIDGE,
                               ifindex=index, lladdr=mac, dst=dst,
                               state=NUD_PERMANENT, flags=NTF_SELF)
    return True
