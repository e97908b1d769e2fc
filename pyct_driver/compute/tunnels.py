"""Project networks across hosts on the compute side: the VXLAN
forwarding entries of each network this host carries follow the ports
table.

``sync_tunnels`` reads, for every network with a port of a live server
here, where all of that network's ports are and each host's tunnel
address (``db.tunnels``), and hands that to the driver, which makes its
VXLAN links' forwarding entries exactly that. A build or delete on this
host syncs here and casts ``refresh_tunnels`` (RPC 1.10) to the other
hosts carrying the same networks, so their entries gain or lose this
host's port; the service's periodic report syncs too, so a lost cast,
a host that died or a restart converge within one report interval.
Whole-set replacement makes a repeated cast harmless.
"""

from __future__ import annotations

import threading
from typing import Iterable

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.context import RequestContext, get_admin_context
from pyct_driver.db import tunnels as db_tunnels

LOG = logging.getLogger(__name__)


class TunnelEndpoints:
    """Mixed into ``ComputeManager`` (``db``, ``driver``, ``host`` and the
    RPC client ``compute_rpc``)."""

    _tunnel_lock = threading.Lock()
    # set by the composition root; None: no casts (tests, tools)
    compute_rpc = None

    def sync_tunnels(self, network_ids: Iterable[str] | None = None) -> None:
        """Program ``network_ids`` (default: every network with a port
        here) from the database."""
        if not self.driver.tunnel_address():
            return
        with self._tunnel_lock:
            if network_ids is None:
                network_ids = db_tunnels.host_networks(self.db, self.host)
            ports = db_tunnels.network_ports(self.db, network_ids)
            for network_id, entries in ports.items():
                self.driver.set_tunnels(network_id, entries)

    def refresh_tunnels(self, ctxt: RequestContext,
                        network_ids: list[str]) -> None:
        """RPC 1.10 (a cast): another host's ports on ``network_ids``
        came or went."""
        try:
            self.sync_tunnels(network_ids)
        except exception.PyctError:
            LOG.exception("refreshing tunnels of %s on %s failed",
                          network_ids, self.host)

    def tunnels_changed(self, ctxt: RequestContext | None,
                        network_ids: Iterable[str]) -> None:
        """This host's ports on ``network_ids`` came or went: sync here,
        tell the other hosts carrying them. Never fails the caller."""
        network_ids = sorted(set(network_ids))
        if not network_ids or not self.driver.tunnel_address():
            return
        try:
            self.sync_tunnels(network_ids)
            hosts = db_tunnels.hosts_of_networks(self.db, network_ids)
            for host in sorted(hosts - {self.host}):
                if self.compute_rpc is None:
                    break
                self.compute_rpc.refresh_tunnels(
                    ctxt or get_admin_context(), host, network_ids)
        except exception.PyctError:
            LOG.exception("telling hosts of tunnels %s from %s failed",
                          network_ids, self.host)
