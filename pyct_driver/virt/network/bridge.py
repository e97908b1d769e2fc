"""The data plane of project networks: one Linux bridge per network, veths.

``NetworkPlumber`` is what the container driver calls. Each network is a
bridge ``pyb-<network id[:11]>`` carrying the gateway address and, while
the metadata service is on (``metadata_port`` > 0), the metadata address
(/32, on every bridge, so guests reach the host's metadata server
on-link), with IPv4 forwarding off on it. With the service off (port 0)
nothing of it is set up: no address (one an earlier configuration left is
removed), no route in guests, no filter rule. With a DNS forwarder
(``dnsforward``; ``dns_upstreams`` not None) the gateway also answers
DNS on port 53 for that bridge's guests. Forwarding off is not
enough (the host accepts packets for any of its addresses on any
interface), so each port's filter (``antispoof``) also limits where the
guest's packets go: its own subnet, ICMP echo and DNS to the gateway and
TCP to the metadata address's port, nothing else; a filter on the bridge's
own ingress holds the host's stack to the same (it also sees subnet
broadcasts). The
same holds for ARP: the host answers on a bridge only for the addresses on
that bridge (``arp_ignore=1``), never for other bridges' gateways or the
uplink, and the port filter drops requests for targets outside the subnet.
Each port is a veth ``pyv-<port id[:11]>`` whose guest end is created directly
inside the guest's network namespace as ``eth<device_index>`` (creating it
there costs ~1-3 ms, moving it afterwards ~15-30 ms), with the port's MAC and
MTU; the host end joins the bridge only after its anti-spoofing filters are
in place. With a tunnel address (``[network] tunnel_address``) a network
with a VNI also gets a VXLAN port on its bridge (``vxlan``) and every port
of it an MTU lower by the VXLAN overhead. Deletions go to a background
thread (``deleter``). A
``watcher`` (the compute service's metadata service) hears of every bridge
set up and removed, to listen on each one apart.
"""

from __future__ import annotations

import errno
import hashlib
import ipaddress
import logging
import os
import socket

from pyct_driver import exception
from pyct_driver.virt.base import NetworkWatcher, VifSpec
from pyct_driver.virt.network import antispoof, dnsupstream
from pyct_driver.virt.network import deleter as deleter_mod
from pyct_driver.virt.network import dnsforward, nat
from pyct_driver.virt.network import netlink, vxlan
from pyct_driver.virt.network.bridge_set import BridgeSet
# (importers find the names here too)
from pyct_driver.virt.network.names import (  # noqa: F401
    BRIDGE_PREFIX, NAME_CHARS, VETH_PREFIX, VXLAN_PREFIX, bridge_name,
    veth_name, vxlan_name)

LOG = logging.getLogger(__name__)
SCOPE_LINK = 253


def _bridge_mac(network_id: str) -> str:
    # Fixed, so the gateway's MAC in guests' ARP caches never changes when
    # ports come and go (a bridge otherwise takes its lowest port's MAC).
    raw = bytearray(hashlib.sha256(network_id.encode()).digest()[:6])
    raw[0] = (raw[0] & 0xFC) | 0x02  # locally administered, unicast
    return ":".join(f"{b:02x}" for b in raw)


def _write_sysctl(path: str, value: str) -> None:
    try:
        with open(path, "w") as f:
            f.write(value)
    except OSError as err:
        raise exception.NetworkError(reason=f"write {path}: {err}") from err


class NetworkPlumber(BridgeSet):
    """Bridges and veths of the project networks on this host
    (``BridgeSet``: all of a deployment's at once)."""

    def __init__(self, mtu: int = 1500,
                 metadata_address: str = "169.254.169.254",
                 metadata_port: int = 80,
                 dns_upstreams: list[dnsforward.Upstream] | None = None,
                 dns_rate: float = 100.0,
                 egress_nat: bool = False,
                 watcher: NetworkWatcher | None = None,
                 external_interface: str = "",
                 nat_table: str = nat.NAME,
                 tunnel_address: str = "") -> None:
        # "": no VXLAN, each host's bridges stand alone
        self.tunnel_address = (str(ipaddress.IPv4Address(tunnel_address))
                               if tunnel_address else "")
        # With egress NAT every bridge forwards and is in ``nat``'s table.
        self.nat = (nat.Nat(external_interface, nat_table) if egress_nat
                    else None)
        self.mtu = mtu
        self.metadata_address = str(ipaddress.IPv4Address(metadata_address))
        # The only port of the metadata address a guest's filter lets
        # through; 0: the service is off and the address is set up nowhere.
        if not 0 <= metadata_port < 65536:
            raise exception.NetworkError(
                reason=f"bad metadata port {metadata_port}")
        self.metadata_port = metadata_port
        # None: no forwarder, and port 53 stays shut in every filter
        self.dns = (dnsforward.DnsForwarder(dns_upstreams, dns_rate)
                    if dns_upstreams is not None else None)
        self.watcher = watcher
        self.host = netlink.HostNetlink()
        self.deleter = deleter_mod.Deleter()
        # Bumped by every ensure_bridge: a deferred removal requested
        # before the latest ensure must not remove the bridge.
        self._generation: dict[str, int] = {}

    @staticmethod
    def options(network, metadata) -> dict:
        """Constructor arguments from the ``[network]`` and ``[metadata]``
        option groups (the driver, a composition root, passes them)."""
        return dict(mtu=network.mtu, metadata_address=metadata.address,
                    metadata_port=metadata.port,
                    egress_nat=network.egress_nat,
                    external_interface=network.external_interface,
                    dns_upstreams=dnsupstream.chosen(network.dns_forwarder,
                                                     network.dns_upstreams),
                    dns_rate=network.dns_queries_per_second,
                    tunnel_address=network.tunnel_address)

    def close(self) -> None:
        self.deleter.flush()
        self.deleter.stop()
        if self.dns:
            self.dns.close()
        self.host.close()

    # -- bridges -----------------------------------------------------------
    def ensure_bridge(self, network_id: str, gateway_ip: str, prefixlen: int,
                      mtu: int | None = None, vni: int | None = None) -> str:
        """Create (or check) the network's bridge (and with a tunnel
        address its VXLAN port); returns its name."""
        name = bridge_name(network_id)
        mtu = self.link_mtu(mtu, vni)
        try:
            iface = ipaddress.IPv4Interface(f"{gateway_ip}/{prefixlen}")
        except ValueError as err:
            raise exception.NetworkError(
                reason=f"bad gateway {gateway_ip}/{prefixlen}") from err
        if iface.ip in (iface.network.network_address,
                        iface.network.broadcast_address):
            raise exception.NetworkError(
                reason=f"gateway {iface} is not a host address")
        host = self.host
        with host.lock:
            index = host.link_index(name)
            host.check_no_overlap(iface.network, index)
            if index is None:
                with netlink.wrap(f"create bridge {name}"):
                    # nf_call_iptables: conntrack sees bridged IPv4,
                    # which security groups' state needs (secgroup_nft)
                    host.ipr.link("add", ifname=name, kind="bridge", mtu=mtu,
                                  address=_bridge_mac(network_id),
                                  br_nf_call_iptables=1)
                index = host.link_index(name)
            # First ensure of this bridge by this process: settings an
            # older pyct (or an earlier configuration) may not have made.
            fresh = network_id not in self._generation
            conf = f"/proc/sys/net/ipv4/conf/{name}"
            # In the NAT table before any filter lets a packet be routed.
            if self.nat:
                self.nat.add_network(name)
            # Every time: a write to conf/all/forwarding sets every device's.
            _write_sysctl(f"{conf}/forwarding", "1" if self.nat else "0")
            _write_sysctl(f"/proc/sys/net/ipv6/conf/{name}/disable_ipv6", "1")
            if fresh:
                # ARP: answer only for this bridge's own addresses, and ask
                # with the address of the target's subnet (the gateway).
                _write_sysctl(f"{conf}/arp_ignore", "1")
                _write_sysctl(f"{conf}/arp_announce", "2")
            self._bridge_addresses(index, name, iface)
            if self.dns:  # listening before any filter lets port 53 in
                self.dns.serve(network_id, name, index, str(iface.ip),
                               iface.network.prefixlen)
            # The host's copy of what guests send: only ARP, ICMP echo and
            # DNS to the gateway, TCP to the metadata port (not subnet
            # broadcasts).
            antispoof.install_bridge(host, index, name, str(iface.ip),
                                     self.metadata_address,
                                     self.metadata_port, dns=bool(self.dns),
                                     refresh=fresh,
                                     outside=(iface.network if self.nat
                                              else None))
            with netlink.wrap(f"set bridge {name} up"):
                host.ipr.link("set", index=index, mtu=mtu, state="up")
            if self.tunnels(vni):
                vxlan.ensure(host, network_id, int(vni), self.tunnel_address,
                             index, mtu)
            self._generation[network_id] = (
                self._generation.get(network_id, 0) + 1)
            if self.watcher is not None:  # before any port can send
                self.watcher.up(name)
        return name

    def _bridge_addresses(self, index: int, name: str,
                          iface: ipaddress.IPv4Interface) -> None:
        """The gateway's address, and the metadata one while the service
        is on; with it off, a metadata address left from before goes."""
        host = self.host
        with netlink.wrap(f"configure bridge {name}"):
            have = {(a.get("IFA_ADDRESS"), a["prefixlen"])
                    for a in host.ipr.get_addr(family=socket.AF_INET,
                                               index=index)}
            wanted = [(str(iface.ip), iface.network.prefixlen,
                       str(iface.network.broadcast_address))]
            if self.metadata_port:
                wanted.append((self.metadata_address, 32, None))
            elif (self.metadata_address, 32) in have:
                host.ipr.addr("del", index=index,
                              address=self.metadata_address, prefixlen=32)
            for address, plen, brd in wanted:
                if (address, plen) in have:
                    continue
                kwargs = {"broadcast": brd} if brd else {}
                host.ipr.addr("add", index=index, address=address,
                              prefixlen=plen, **kwargs)

    def remove_bridge_if_unused(self, network_id: str) -> None:
        """Queue removal of the bridge; it happens only if no port is on it
        and no ensure_bridge came in between."""
        generation = self._generation.get(network_id, 0)
        self.deleter.call(
            lambda: self._remove_bridge(network_id, generation))

    def _remove_bridge(self, network_id: str, generation: int) -> None:
        name = bridge_name(network_id)
        host = self.host
        with host.lock:
            if self._generation.get(network_id, 0) != generation:
                return
            index = host.link_index(name)
            if index is None or not self._unused(network_id, index):
                return
            if self.dns:
                self.dns.stop_serving(network_id)
            with netlink.wrap(f"delete bridge {name}"):
                host.ipr.link("del", index=index)
            self._generation.pop(network_id, None)
            if self.nat:
                self.nat.remove_network(name)
        self._gone(name)

    # -- ports -------------------------------------------------------------
    def plug(self, pid: int, vif: VifSpec, bridge: str) -> None:
        """Give the guest init ``pid`` the interface ``eth<device_index>``."""
        host_name = veth_name(vif.port_id)
        guest_name = f"eth{vif.device_index}"
        nsfd = netlink.open_netns(pid)
        try:
            index = self._create_veth(nsfd, vif, bridge, host_name,
                                      guest_name)
        finally:
            os.close(nsfd)
        try:
            self._configure_guest(pid, vif, guest_name)
        except BaseException:
            self._delete_now(index, host_name)
            raise

    def _create_veth(self, nsfd: int, vif: VifSpec, bridge: str,
                     host_name: str, guest_name: str) -> int:
        host = self.host
        with host.lock:
            bridge_index = host.link_index(bridge)
            if bridge_index is None:
                # A deferred removal won the race; the vif knows its network.
                if bridge != bridge_name(vif.network_id):
                    raise exception.NetworkError(
                        reason=f"bridge {bridge} does not exist")
                self.ensure_bridge(vif.network_id, vif.gateway, vif.prefixlen,
                                   vif.mtu, vif.vni)
                bridge_index = host.link_index(bridge)
            mtu = self.link_mtu(vif.mtu, vif.vni)
            for attempt in (1, 2):
                try:
                    with netlink.wrap(f"create veth {host_name}/{guest_name}"):
                        # Down until its filters exist: no unfiltered frame.
                        host.ipr.link(
                            "add", ifname=host_name, kind="veth",
                            mtu=mtu, master=bridge_index,
                            peer={"ifname": guest_name, "net_ns_fd": nsfd,
                                  "address": vif.mac, "mtu": mtu})
                    break
                except exception.NetworkError as err:
                    stale = host.link_index(host_name)
                    if (attempt == 2 or not netlink.is_errno(err, errno.EEXIST)
                            or stale is None):
                        raise
                    # Left by a guest whose netns is still being torn down
                    # (hard reboot) or by a crash: ours by name, replace it.
                    self._delete_now(stale, host_name)
            index = host.link_index(host_name)
            if index is None:
                raise exception.NetworkError(
                    reason=f"veth {host_name} vanished right after creation")
            try:
                antispoof.install(host, index, host_name, vif.mac, vif.ip,
                                  vif.prefixlen, vif.gateway,
                                  self.metadata_address, self.metadata_port,
                                  dns=bool(self.dns), outside=bool(self.nat))
                _write_sysctl(
                    f"/proc/sys/net/ipv6/conf/{host_name}/disable_ipv6", "1")
                with netlink.wrap(f"set {host_name} up"):
                    host.ipr.link("set", index=index, state="up")
            except BaseException:
                self._delete_now(index, host_name)
                raise
        return index

    def _configure_guest(self, pid: int, vif: VifSpec,
                         guest_name: str) -> None:
        iface = ipaddress.IPv4Interface(f"{vif.ip}/{vif.prefixlen}")
        with netlink.guest_netlink(pid) as ipr, \
                netlink.wrap(f"configure {guest_name} in pid {pid}'s netns"):
            lo = ipr.link_lookup(ifname="lo")
            if lo:
                ipr.link("set", index=lo[0], state="up")
            found = ipr.link_lookup(ifname=guest_name)
            if not found:
                raise exception.NetworkError(
                    reason=f"{guest_name} missing in pid {pid}'s netns")
            index = found[0]
            ipr.link("set", index=index, state="up")
            ipr.addr("add", index=index, address=vif.ip,
                     prefixlen=vif.prefixlen,
                     broadcast=str(iface.network.broadcast_address))
            if vif.device_index == 0:
                if self.metadata_port:
                    ipr.route("add", dst=f"{self.metadata_address}/32",
                              oif=index, scope=SCOPE_LINK)
                ipr.route("add", dst="0.0.0.0/0", gateway=vif.gateway,
                          oif=index)
        netlink.announce(pid, guest_name, vif.mac, vif.ip)

    def _delete_now(self, index: int, ifname: str) -> None:
        try:
            with self.host.lock, netlink.wrap(f"delete {ifname}"):
                self.host.ipr.link("del", index=index)
        except exception.NetworkError as err:
            if not netlink.is_errno(err, errno.ENODEV):
                LOG.warning("cleanup of %s failed: %s", ifname, err)

    def unplug(self, vif: VifSpec) -> None:
        """Queue deletion of the port's veth (its guest end dies with it).

        Idempotent; returns at once. ``deleter.flush()`` waits for it.
        """
        name = veth_name(vif.port_id)
        index = self.host.link_index(name)
        if index is not None:
            self.deleter.delete_link(index, name)

    def plug_all(self, pid: int, vifs: list[VifSpec] | tuple[VifSpec, ...]
                 ) -> None:
        """ensure_bridge + plug for each vif; all or nothing."""
        done: list[VifSpec] = []
        try:
            for vif in sorted(vifs, key=lambda v: v.device_index):
                bridge = self.ensure_bridge(vif.network_id, vif.gateway,
                                            vif.prefixlen, vif.mtu, vif.vni)
                self.plug(pid, vif, bridge)
                done.append(vif)
        except BaseException:
            self.unplug_all(done)
            raise

    def unplug_all(self, vifs: list[VifSpec] | tuple[VifSpec, ...]) -> None:
        for vif in vifs:
            self.unplug(vif)

    def resume(self, vifs: list[VifSpec] | tuple[VifSpec, ...]) -> None:
        """Serve DNS again on the bridges of a running guest's networks
        (this process did not plug it: a restarted compute service);
        costs a dictionary look once served."""
        if not self.dns:
            return
        for vif in vifs:
            if (not self.dns.serves(vif.network_id)
                    and self.host.link_index(bridge_name(vif.network_id))
                    is not None):
                try:
                    self.ensure_bridge(vif.network_id, vif.gateway,
                                       vif.prefixlen, vif.mtu, vif.vni)
                except exception.NetworkError as err:  # the guest runs on
                    LOG.warning("DNS on network %s: %s", vif.network_id, err)

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait for queued deletions; False if they did not finish."""
        return self.deleter.flush(timeout)
