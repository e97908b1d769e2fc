"""Security groups as the compute API and the network API's writers meet
them: a project's groups by name or id (its ``default`` made on first
use), the groups new servers' ports get, and the refresh casts that make
a change reach every compute host enforcing it within a second.
"""

from __future__ import annotations

from typing import Iterable

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.api.request import ApiRequest
from pyct_driver.api.state import Api
from pyct_driver.db import port_batch
from pyct_driver.db import secgroup_ports
from pyct_driver.db import secgroups as db_secgroups

LOG = logging.getLogger(__name__)


def find(api: Api, project_id: str, name_or_id: str) -> dict:
    """The project's group with this id, else its one group of this name
    (400 as Nova's when none or several)."""
    db_secgroups.ensure_default(api.db, project_id)
    groups = db_secgroups.list_groups(api.db, project_id)
    found = [g for g in groups if g["id"] == name_or_id] or \
        [g for g in groups if g["name"] == name_or_id]
    if len(found) != 1:
        what = "Multiple security_group matches found for" if found \
            else "Unable to find security_group with"
        raise exception.Invalid(f"{what} name or id '{name_or_id}'")
    return found[0]


def for_boot(api: Api, req: ApiRequest, server: dict) -> list[str]:
    """The group ids a new server's ports carry: those named in
    ``security_groups``, else the project's ``default``."""
    names = [g["name"] for g in server.get("security_groups") or []]
    project_id = req.context.project_id
    if not names:
        return [db_secgroups.ensure_default(api.db, project_id)]
    return list(dict.fromkeys(find(api, project_id, n)["id"]
                              for n in names))


def attach_to_ports(api: Api, instance_uuids: Iterable[str],
                    group_ids: list[str]) -> None:
    """Give every port of the new servers ``group_ids``."""
    ports = port_batch.ports_by_instance(api.db, list(instance_uuids))
    port_ids = [p["id"] for plist in ports.values() for p in plist]
    if port_ids:
        secgroup_ports.set_port_groups(api.db, port_ids, group_ids)


def default_for_port(api: Api, req: ApiRequest, project_id: str,
                     port_id: str) -> None:
    """A port attached to a running server gets the project's
    ``default`` group (as Nova's attach gets Neutron's default)."""
    group_id = db_secgroups.ensure_default(api.db, project_id)
    secgroup_ports.set_port_groups(api.db, [port_id], [group_id])
    refresh(api, req, [group_id])


def forget_member(api: Api, req: ApiRequest, inst: dict) -> None:
    """A server being deleted leaves its groups at once: the hosts whose
    rules name them drop its addresses (``host_filters`` skips deleting
    servers) before the address can go to another port."""
    refresh(api, req, secgroup_ports.instance_group_ids(api.db,
                                                        inst["uuid"]))


def names_by_instance(api: Api, ports: dict[str, list[dict]]
                      ) -> dict[str, list[str]]:
    """Each server's group names (Nova's ``security_groups``), from its
    ports (``ports_by_instance``)."""
    by_port = secgroup_ports.port_groups(
        api.db, [p["id"] for plist in ports.values() for p in plist])
    ids = {g for groups in by_port.values() for g in groups}
    names = {g["id"]: g["name"] for g in db_secgroups.list_groups(
        api.db, ids=list(ids))} if ids else {}
    out: dict[str, list[str]] = {}
    for uuid, plist in ports.items():
        found = [names[g] for p in plist for g in by_port.get(p["id"], [])
                 if g in names]
        if found:
            out[uuid] = sorted(set(found))
    return out


def refresh(api: Api, req: ApiRequest, group_ids: Iterable[str],
            skip: Iterable[str] = (), also: Iterable[str] = ()) -> None:
    """Cast a refresh to every host enforcing one of ``group_ids`` (and
    to ``also``, not to ``skip``); a host the bus cannot reach converges
    at its next refresh."""
    hosts = (secgroup_ports.hosts_of_groups(api.db, group_ids)
             | set(also)) - set(skip)
    for host in sorted(hosts):
        try:
            api.compute.refresh_security_groups(req.context, host)
        except exception.PyctError as err:
            LOG.warning("security group refresh for %s not sent: %s",
                        host, err)
