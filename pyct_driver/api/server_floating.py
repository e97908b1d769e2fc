"""Nova's ``addFloatingIp`` and ``removeFloatingIp`` server actions.

Nova took them out in 2.44 (use Neutron's floatingips API); below that
they associate one of the project's floating IPs (by address) with the
server's port holding ``fixed_address`` (its first port if none is
given), or disassociate it, through ``floating_ips.associate``. Nova's
answers: a floating IP the caller can't see is a 404, a fixed address the
server doesn't have a 400, removing one that is not on this server a 409.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import floating_ips, schemas, server_lock, servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import floating_ips as db_floating
from pyct_driver.db import networks as db_networks

_P = "os_compute_api:os-floating-ips:"
_ADDRESS = {"type": "string", "anyOf": [{"format": "ipv4"},
                                        {"format": "ipv6"}]}
ADD = schemas._obj({"addFloatingIp": schemas._obj(
    {"address": _ADDRESS, "fixed_address": _ADDRESS}, ("address",))})
REMOVE = schemas._obj({"removeFloatingIp": schemas._obj(
    {"address": _ADDRESS}, ("address",))})


def _removed(req: ApiRequest, name: str) -> None:
    if req.at_least("2.44"):
        raise exception.NotFound(f"There is no such action: {name}")


def _floating(api: Api, req: ApiRequest, address: str) -> dict:
    project = None if req.is_admin else req.context.project_id
    found = db_floating.list_floating_ips(api.db, project_id=project,
                                          address=address)
    if not found:
        raise exception.NotFound("floating IP not found")
    return found[0]


def add(api: Api, req: ApiRequest, server_id: str, body: dict) -> Result:
    _removed(req, "addFloatingIp")
    schemas.validate(ADD, body)
    data = body["addFloatingIp"]
    inst = servers.get_instance(api, req, server_id, _P + "add")
    server_lock.check(req, inst)
    ports = db_networks.list_ports(api.db, instance_uuids=[inst["uuid"]])
    if not ports:
        raise exception.Invalid("No nw_info cache associated with "
                                "instance")
    fixed = data.get("fixed_address")
    port = next((p for p in ports if not fixed or p["ip_address"] == fixed),
                None)
    if port is None:
        raise exception.Invalid("Specified fixed address not assigned to "
                                "instance")
    fip = _floating(api, req, data["address"])
    floating_ips.associate(api, req, fip, port["id"], port["ip_address"])
    return Result(202)


def remove(api: Api, req: ApiRequest, server_id: str, body: dict) -> Result:
    _removed(req, "removeFloatingIp")
    schemas.validate(REMOVE, body)
    address = body["removeFloatingIp"]["address"]
    inst = servers.get_instance(api, req, server_id, _P + "remove")
    server_lock.check(req, inst)
    fip = _floating(api, req, address)
    if fip["instance_uuid"] != inst["uuid"]:
        raise exception.Conflict(f"Floating IP {address} is not associated "
                                 f"with instance {inst['uuid']}.")
    floating_ips.associate(api, req, fip, None)
    return Result(202)
