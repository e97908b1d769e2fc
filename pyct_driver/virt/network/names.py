"""Names of pyct's links on the host, from the ids of their network or port.

A project network's bridge is ``pyb-<network id[:11]>`` (its VXLAN link
``pyx-<network id[:11]>``), a port's
host-side veth ``pyv-<port id[:11]>`` (IFNAMSIZ is 16 with the NUL: 4
of prefix + 11), so a leak check or an operator can tell them from the
host's own links and find the network or port they belong to.
"""

from __future__ import annotations

BRIDGE_PREFIX = "pyb-"
VETH_PREFIX = "pyv-"
VXLAN_PREFIX = "pyx-"
NAME_CHARS = 11


def bridge_name(network_id: str) -> str:
    return BRIDGE_PREFIX + network_id[:NAME_CHARS]


def veth_name(port_id: str) -> str:
    return VETH_PREFIX + port_id[:NAME_CHARS]


def vxlan_name(network_id: str) -> str:
    return VXLAN_PREFIX + network_id[:NAME_CHARS]
