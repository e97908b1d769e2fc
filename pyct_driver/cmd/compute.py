"""``pyct-compute``: the compute service of one host.

Loads the configured virt driver, recovers this host's instances and serves
the ``pyct-compute`` RPC topic as server ``[DEFAULT] host`` until SIGTERM.
Guests keep running when it stops or dies; when it stops and none runs, it
releases the host (launcher, cgroup parent, bridges: ``compute.host``).
One service per host and state dir (``compute.host_lock``).
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import os
import sys

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver import exception, plugins
from pyct_driver.cmd import bootstrap
from pyct_driver.compute import host_facts
from pyct_driver.compute.console_endpoint import ConsoleEndpoint
from pyct_driver.compute.host_lock import HostLock
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.notifications.notifier import Notifications
from pyct_driver.compute.service import ComputeService
from pyct_driver.db.engine import Database
from pyct_driver.metadata.server import MetadataServer
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.rpc.client import ComputeClient
from pyct_driver.virt.base import TUNNEL_OVERHEAD

LOG = logging.getLogger(__name__)


def host_lock(conf: cfg.ConfigOpts) -> HostLock:
    """The lock of ``[DEFAULT] host`` in ``state_path``."""
    return HostLock(os.path.join(conf.state_path, f"compute-{conf.host}.lock"),
                    conf.host)


def build_manager(conf: cfg.ConfigOpts, db: Database,
                  notify: bool = True) -> ComputeManager:
    """The configured virt driver behind a compute manager (``notify``:
    sending the configured notifications; a command line tool does not)."""
    driver = plugins.load_virt_driver(conf.virt_driver, conf)
    return ComputeManager(
        db, driver, conf.host,
        shutdown_timeout=conf.compute.shutdown_timeout,
        force_config_drive=conf.metadata.force_config_drive,
        gateway_dns=conf.network.dns_forwarder,
        resize_confirm_window=conf.resize_confirm_window,
        shelved_offload_time=conf.shelved_offload_time,
        image_dir=os.path.join(conf.state_path, "images"),
        notifications=Notifications.from_conf(conf, db, conf.host)
        if notify else None)


def build_service(conf: cfg.ConfigOpts, db: Database) -> ComputeService:
    """Compose a compute service from configuration."""
    manager = build_manager(conf, db)
    transport = rpc_transport.get_transport(conf)
    # tells the other hosts of this one's ports (compute.tunnels)
    manager.compute_rpc = ComputeClient(conf, transport)
    # where this host receives migrating guests (compute.migrate)
    manager.migration_address = conf.migration.address or \
        host_facts.host_ip(conf.my_ip)
    manager.migration_token_ttl = conf.migration.token_ttl
    manager.migration_timeout = conf.migration.transfer_timeout
    metadata = None
    if conf.metadata.port > 0:
        metadata = MetadataServer.from_db(
            db, conf.metadata.address, conf.metadata.port, conf.host,
            gateway_dns=conf.network.dns_forwarder, per_device=True,
            overhead=(TUNNEL_OVERHEAD if conf.network.tunnel_address
                      else 0))
    return ComputeService(
        manager, transport,
        report_interval=conf.report_interval,
        sync_interval=conf.sync_power_state_interval,
        allocation={
            "cpu_allocation_ratio": conf.compute.cpu_allocation_ratio,
            "ram_allocation_ratio": conf.compute.ram_allocation_ratio,
            "disk_allocation_ratio": conf.compute.disk_allocation_ratio,
            "reserved_host_memory_mb": conf.compute.reserved_host_memory_mb,
        },
        metadata_server=metadata,
        host_ip=conf.my_ip, hypervisor_type=conf.virt_driver,
        reserved_host_disk_mb=conf.compute.reserved_host_disk_mb,
        host_lock=host_lock(conf), console_endpoint=console_endpoint(
            conf, manager))


def console_endpoint(conf: cfg.ConfigOpts, manager: ComputeManager
                     ) -> ConsoleEndpoint | None:
    """Where ``pyct-serialproxy`` attaches to this host's guests."""
    opts = conf.serial_console
    if not opts.enabled:
        return None
    return ConsoleEndpoint(opts.proxyclient_address,
                           ConsoleEndpoint.parse_range(opts.port_range),
                           opts.token_ttl, manager.attach_console)


def start(service: ComputeService) -> bool:
    """Start ``service``; False, after one clear line instead of a
    traceback, when another process holds the host."""
    try:
        service.start()
    except exception.HostBusy as err:
        LOG.error("%s", err.message)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.parse_args(argv if argv is not None else sys.argv)
    db = bootstrap.database(conf)
    service = build_service(conf, db)
    if not start(service):
        return 1
    try:
        bootstrap.wait_for_signal(conf)
    finally:
        service.stop()
        rpc_transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
