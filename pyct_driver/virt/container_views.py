"""The container driver's guest views: what a guest sees of its flavor.

Two parts, both on by default (``[container] guest_views`` and
``guest_cpuset``): the host's one view service
(``process.caller.viewservice``: lxcfs, started at ``init_host`` and
watched, its files bound over each guest's /proc and /sys by the guest's
mount recipe; after a crash of it the new one's files reach every running
guest by mount propagation), and a cpuset of exactly the flavor's vCPUs
per guest (``cgroups.cpuset``: the least used CPUs at spawn, re-balanced
when a guest goes away; a flavor opts out with
``pyct:dedicated_cpuset=false``). A guest spawned while the service is
down sees the host's files (logged), never fails for it.
"""

from __future__ import annotations

import os

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver import extra_specs
from pyct_driver.virt import base
from pyct_driver.virt.cgroups.cpuset import CpusetPlacer
from pyct_driver.virt.process.caller.viewservice import ViewService

LOG = logging.getLogger(__name__)


class ViewSide:
    """Guest views of ``ContainerDriver`` (mixed into it)."""

    views: ViewService | None = None
    cpusets: CpusetPlacer | None = None

    def _init_views(self, opts) -> None:
        if opts.guest_views:
            self.views = ViewService(os.path.join(self.base_dir, "views"),
                                     opts.lxcfs_binary)
        if opts.guest_cpuset:
            self.cpusets = CpusetPlacer(self.cgroups)

    def _start_views(self) -> None:
        if self.views is not None:
            self.views.ensure()
            self.views.watch()

    def _stop_views(self) -> None:
        """No guest runs: the host lets go of its lxcfs (``release_host``);
        the next spawn or start starts it again."""
        if self.views is not None:
            self.views.stop()

    def _views_dir(self) -> str:
        """The live service's directory for a spawn ("" without one)."""
        if self.views is None:
            return ""
        self.views.watch()  # again after release_host stopped it
        return self.views.ensure() or ""

    def _place_cpus(self, instance: base.InstanceSpec) -> None:
        """A cpuset of the flavor's vCPUs (every host CPU for a flavor
        that opts out); at spawn, start and resize."""
        if self.cpusets is None:
            return
        count = instance.flavor.vcpus
        if not extra_specs.dedicated_cpuset_from(instance.flavor.extra_specs):
            count = len(self.cpusets.host_cpus())
        try:
            cpus = self.cpusets.place(instance.uuid, count)
        except exception.CgroupError as err:
            LOG.warning("instance %s keeps every host CPU: %s",
                        instance.uuid, err)
            return
        LOG.debug("instance %s on CPUs %s", instance.uuid, cpus)

    def _rebalance_cpus(self) -> None:
        if self.cpusets is None:
            return
        try:
            self.cpusets.rebalance()
        except exception.CgroupError as err:
            LOG.warning("re-balancing guests' CPUs: %s", err)
