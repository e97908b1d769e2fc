"""What a compute host enforces on its guests' ports: security groups
resolved to plain addresses.

The compute manager builds these from the database (a remote group becomes
the fixed IPs of its members' ports) and hands the whole host's set to the
driver, which compiles them into the kernel's filter
(``virt.network.secgroup_nft``). Values only, so the virt layer never needs
the database.
"""

from __future__ import annotations

import dataclasses

INGRESS = "ingress"
EGRESS = "egress"


@dataclasses.dataclass(frozen=True)
class FilterRule:
    """One allow rule. ``protocol`` None is any IP protocol; for tcp/udp
    ``port_min``..``port_max`` is the destination port range, for icmp
    they are the type and the code; ``remotes`` None is any address,
    else the CIDRs or addresses the other end must be in (empty: none).
    ``remote_group`` names the security group whose members' addresses
    ``remotes`` are: the kernel keeps one shared set per group, so a
    member joining or leaving changes that set, not every port's rules."""

    direction: str
    protocol: str | None = None
    port_min: int | None = None
    port_max: int | None = None
    remotes: tuple[str, ...] | None = None
    remote_group: str | None = None


@dataclasses.dataclass(frozen=True)
class PortFilter:
    """One guest port and the rules of all its security groups together.
    ``gateway`` is the host's own address on the port's network."""

    port_id: str
    ip: str
    gateway: str
    rules: tuple[FilterRule, ...] = ()
