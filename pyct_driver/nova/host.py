"""The compute host as Nova sees it through the adapter.

What nova-compute's resource tracker and start-up ask of a driver: the
node (one per host, named after ``CONF.host``), its resources in the
legacy dict and as placement inventories (VCPU, MEMORY_MB, DISK_GB from
pyct's measure of the host) with a ``CUSTOM_PYCT_CONTAINER`` trait so a
flavor can ask for a container host, and ``init_host``, where pyct's
driver re-adopts the guests its records name (live pid, same start time).
Mixed into ``PyctDriver``.
"""

from __future__ import annotations

import json
import os
import platform
import time
from typing import Any

import os_resource_classes as orc
from nova.compute import power_state
from nova import exception as nova_exception
from nova import conf as nova_conf
from nova.virt import hardware

from pyct_driver.nova.errors import nova_errors

CONF = nova_conf.CONF
TRAIT = "CUSTOM_PYCT_CONTAINER"
# (arch, hypervisor type, vm mode): containers run host executables
HV_TYPE = "lxc"
VM_MODE = "exe"


class HostSide:
    """Host-wide calls of ``PyctDriver``."""

    pyct: Any

    def init_host(self, host: str) -> None:
        with nova_errors(host):
            self.pyct.init_host(host)

    def cleanup_host(self, host: str) -> None:
        """Nothing to end: guests keep running while nova-compute is
        down and are re-adopted by the next ``init_host``."""

    def get_host_ip_addr(self) -> str:
        return CONF.my_ip

    def get_host_uptime(self) -> str:
        """The host's uptime and load, as ``uptime`` prints them."""
        with open("/proc/uptime") as f:
            seconds = int(float(f.read().split()[0]))
        with open("/proc/loadavg") as f:
            load = f.read().split()[:3]
        days, rest = divmod(seconds, 86400)
        return (f"{time.strftime('%H:%M:%S')} up {days} days, "
                f"{rest // 3600}:{rest % 3600 // 60:02d}, "
                f"load average: {', '.join(load)}")

    def poll_rebooting_instances(self, timeout: int,
                                 instances: Any) -> None:
        """Nothing to poll: pyct's reboot returns when the guest runs
        again (or raises), so no guest is left rebooting by the driver."""

    def get_available_nodes(self, refresh: bool = False) -> list[str]:
        return [CONF.host]

    def get_info(self, instance: Any, use_cache: bool = True
                 ) -> hardware.InstanceInfo:
        if instance.uuid not in self.pyct.list_instances():
            raise nova_exception.InstanceNotFound(instance_id=instance.uuid)
        with nova_errors(instance.uuid):
            info = self.pyct.get_info(self._bare(instance))
        return hardware.InstanceInfo(state=info.power_state)

    def instance_exists(self, instance: Any) -> bool:
        return instance.uuid in self.pyct.list_instances()

    def list_instance_uuids(self) -> list[str]:
        return self.pyct.list_instances()

    def list_instances(self) -> list[str]:
        """Nova lists guests by name; each record keeps its Nova name."""
        names = []
        for uuid in self.pyct.list_instances():
            path = self.pyct.records.path(uuid, "nova-name")
            try:
                with open(path) as f:
                    names.append(f.read().strip())
            except FileNotFoundError:
                names.append(uuid)
        return names

    def get_num_instances(self) -> int:
        return len(self.pyct.list_instances())

    def _resources(self) -> Any:
        with nova_errors(CONF.host):
            return self.pyct.get_available_resource()

    def get_available_resource(self, nodename: str) -> dict:
        res = self._resources()
        return {
            "vcpus": res.vcpus, "memory_mb": res.memory_mb,
            "local_gb": res.local_gb, "vcpus_used": 0,
            "memory_mb_used": 0, "local_gb_used": 0,
            "hypervisor_type": "pyct",
            "hypervisor_version": 1,
            "hypervisor_hostname": nodename,
            "cpu_info": json.dumps({"arch": platform.machine(),
                                    "vendor": "pyct", "features": []}),
            "disk_available_least": res.local_gb,
            "supported_instances": [(platform.machine(), HV_TYPE,
                                     VM_MODE)],
            "numa_topology": None,
        }

    def update_provider_tree(self, provider_tree: Any, nodename: str,
                             allocations: dict | None = None) -> None:
        res = self._resources()
        inv = provider_tree.data(nodename).inventory
        ratios = self._get_allocation_ratios(inv)
        totals = {orc.VCPU: (res.vcpus, CONF.reserved_host_cpus),
                  orc.MEMORY_MB: (res.memory_mb,
                                  CONF.reserved_host_memory_mb),
                  orc.DISK_GB: (res.local_gb,
                                self._get_reserved_host_disk_gb_from_config(
                                ))}
        provider_tree.update_inventory(nodename, {
            rc: {"total": total, "min_unit": 1, "max_unit": total,
                 "step_size": 1, "allocation_ratio": ratios[rc],
                 "reserved": reserved}
            for rc, (total, reserved) in totals.items() if total > 0})
        provider_tree.add_traits(nodename, TRAIT)

    def resume_state_on_host_boot(self, context: Any, instance: Any,
                                  network_info: Any, share_info: Any,
                                  block_device_info: Any = None) -> None:
        """After a host reboot: start the guest again if it should run."""
        if self.get_info(instance).state != power_state.RUNNING:
            self.power_on(context, instance, network_info,
                          block_device_info)

    def get_console_output(self, context: Any, instance: Any) -> str:
        with nova_errors(instance.uuid):
            return self.pyct.get_console_output(self._bare(instance))

    def instance_on_disk(self, instance: Any) -> bool:
        return os.path.isdir(self.pyct.records.dir(instance.uuid))
