"""The compute service: RPC server, heartbeat, resource report, power sync.

``ComputeService`` is what ``pyct-compute`` and the all-in-one run: it
recovers the host's instances, then serves the ``pyct-compute`` topic with
this host's name as the RPC server (threaded executor) while one background
thread beats the heartbeat, reports capacity and usage, and runs the
power-state sync on their intervals, and the serial consoles' endpoint
for the proxy (``console_endpoint``) when given. It also runs the host's
metadata service when one is given (``[metadata] port`` > 0), listening on each
project bridge apart (the driver tells it of each: ``watch_networks``), so
another deployment's service on the same host and port is no clash. It
holds the host's
lock (``host_lock``) while it runs, and on stop releases what the driver
holds on the host if no guest runs, or says what keeps running
(``compute.host``).
"""

from __future__ import annotations

import threading
import time

from oslo_log import log as logging

from pyct_driver.compute import host as host_mod
from pyct_driver.compute import host_facts
from pyct_driver.compute import recovery, resize, shelve
from pyct_driver.compute.console_endpoint import ConsoleEndpoint
from pyct_driver.compute.host_lock import HostLock
from pyct_driver.exception import DBUnavailable, PyctError
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services
from pyct_driver.metadata.server import MetadataServer
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.rpc.transport import messaging

LOG = logging.getLogger(__name__)

BINARY = "pyct-compute"


class ComputeService:
    """One compute host's service loop."""

    def __init__(self, manager: ComputeManager,
                 transport: messaging.Transport, report_interval: float = 10,
                 sync_interval: float = 60,
                 allocation: dict | None = None,
                 metadata_server: MetadataServer | None = None,
                 reserved_host_disk_mb: int = 0,
                 host_lock: HostLock | None = None,
                 host_ip: str | None = None,
                 hypervisor_type: str = "container",
                 console_endpoint: ConsoleEndpoint | None = None) -> None:
        self.manager = manager
        self.console_endpoint = console_endpoint
        # what os-hypervisors shows of this host besides its capacity
        self.facts = {"host_ip": host_facts.host_ip(host_ip),
                      "hypervisor_type": hypervisor_type,
                      "hypervisor_version": host_facts.kernel_version()}
        self.host_lock = host_lock
        self.metadata_server = metadata_server
        self.transport = transport
        self.report_interval = report_interval
        self.sync_interval = sync_interval
        self.allocation = allocation or {
            "cpu_allocation_ratio": 16.0, "ram_allocation_ratio": 1.0,
            "disk_allocation_ratio": 1.0, "reserved_host_memory_mb": 0}
        # Nova's arithmetic: whole GiB, the reserve rounded up
        self.reserved_disk_gb = -(-reserved_host_disk_mb // 1024)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._server: messaging.MessageHandlingServer | None = None

    @property
    def host(self) -> str:
        return self.manager.host

    def start(self) -> None:
        if self.host_lock is not None:
            self.host_lock.acquire()  # HostBusy: another owner runs
        self.manager.driver.init_host(self.host)
        self._start_metadata()  # before recovery may start guests
        self._start_consoles()
        self.report()
        # the guests' security groups before recovery may start them
        self.manager.refresh_security_groups(None)
        recovery.recover_host(self.manager)
        recovery.sync_power_states(self.manager)
        target = messaging.Target(topic=rpc_transport.TOPIC,
                                  server=self.host)
        # no executor argument (deprecated): without eventlet oslo.messaging
        # runs the threading executor
        self._server = messaging.get_rpc_server(
            self.transport, target, [self.manager],
            serializer=rpc_transport.ContextSerializer())
        self._server.start()
        self._thread = threading.Thread(target=self._periodic, daemon=True,
                                        name=f"periodic-{self.host}")
        self._thread.start()
        LOG.info("compute service on %s started", self.host)

    def _start_metadata(self) -> None:
        if self.metadata_server is None:
            return
        try:
            self.metadata_server.start()
        except PyctError as err:
            # Guests still boot (config drive, injected files); an operator
            # sees this and fixes the port clash or the address.
            LOG.error("metadata service not started: %s", err)
            self.metadata_server = None
            return
        if self.metadata_server.per_device:  # a listener on each bridge
            self.manager.driver.watch_networks(
                self.metadata_server, host_mod.network_ids(self.manager))

    def _start_consoles(self) -> None:
        if self.console_endpoint is None:
            return
        try:
            self.console_endpoint.start()
        except PyctError as err:  # guests run; consoles answer 400
            LOG.error("serial consoles not offered: %s", err.message)
            return
        self.manager.consoles = self.console_endpoint

    def report(self) -> None:
        """Heartbeat plus this host's capacity and usage. ``local_gb`` is
        the disk instances may have here: the driver's figure less the
        reserve (the scheduler multiplies it by the allocation ratio and
        subtracts the flavors placed, as placement does with Nova's
        inventory); ``local_gb_used`` is the flavors' root + ephemeral."""
        db = self.manager.db
        db_services.heartbeat(db, self.host, BINARY, rpc_transport.TOPIC,
                              self.manager.driver.tunnel_address())
        res = self.manager.driver.get_available_resource()
        usage = db_instances.usage_by_host(db).get(self.host, {})
        local_gb = max(0, res.local_gb - self.reserved_disk_gb)
        # Nova's resource tracker view, for an operator with debug on
        LOG.debug("resources of %s: vcpus %d/%d, memory %d/%d MiB, disk "
                  "%d/%d GiB, %d instance(s)", self.host,
                  usage.get("vcpus", 0), res.vcpus,
                  usage.get("memory_mb", 0), res.memory_mb,
                  usage.get("local_gb", 0), local_gb,
                  usage.get("instances", 0))
        db_services.compute_node_report(db, self.host, dict(
            vcpus=res.vcpus, memory_mb=res.memory_mb, local_gb=local_gb,
            vcpus_used=usage.get("vcpus", 0),
            memory_mb_used=usage.get("memory_mb", 0),
            local_gb_used=usage.get("local_gb", 0),
            running_vms=usage.get("instances", 0),
            uptime=host_facts.uptime_text(), **self.facts,
            **self.allocation))

    def _periodic(self) -> None:
        next_report = time.monotonic() + self.report_interval
        next_sync = (time.monotonic() + self.sync_interval
                     if self.sync_interval > 0 else None)
        while not self._stop.is_set():
            now = time.monotonic()
            wake = min(t for t in (next_report, next_sync) if t is not None)
            if self._stop.wait(max(0.0, wake - now)):
                break
            now = time.monotonic()
            try:
                if now >= next_report:
                    next_report = now + self.report_interval
                    self.report()
                    resize.confirm_due(self.manager)
                    shelve.offload_due(self.manager)
                    self.manager.sync_floating_ips()
                    self.manager.sync_tunnels()
                if next_sync is not None and now >= next_sync:
                    next_sync = now + self.sync_interval
                    recovery.sync_power_states(self.manager)
            except DBUnavailable as err:  # guests run on; so do we
                LOG.warning("periodic tasks of %s skipped: %s", self.host,
                            err.kwargs.get("reason", err.message))
            except Exception:  # keep beating; the next round may succeed
                LOG.exception("periodic task failed on %s", self.host)

    def stop(self) -> None:
        self._stop.set()
        if self._server is not None:
            self._server.stop()
            self._server.wait()
            self._server = None
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
        if self.metadata_server is not None:
            self.metadata_server.stop()
        if self.console_endpoint is not None:
            self.manager.consoles = None
            self.console_endpoint.stop()
        self._release_host()
        if self.host_lock is not None:
            self.host_lock.release()
        LOG.info("compute service on %s stopped", self.host)

    def _release_host(self) -> None:
        """Free the host if no guest runs; else say what keeps running."""
        try:
            before, after = host_mod.release(self.manager)
        except PyctError as err:
            LOG.error("could not release host %s: %s", self.host, err)
            return
        if after.running:
            LOG.warning("%s", host_mod.describe_left(self.manager, after))
        elif not after.empty():
            LOG.error("no guest runs on %s, but these are left: %s",
                      self.host, host_mod.describe(after))
        elif not before.empty():
            LOG.info("no guest runs on %s: released %s", self.host,
                     host_mod.describe(before))
