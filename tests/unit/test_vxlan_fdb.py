"""The VXLAN forwarding entries a host programs, from the ports table's
view (``vxlan.wanted``): pure, no kernel."""

from __future__ import annotations

import pytest

from pyct_driver.virt.network import vxlan
from pyct_driver.virt.network.bridge_set import BridgeSet
from pyct_driver.virt.network.vxlan import FLOOD_MAC, RemotePort

LOCAL = "10.244.0.1"


def test_no_other_host_no_entries():
    ports = [RemotePort("fa:16:3e:00:00:01", LOCAL),
             RemotePort("fa:16:3e:00:00:02", LOCAL)]
    assert vxlan.wanted(ports, LOCAL) == set()
    assert vxlan.wanted([], LOCAL) == set()


def test_one_flood_entry_per_remote_host_and_one_per_remote_mac():
    ports = [RemotePort("fa:16:3e:00:00:01", LOCAL),
             RemotePort("FA:16:3E:00:00:02", "10.244.0.2"),
             RemotePort("fa:16:3e:00:00:03", "10.244.0.2"),
             RemotePort("fa:16:3e:00:00:04", "10.244.0.3")]
    assert vxlan.wanted(ports, LOCAL) == {
        (FLOOD_MAC, "10.244.0.2"), (FLOOD_MAC, "10.244.0.3"),
        ("fa:16:3e:00:00:02", "10.244.0.2"),
        ("fa:16:3e:00:00:03", "10.244.0.2"),
        ("fa:16:3e:00:00:04", "10.244.0.3")}


def test_ports_of_hosts_without_tunnel_address_are_skipped():
    # a host with VXLAN off (or not reporting yet) cannot be reached
    ports = [RemotePort("fa:16:3e:00:00:05", ""),
             RemotePort("fa:16:3e:00:00:06", "10.244.0.9")]
    assert vxlan.wanted(ports, LOCAL) == {
        (FLOOD_MAC, "10.244.0.9"), ("fa:16:3e:00:00:06", "10.244.0.9")}


def test_bad_address_is_refused():
    with pytest.raises(ValueError):
        vxlan.wanted([RemotePort("fa:16:3e:00:00:07", "nohost")], LOCAL)


class _Plumber(BridgeSet):
    """Just what link_mtu and set_tunnels read."""

    def __init__(self, tunnel_address: str) -> None:
        self.tunnel_address = tunnel_address
        self.mtu = 1500


def test_mtu_is_lowered_only_for_tunnelled_networks():
    on, off = _Plumber(LOCAL), _Plumber("")
    assert on.link_mtu(1500, 7) == 1450
    assert on.link_mtu(None, 7) == 1450
    assert on.link_mtu(1500, None) == 1500
    assert off.link_mtu(1500, 7) == 1500
    assert off.set_tunnels("net", []) is False
