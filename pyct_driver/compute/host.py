"""The compute host as a whole: stop its guests, release it, say what is left.

Guests outlive the compute service on purpose; so do the driver's
host-wide resources that serve them (the container driver's launcher,
cgroup parent, bridges and their addresses). When the service stops and no
guest runs, ``release`` frees those resources; when guests run it changes
nothing and ``describe_left`` names what keeps running. ``stop_guests`` is
``pyct-manage host stop``'s first half: it first drives interrupted tasks
to an end as a starting service would (``recovery``), then powers off
every running guest of the host through the manager's normal stop (a
task-state compare-and-swap, an instance action "stop" with its event, the
guest's own shutdown with ``shutdown_timeout`` and then a kill), all at
once, so the API shows them SHUTOFF and ``server start`` brings them back.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.compute import recovery
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.context import get_admin_context
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances
from pyct_driver.db import networks as db_networks
from pyct_driver.virt.base import HostHoldings

LOG = logging.getLogger(__name__)

_RUNNING = (states.RUNNING, states.PAUSED_POWER)
# a guest that runs is stopped whatever the database says of it
_STOPPABLE = (states.ACTIVE, states.PAUSED, states.ERROR, states.STOPPED)
_MAX_PARALLEL = 16


def network_ids(manager: ComputeManager) -> list[str]:
    """Every network of the deployment (a bridge exists only where a
    guest used it)."""
    return [n["id"] for n in db_networks.list_networks(manager.db)]


def holdings(manager: ComputeManager) -> HostHoldings:
    return manager.driver.host_holdings(network_ids(manager))


def release(manager: ComputeManager) -> tuple[HostHoldings, HostHoldings]:
    """Release the host if no guest runs: (held before, held after)."""
    ids = network_ids(manager)
    before = manager.driver.host_holdings(ids)
    return before, manager.driver.release_host(ids)


def stop_guests(manager: ComputeManager) -> list[str]:
    """Power off every running guest of the host; return their names."""
    recovery.recover_host(manager)
    ctxt = get_admin_context()
    targets = []
    for inst in db_instances.list_(manager.db, host=manager.host):
        if inst["task_state"] is not None:
            continue
        spec = manager.spec(inst)
        if manager.driver.get_info(spec).power_state not in _RUNNING:
            continue
        try:
            db_instances.update(
                manager.db, inst["uuid"], {"task_state": states.POWERING_OFF},
                expected_task_state=(None,), expected_vm_state=_STOPPABLE,
                action="stop")
        except (exception.InstanceInvalidState,
                exception.InstanceNotFound) as err:
            LOG.warning("not stopping %s: %s", inst["uuid"], err)
            continue
        db_actions.action_start(manager.db, inst["uuid"], "stop",
                                ctxt.request_id, ctxt.user_id,
                                ctxt.project_id)
        targets.append(inst)
    if targets:
        with ThreadPoolExecutor(min(len(targets), _MAX_PARALLEL)) as pool:
            list(pool.map(lambda i: manager.stop_instance(ctxt, i["uuid"]),
                          targets))
    return [_label(i) for i in targets]


def _label(inst: dict) -> str:
    return f"{inst['name']} ({inst['uuid']})"


def _names(manager: ComputeManager, uuids: tuple[str, ...]) -> list[str]:
    out = []
    for uuid in uuids:
        try:
            out.append(_label(db_instances.get(manager.db, uuid,
                                               read_deleted=True)))
        except exception.InstanceNotFound:
            out.append(uuid)
    return out


def describe(held: HostHoldings) -> str:
    """What ``held`` counts, in words (guests aside)."""
    parts = []
    if held.helpers:
        pids = ", ".join(str(p) for p in held.helpers)
        parts.append(f"the launcher (fork server, pid {pids})")
    if held.cgroups:
        parts.append(f"{len(held.cgroups)} cgroup parent directories "
                     f"({held.cgroups[0]}, ...)")
    if held.links:
        parts.append(f"{len(held.links)} network links "
                     f"({', '.join(held.links[:4])})")
    return "; ".join(parts) or "nothing"


def describe_left(manager: ComputeManager, held: HostHoldings) -> str:
    """The message for a host left with guests running."""
    names = _names(manager, held.running)
    return (f"{len(names)} guest(s) keep running on host {manager.host}: "
            f"{', '.join(names)}; so do {describe(held)}. "
            "`pyct-manage host stop` (`make stop` after `make run`) shuts "
            "them down cleanly; starting the service again adopts them.")
