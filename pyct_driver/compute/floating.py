"""Floating IPs on the compute host: its NAT table follows the database.

The database says which floating IP points at which fixed IP of a server
on this host (``db.floating_ips.on_host``); ``sync_floating_ips`` hands
that whole mapping to the driver, which makes its NAT table match (adds
what is missing, removes what is no longer there). The API calls it after
every association change (a blocking RPC call: the answer tells whether
the host could do it); the service's periodic report calls it too, so a
server deleted, a restart or a lost call converge within one report
interval.
"""

from __future__ import annotations

from pyct_driver.context import RequestContext
from pyct_driver.db import floating_ips as db_floating


class FloatingEndpoints:
    """Mixed into ``ComputeManager`` (uses its db, driver and host)."""

    def sync_floating_ips(self, ctxt: RequestContext | None = None) -> None:
        """Make this host's 1:1 NAT match the database."""
        self.driver.set_floating_ips(db_floating.on_host(self.db, self.host))
