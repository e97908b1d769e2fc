"""The container driver's security groups: the host's whole set of port
filters compiled into pyct's nf_tables tables (``network.secgroup_nft``),
one kernel transaction per change so a guest never sees half a set."""

from __future__ import annotations

from typing import Sequence

from pyct_driver.virt.network import secgroup_nft
from pyct_driver.virt.port_filter import PortFilter


class PortFilters:
    def apply_port_filters(self, filters: Sequence[PortFilter]) -> None:
        secgroup_nft.apply(filters)
