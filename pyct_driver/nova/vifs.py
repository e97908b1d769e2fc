"""Neutron's ports plugged into a pyct guest: veths named as Neutron wants.

Under Nova, Neutron owns the network: addresses, the router (the subnet's
gateway) and DHCP/metadata. The adapter therefore does not use pyct's own
project bridges (which carry the gateway address on the host); each port
becomes a veth whose host end is the port's ``devname`` (``tap<id>``, what
Neutron's agents look for) and whose guest end is ``eth<n>`` in the guest's
network namespace, with the port's MAC, MTU and fixed IPv4 address and, on
``eth0``, the default route via the subnet's gateway. For ``bridge`` VIFs
the host end joins Neutron's bridge (created if os-vif has not yet);
``tap``/``ethernet`` host ends are left for the agent to wire.
"""

from __future__ import annotations

import errno
import os

from pyct_driver import exception
from pyct_driver.nova.mapping import NovaVif
from pyct_driver.virt.network import netlink


class VifPlugger:
    """Creates and removes the veths of Nova ports."""

    def __init__(self) -> None:
        self._host: netlink.HostNetlink | None = None

    @property
    def host(self) -> netlink.HostNetlink:
        if self._host is None:
            self._host = netlink.HostNetlink()
        return self._host

    def _bridge_index(self, name: str, mtu: int) -> int:
        host = self.host
        with host.lock:
            index = host.link_index(name)
            if index is None:
                with netlink.wrap(f"create bridge {name}"):
                    host.ipr.link("add", ifname=name, kind="bridge", mtu=mtu)
                index = host.link_index(name)
                with netlink.wrap(f"set {name} up"):
                    host.ipr.link("set", index=index, state="up")
            return index

    def plug(self, pid: int, vif: NovaVif) -> None:
        """Give guest init ``pid`` the port as ``eth<device_index>``."""
        spec = vif.spec
        guest_name = f"eth{spec.device_index}"
        self.unplug(vif.devname)  # a stale end left by a crash or hard reboot
        extra = {}
        if vif.bridge:
            extra["master"] = self._bridge_index(vif.bridge, spec.mtu)
        nsfd = netlink.open_netns(pid)
        try:
            with self.host.lock, netlink.wrap(f"create veth {vif.devname}"):
                self.host.ipr.link(
                    "add", ifname=vif.devname, kind="veth", mtu=spec.mtu,
                    peer={"ifname": guest_name, "net_ns_fd": nsfd,
                          "address": spec.mac, "mtu": spec.mtu}, **extra)
                index = self.host.ipr.link_lookup(ifname=vif.devname)[0]
                self.host.ipr.link("set", index=index, state="up")
        finally:
            os.close(nsfd)
        try:
            self._configure_guest(pid, vif, guest_name)
        except BaseException:
            self.unplug(vif.devname)
            raise

    def _configure_guest(self, pid: int, vif: NovaVif,
                         guest_name: str) -> None:
        spec = vif.spec
        with netlink.guest_netlink(pid) as ipr, \
                netlink.wrap(f"configure {guest_name} in pid {pid}"):
            lo = ipr.link_lookup(ifname="lo")
            if lo:
                ipr.link("set", index=lo[0], state="up")
            index = ipr.link_lookup(ifname=guest_name)[0]
            ipr.link("set", index=index, state="up")
            ipr.addr("add", index=index, address=spec.ip,
                     prefixlen=spec.prefixlen)
            if spec.device_index == 0 and spec.gateway:
                ipr.route("add", dst="0.0.0.0/0", gateway=spec.gateway,
                          oif=index)

    def unplug(self, devname: str) -> None:
        """Remove the port's veth (both ends go). Idempotent."""
        host = self.host
        with host.lock:
            index = host.link_index(devname)
            if index is None:
                return
            try:
                with netlink.wrap(f"delete {devname}"):
                    host.ipr.link("del", index=index)
            except exception.NetworkError as err:
                if not netlink.is_errno(err, errno.ENODEV):
                    raise
