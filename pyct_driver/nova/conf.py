"""``[pyct]`` in Nova's configuration: the container driver's settings.

Nova-compute reads one configuration; the adapter registers pyct's
container options (the same ones ``[container]`` holds in pyct.conf) plus
its own state directory under ``[pyct]`` there, and hands the container
driver a view of them shaped like pyct's configuration. Networking and
metadata are Neutron's and Nova's in this mode, so pyct's own project
networks, metadata service and DNS forwarder stay off. ``list_opts`` is
the ``oslo.config.opts`` entry point ``pyct.nova`` for
``oslo-config-generator``.
"""

from __future__ import annotations

import types

from oslo_config import cfg

from pyct_driver.options import container as container_options

GROUP = "pyct"

OPTS = [
    cfg.StrOpt("state_path", default="/var/lib/pyct-nova",
               help="Directory of pyct's state on a Nova compute host "
                    "(image layers, instance roots, records, id ranges)."),
] + list(container_options.OPTS)


def register_opts(conf: cfg.ConfigOpts) -> None:
    """Register ``[pyct]`` on ``conf`` (Nova's ``CONF``)."""
    conf.register_opts(OPTS, group=GROUP)


def list_opts() -> list[tuple[str, list[cfg.Opt]]]:
    """Options of the Nova adapter, for oslo-config-generator."""
    return [(GROUP, list(OPTS))]


def driver_view(conf: cfg.ConfigOpts) -> types.SimpleNamespace:
    """What ``ContainerDriver(conf)`` reads, taken from Nova's ``conf``."""
    group = conf[GROUP]
    return types.SimpleNamespace(
        state_path=group.state_path, container=group,
        compute=types.SimpleNamespace(
            reserved_host_disk_mb=conf.reserved_host_disk_mb),
        # Neutron routes and serves DHCP/metadata: pyct's bridges, its
        # metadata listener and DNS forwarder are not used (port 0: none)
        network=types.SimpleNamespace(
            mtu=1500, egress_nat=False, external_interface="",
            dns_forwarder=False, dns_upstreams=[],
            dns_queries_per_second=100, tunnel_address=""),
        metadata=types.SimpleNamespace(address="169.254.169.254", port=0))
