"""The container driver's host-wide side: what it holds, and letting go.

Besides each guest's own disk the container driver holds three things on a
host: the launcher (the fork server every guest init descends from), the
cgroup parent its guests' groups live in, and the project networks'
bridges (with the gateway and metadata addresses) and ports. They outlive
the compute service on purpose while guests run; when none does, the
service's exit and ``pyct-manage host stop`` release them through
``release_host``, and the next start makes them again. A guest counts as
running while its init lives or its group still holds a task.
``watch_networks`` hands the bridges' comings and goings to a watcher (the
metadata service, one listener per bridge); ``set_floating_ips`` makes
the host's floating-IP NAT the compute service's mapping;
``apply_port_filters`` makes the kernel enforce the host's whole set of
security-group filters, writing only what changed
(``network.secgroup_delta``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from typing import Iterable

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.progress import SILENT, Progress
from pyct_driver.virt import base
from pyct_driver.virt.network import secgroup_delta, vxlan
from pyct_driver.virt import host_resources as host_resources_mod

LOG = logging.getLogger(__name__)
# one import of an image at a time in this process: concurrent first
# builds of one image on a host wait for the first import instead of
# failing on its "importing" record
_IMPORTS: dict[str, threading.Lock] = {}
_IMPORTS_GUARD = threading.Lock()


class HostSide:
    """Mixed into ``ContainerDriver``; uses its records, cgroups, launcher,
    network plumbing and per-instance locks."""

    _filter_state: secgroup_delta.FilterState | None = None

    def tunnel_address(self) -> str:
        return self._net_args.get("tunnel_address") or ""

    def set_tunnels(self, network_id: str,
                    ports: list[tuple[str, str]]) -> None:
        if self.tunnel_address():
            self.net.set_tunnels(network_id, [
                vxlan.RemotePort(mac, address) for mac, address in ports])

    def apply_port_filters(self, filters) -> None:
        # only this driver's ports change: another pyct on the kernel
        # (a parallel test deployment) keeps its own
        if self._filter_state is None:
            self._filter_state = secgroup_delta.FilterState(
                os.path.join(self.base_dir, "port_filters.json"))
        self._filter_state.apply(filters)

    def get_available_resource(self) -> base.HostResources:
        return host_resources_mod.host_resources(
            self.base_dir, self.roots.allocated_bytes())

    def import_image(self, image_id: str, path: str,
                     progress: Progress = SILENT) -> base.ImageInfo:
        with _IMPORTS_GUARD:
            lock = _IMPORTS.setdefault(image_id, threading.Lock())
        with lock:
            if self.images.has_image(image_id):
                props = self.images.properties(image_id)
                return base.ImageInfo(
                    disk_format="raw", container_format="bare",
                    size=os.path.getsize(path), checksum="",
                    properties=props)
            return self.images.import_image(image_id, path, progress)

    def delete_image(self, image_id: str) -> None:
        self.images.delete_image(image_id)

    def running_guests(self) -> list[str]:
        """Uuids of the guests with a live init or a task in their group."""
        running = set()
        for uuid in self.records.list():
            with contextlib.suppress(exception.VirtError):
                if self._running(uuid, self.records.load(uuid)):
                    running.add(uuid)
        for name in self.cgroups.list_groups():
            if name not in running and self.cgroups.pids(name):
                running.add(name)
        return sorted(running)

    def watch_networks(self, watcher: base.NetworkWatcher,
                       network_ids: Iterable[str]) -> None:
        with self._guard:
            self._net_args["watcher"] = watcher  # for a plumber made later
            plumber = self._plumber
        if plumber is not None:
            plumber.watcher = watcher
        self.net.announce(network_ids)

    def set_floating_ips(self, mapping: dict[str, str]) -> None:
        # no plumber yet and nothing to NAT: nothing to look at either
        if mapping or self._plumber is not None:
            self.net.set_floating(mapping)

    def host_holdings(self, network_ids: Iterable[str]) -> base.HostHoldings:
        pid = self.launcher.running_pid()
        return base.HostHoldings(
            running=tuple(self.running_guests()),
            helpers=(pid,) if pid else (),
            cgroups=tuple(self.cgroups.parent_dirs()),
            links=tuple(self.net.network_links(network_ids)))

    def release_host(self, network_ids: Iterable[str]) -> base.HostHoldings:
        network_ids = list(network_ids)
        if self.running_guests():
            return self.host_holdings(network_ids)
        # A guest that stopped by itself since the last power sync still
        # has its root mounted; stopping it again releases that.
        for uuid in self.records.list():
            with self._lock(uuid), contextlib.suppress(exception.VirtError):
                record = self.records.load(uuid)
                if record is not None:
                    self._stop(base.bare_spec(uuid), record, 0)
        steps = (("port filters", lambda: self.apply_port_filters([])),
                 ("links", lambda: self.net.remove_networks(network_ids)),
                 ("launcher", self.launcher.shutdown),
                 ("cgroups", self.cgroups.remove_parent),
                 ("view service", self._stop_views))
        for what, step in steps:
            try:
                step()
            except exception.PyctError as err:  # the rest still goes
                LOG.warning("releasing the host's %s: %s", what, err)
        held = self.host_holdings(network_ids)
        with self._guard:
            plumber, self._plumber = self._plumber, None
        if plumber is not None:
            plumber.close()
        return held
