"""The project bridges of one deployment as a whole, for the host's release.

Mixed into ``bridge.NetworkPlumber``: which bridges of a set of networks
exist and what is on them (``network_links``), removing them all at once
when no guest runs any more (``remove_networks``: ports, DNS service,
addresses and NAT go with them), the host's floating IPs as a whole
(``set_floating``), the VXLAN forwarding entries of each network from
the ports of other hosts (``set_tunnels``) and the MTU that VXLAN
leaves (``link_mtu``), and telling the plumber's watcher (the metadata
service, one listener per bridge) of bridges an earlier run of the
service made (``announce``) and of each bridge that goes (``_gone``).
"""

from __future__ import annotations

from typing import Iterable

from pyct_driver import exception
from pyct_driver.virt.network import vxlan
from pyct_driver.virt.network.names import (
    BRIDGE_PREFIX, VETH_PREFIX, VXLAN_PREFIX, bridge_name, vxlan_name)


class BridgeSet:
    """Uses the plumber's host netlink, DNS forwarder, watcher and
    generation counts."""

    def _network_links(self, network_ids: Iterable[str]
                       ) -> tuple[dict[int, str], list[dict]]:
        """(index -> name of the existing bridges of ``network_ids``, the
        links on those bridges)."""
        wanted = {bridge_name(n) for n in network_ids}
        links = self.host.links()
        bridges = {link["index"]: link["ifname"] for link in links
                   if link["ifname"] in wanted}
        return bridges, [link for link in links if link["master"] in bridges]

    def network_links(self, network_ids: Iterable[str]) -> list[str]:
        """Names of the bridges of ``network_ids`` that exist and of the
        ports on them."""
        bridges, ports = self._network_links(network_ids)
        return sorted([*bridges.values(), *(p["ifname"] for p in ports)])

    def remove_networks(self, network_ids: Iterable[str]) -> None:
        """Delete the bridges of ``network_ids`` now (and so their
        addresses and DNS service), with any port still on them: only for
        a host on which no guest runs."""
        network_ids = list(network_ids)
        self.flush()
        with self.host.lock:
            bridges, ports = self._network_links(network_ids)
            for port in ports:
                self._delete_now(port["index"], port["ifname"])
            for network_id in network_ids:
                if self.dns:
                    self.dns.stop_serving(network_id)
                self._generation.pop(network_id, None)
            for index, name in bridges.items():
                self._delete_now(index, name)
                if self.nat:
                    self.nat.remove_network(name)
            if self.nat:  # no guest left to NAT to
                self.nat.set_floating({})
        for name in bridges.values():
            self._gone(name)

    def set_floating(self, mapping: dict[str, str]) -> None:
        """1:1 NAT exactly for ``mapping`` (floating -> fixed IP)."""
        if self.nat is not None:
            self.nat.set_floating(mapping)
        elif mapping:
            raise exception.NetworkError(
                reason="floating IPs need [network] egress_nat = true")

    def tunnels(self, vni: int | None) -> bool:
        """Whether a network with ``vni`` spans hosts over VXLAN here."""
        return bool(self.tunnel_address and vni)

    def link_mtu(self, mtu: int | None, vni: int | None) -> int:
        """The MTU of a network's bridge and ports (guests' too)."""
        mtu = mtu or self.mtu
        return mtu - vxlan.OVERHEAD if self.tunnels(vni) else mtu

    def _unused(self, network_id: str, index: int) -> bool:
        """Whether no port is on bridge ``index``; its VXLAN port (which
        deleting the bridge would leave behind) is deleted then."""
        segment = vxlan_name(network_id)
        if any(link["master"] == index and link["ifname"] != segment
               for link in self.host.links()):
            return False
        tunnel = self.host.link_index(segment)
        if tunnel is not None:
            self._delete_now(tunnel, segment)
        return True

    def set_tunnels(self, network_id: str,
                    ports: Iterable[vxlan.RemotePort]) -> bool:
        """Send the network's frames to the hosts of ``ports`` (all of
        the network's, with their hosts' tunnel addresses) and no other;
        False if the network spans no hosts here (no tunnel address, or
        no bridge of it on this host)."""
        if not self.tunnel_address:
            return False
        return vxlan.program(self.host, network_id,
                             vxlan.wanted(ports, self.tunnel_address))

    def announce(self, network_ids: Iterable[str]) -> None:
        """Tell the watcher of the bridges of ``network_ids`` that exist
        (made by an earlier run of the service)."""
        if self.watcher is not None:
            for name in self._network_links(network_ids)[0].values():
                self.watcher.up(name)

    def _gone(self, name: str) -> None:
        if self.watcher is not None:
            self.watcher.down(name)

    def list_links(self) -> list[str]:
        """Names of every pyb-/pyv-/pyx- link on the host, for leak
        checks."""
        return sorted(link["ifname"] for link in self.host.links()
                      if link["ifname"].startswith((BRIDGE_PREFIX,
                                                    VETH_PREFIX,
                                                    VXLAN_PREFIX)))
