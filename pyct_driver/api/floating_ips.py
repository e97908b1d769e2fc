"""Neutron's ``floatingips`` at ``/networking/v2.0/floatingips``.

The external network is the operator's ``[network] floating_ip_range``
(``networking.external_network``). A project holds addresses of it (lowest free
one, or the one asked for), associates each with one of its own ports
(``port_id``), disassociates it (``port_id`` null) and releases it, under
Neutron's rules and fault bodies: another project's port is "not found"
(404) as Neutron hides it, a port that already has a floating IP or an
address in use is a 409, a port whose fixed IP is not
``fixed_ip_address`` a 400. Holding one counts against the project's
``floating_ips`` quota (-1, no limit, unless an admin sets it). After
every association change the servers' compute hosts are told to make
their NAT follow (``compute.floating``); if a host cannot, the change is
undone and the answer is a 409.
"""

from __future__ import annotations

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.api import networking, quota_check, schemas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import floating_ips as db_floating
from pyct_driver.db import networks as db_networks

LOG = logging.getLogger(__name__)
_IP = {"type": "string", "format": "ipv4"}
_PORT = {"anyOf": [schemas.UUID, {"type": "null"}]}
_TEXT = {"type": "string", "maxLength": 255}
CREATE = schemas._obj({"floatingip": schemas._obj({
    "floating_network_id": schemas.UUID, "floating_ip_address": _IP,
    "port_id": _PORT, "fixed_ip_address": _IP, "description": _TEXT,
    "project_id": _TEXT, "tenant_id": _TEXT,
}, ("floating_network_id",))}, ("floatingip",))
UPDATE = schemas._obj({"floatingip": schemas._obj({
    "port_id": _PORT, "fixed_ip_address": _IP, "description": _TEXT,
})}, ("floatingip",))


def view(fip: dict) -> dict:
    iso = networking._iso
    return {
        "id": fip["id"], "tenant_id": fip["project_id"],
        "project_id": fip["project_id"],
        "floating_ip_address": fip["floating_ip_address"],
        "floating_network_id": fip["floating_network_id"],
        "router_id": None, "port_id": fip["port_id"],
        "fixed_ip_address": fip["fixed_ip_address"],
        "status": "ACTIVE" if fip["port_id"] else "DOWN",
        "description": fip["description"], "dns_domain": "",
        "dns_name": "", "port_details": None, "tags": [],
        "qos_policy_id": None, "port_forwardings": [],
        "created_at": iso(fip["created_at"]),
        "updated_at": iso(fip["updated_at"] or fip["created_at"]),
        "revision_number": 0}


def _readable(api: Api, req: ApiRequest, **filters) -> list[dict]:
    project = None if req.is_admin else req.context.project_id
    return [f for f in db_floating.list_floating_ips(
        api.db, project_id=project, **filters)
        if api.policy.check(req.context, "get_floatingip",
                            {"project_id": f["project_id"]})]


def get(api: Api, req: ApiRequest, fip_id: str, rule: str) -> dict:
    """The floating IP if the caller may read it (else 404), then
    ``rule`` on its project."""
    found = _readable(api, req, ids=[fip_id])
    if not found:
        raise exception.NotFound(f"Floating IP {fip_id} could not be "
                                 f"found")
    api.policy.authorize(req.context, rule,
                         {"project_id": found[0]["project_id"]})
    return found[0]


def _port(api: Api, req: ApiRequest, fip: dict, port_id: str,
          fixed_ip: str | None) -> dict:
    """The port to associate with: the floating IP's project's own."""
    ports = db_networks.list_ports(api.db, port_id=port_id)
    if not ports or not (req.is_admin or ports[0]["project_id"]
                         == req.context.project_id):
        raise exception.NotFound(f"Port {port_id} could not be found.")
    port = ports[0]
    if port["project_id"] != fip["project_id"]:
        raise exception.Invalid(
            f"Cannot create floating IP and bind it to Port {port_id}, "
            f"since that port is owned by a different tenant.")
    if fixed_ip and fixed_ip != port["ip_address"]:
        raise exception.Invalid(f"Port {port_id} does not have fixed ip "
                                f"{fixed_ip}.")
    return port


def _sync(api: Api, req: ApiRequest, hosts: set) -> None:
    for host in sorted(h for h in hosts if h):
        api.compute.sync_floating_ips(req.context, host)


def associate(api: Api, req: ApiRequest, fip: dict, port_id: str | None,
              fixed_ip: str | None = None) -> dict:
    """Point ``fip`` at ``port_id`` (None: nowhere) and have the hosts
    involved follow; undone if one cannot."""
    if port_id is not None:
        _port(api, req, fip, port_id, fixed_ip)
    new = db_floating.set_port(api.db, fip["id"], port_id)
    try:
        _sync(api, req, {fip.get("host"), new.get("host")})
    except (exception.VirtError, exception.RPCError) as err:
        LOG.warning("floating IP %s on instance %s: %s",
                    fip["floating_ip_address"], new.get("instance_uuid"),
                    err)
        db_floating.set_port(api.db, fip["id"], fip["port_id"])
        raise exception.Conflict(
            f"Floating IP {fip['floating_ip_address']} could not be set "
            f"up on the server's compute host.") from err
    return new


def index(api: Api, req: ApiRequest) -> Result:
    return Result(200, {"floatingips": networking._filtered(
        req, [view(f) for f in _readable(api, req)])})


def show(api: Api, req: ApiRequest, floatingip_id: str) -> Result:
    return Result(200, {"floatingip": view(
        get(api, req, floatingip_id, "get_floatingip"))})


def create(api: Api, req: ApiRequest) -> Result:
    body = req.json_body()
    schemas.validate(CREATE, body)
    data = body["floatingip"]
    project = data.get("project_id") or data.get("tenant_id")
    if not req.is_admin or not project:
        project = req.context.project_id
    api.policy.authorize(req.context, "create_floatingip",
                         {"project_id": project})
    ext = networking.external_network(api)
    if ext is None or data["floating_network_id"] != ext["id"]:
        raise exception.NotFound(f"Network {data['floating_network_id']} "
                                 f"could not be found.")
    limit = quota_check.effective(api, project)["floating_ips"]
    if 0 <= limit <= db_floating.count(api.db, project):
        raise exception.Conflict("Quota exceeded for resources: "
                                 "['floatingip'].")
    fip = db_floating.create(api.db, project, ext["id"],
                             api.settings.floating_range,
                             data.get("floating_ip_address"),
                             data.get("description", ""))
    if data.get("port_id"):
        try:
            fip = associate(api, req, fip, data["port_id"],
                            data.get("fixed_ip_address"))
        except BaseException:
            db_floating.delete(api.db, fip["id"])
            raise
    return Result(201, {"floatingip": view(fip)})


def update(api: Api, req: ApiRequest, floatingip_id: str) -> Result:
    body = req.json_body()
    schemas.validate(UPDATE, body)
    data = body["floatingip"]
    fip = get(api, req, floatingip_id, "update_floatingip")
    if "port_id" in data:
        fip = associate(api, req, fip, data["port_id"],
                        data.get("fixed_ip_address"))
    if "description" in data:
        db_floating.set_description(api.db, fip["id"], data["description"])
    return Result(200, {"floatingip": view(
        db_floating.list_floating_ips(api.db, ids=[fip["id"]])[0])})


def delete(api: Api, req: ApiRequest, floatingip_id: str) -> Result:
    fip = get(api, req, floatingip_id, "delete_floatingip")
    if fip["port_id"]:
        associate(api, req, fip, None)
    db_floating.delete(api.db, fip["id"])
    return Result(204)


ROUTES = [
    ("GET", "v2.0/floatingips", index),
    ("POST", "v2.0/floatingips", create),
    ("GET", "v2.0/floatingips/{floatingip_id}", show),
    ("PUT", "v2.0/floatingips/{floatingip_id}", update),
    ("DELETE", "v2.0/floatingips/{floatingip_id}", delete),
]
