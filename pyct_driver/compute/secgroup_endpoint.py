"""The compute side of security groups: recompute what this host
enforces from the database and hand the whole set to the driver.

The API casts ``refresh_security_groups`` to every host a change touches
(a rule, a group's members, a server's groups); a build refreshes before
the guest's veth exists, so a guest never runs unfiltered; the compute
service refreshes once when it starts. Whole-set replacement makes a
lost or repeated cast harmless: the next refresh converges.
"""

from __future__ import annotations

import threading

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.context import RequestContext
from pyct_driver.db import secgroup_ports
from pyct_driver.virt.port_filter import FilterRule, PortFilter

LOG = logging.getLogger(__name__)


def host_port_filters(db, host: str) -> list[PortFilter]:
    """The database's view of ``host``'s port filters as driver values.
    Ports of one group share its rule values (a group's member list is
    read once, not once per member)."""
    made: dict[int, FilterRule] = {}

    def rule(r: dict) -> FilterRule:
        if id(r) not in made:
            made[id(r)] = FilterRule(
                direction=r["direction"], protocol=r["protocol"],
                port_min=r["port_min"], port_max=r["port_max"],
                remotes=None if r["remotes"] is None
                else tuple(r["remotes"]), remote_group=r["remote_group"])
        return made[id(r)]
    ports = secgroup_ports.host_filters(db, host)
    return [PortFilter(port["port_id"], port["ip"], port["gateway"],
                       tuple(rule(r) for r in port["rules"]))
            for port in ports]


class SecurityGroupEndpoints:
    """Mixed into ``ComputeManager`` (``db``, ``driver``, ``host``)."""

    _sg_lock = threading.Lock()

    def sync_port_filters(self) -> None:
        """Enforce the database's current set; a driver without security
        groups (the fake driver records them) is told nothing twice."""
        with self._sg_lock:
            filters = host_port_filters(self.db, self.host)
            try:
                self.driver.apply_port_filters(filters)
            except exception.NotImplementedYet:
                LOG.debug("driver does not enforce security groups")

    def refresh_security_groups(self, ctxt: RequestContext) -> None:
        """RPC 1.8 (a cast): a security group this host enforces
        changed."""
        try:
            self.sync_port_filters()
        except exception.PyctError:
            LOG.exception("refreshing security groups on %s failed",
                          self.host)
