"""What a server's ``networks`` request means, and how its ports look.

``resolve`` turns the request's ``networks`` into port requests before any
row is written: ``"auto"`` is the project's default network (created on
first use), ``"none"`` is no port, a list names networks of the project
(another project's network is "not found", a 400 at create as in Nova;
a port it sees is already bound, a 409),
and no ``networks`` at all (before 2.37) means the project's only network,
none if it has none. ``addresses`` and ``attachment`` render ports the way
Nova's server body and os-interface do.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api.request import ApiRequest
from pyct_driver.api.state import Api
from pyct_driver.db import networks as db_networks


def default_network(api: Api, project_id: str) -> dict:
    return db_networks.get_or_create_default(
        api.db, project_id, api.ipam, api.host_routes)


def _visible(api: Api, req: ApiRequest, network_id: str) -> dict:
    project = None if req.is_admin else req.context.project_id
    return db_networks.get_network(api.db, network_id, project)


def resolve(api: Api, req: ApiRequest, value, max_count: int
            ) -> list[db_networks.PortRequest]:
    """Port requests for each new server (the same for every one)."""
    project = req.context.project_id
    if value == "none":
        return []
    if value == "auto":
        return [db_networks.PortRequest(default_network(api, project)["id"])]
    if value is None:
        nets = db_networks.list_networks(api.db, project_id=project)
        if len(nets) > 1:
            raise exception.Conflict(
                "Multiple possible networks found, use a Network ID to be "
                "more specific.")
        return [db_networks.PortRequest(n["id"]) for n in nets]
    out = []
    for item in value:
        if item.get("port"):
            raise port_unusable(api, req, item["port"], exception.Invalid)
        try:
            net = _visible(api, req, item["uuid"])
        except exception.NotFound as err:
            raise exception.Invalid(err.message) from err
        fixed_ip = item.get("fixed_ip")
        if fixed_ip is not None and max_count > 1:
            raise exception.Invalid(
                "max_count cannot be greater than 1 if an fixed_ip is "
                "specified.")
        out.append(db_networks.PortRequest(net["id"], fixed_ip))
    return out


def port_unusable(api: Api, req: ApiRequest, port_id: str,
                  not_found: type[exception.PyctError]
                  ) -> exception.PyctError:
    """Why a port the request names cannot be used: one the caller cannot
    see is not found (``not_found``: 400 at create, 404 at attach); one it
    sees is bound to a server (pyct has no unbound ports), Nova's 409."""
    ports = db_networks.list_ports(api.db, port_id=port_id)
    if ports and (req.is_admin
                  or ports[0]["project_id"] == req.context.project_id):
        return exception.PortInUse(port_id=port_id)
    return not_found(f"Port id {port_id} could not be found.")


def addresses(ports: list[dict]) -> dict:
    """Nova's ``addresses``: network name -> the server's fixed IPs."""
    out: dict[str, list[dict]] = {}
    for port in ports:
        out.setdefault(port["network"]["name"], []).append({
            "version": 4, "addr": port["ip_address"],
            "OS-EXT-IPS:type": "fixed",
            "OS-EXT-IPS-MAC:mac_addr": port["mac_address"]})
    return out


def attachment(port: dict) -> dict:
    """One os-interface ``interfaceAttachment``."""
    return {"port_id": port["id"], "net_id": port["network_id"],
            "mac_addr": port["mac_address"],
            "port_state": port["status"],
            "fixed_ips": [{"ip_address": port["ip_address"],
                           "subnet_id": port["network"]["subnet_id"]}]}
