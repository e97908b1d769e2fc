"""A read-only Neutron v2.0 subset at ``/networking`` for real clients.

The openstack CLI and openstacksdk resolve ``--nic net-id=…``, ``network list``
and ``port list --server`` through the network service; this answers those
reads from pyct's own tables: every pyct network is a Neutron network with one
IPv4 subnet (its id derived from the network's), every port a Neutron port
whose ``device_id`` is its server. A project sees its own networks and ports;
admins see all; Neutron's read rules (``get_network``, ``get_subnet``,
``get_port``: the project's readers) filter what is shown. Filters are
Neutron's: any attribute given in the query (repeated for "any of"), compared
as text.
"""

from __future__ import annotations

import ipaddress
import uuid as uuidlib

from pyct_driver import exception
from pyct_driver.api import network_quotas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import networks as db_networks
from pyct_driver.db import secgroup_ports

_NOT_FILTERS = {"fields", "limit", "marker", "sort_key", "sort_dir",
                "page_reverse"}


def _iso(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def versions(base_url: str) -> dict:
    return {"versions": [{
        "id": "v2.0", "status": "CURRENT",
        "links": [{"rel": "self", "href": f"{base_url}/networking/v2.0/"}]}]}


def resources(base_url: str) -> dict:
    return {"resources": [
        {"name": name, "collection": name + "s",
         "links": [{"rel": "self",
                    "href": f"{base_url}/networking/v2.0/{name}s"}]}
        for name in ("network", "subnet", "port", "security-group",
                     "security-group-rule")]}


def network_view(net: dict) -> dict:
    return {
        "id": net["id"], "name": net["name"],
        "tenant_id": net["project_id"], "project_id": net["project_id"],
        "status": "ACTIVE", "admin_state_up": True, "shared": False,
        "router:external": False, "subnets": [net["subnet_id"]],
        "mtu": net["mtu"], "is_default": bool(net["is_default"]),
        "port_security_enabled": True, "description": "",
        "availability_zones": ["nova"], "availability_zone_hints": [],
        "ipv4_address_scope": None, "ipv6_address_scope": None,
        "provider:network_type": "local",
        "provider:physical_network": None,
        "provider:segmentation_id": None, "tags": [],
        "created_at": _iso(net["created_at"]),
        "updated_at": _iso(net["updated_at"] or net["created_at"]),
        "revision_number": 0}


def external_network(api: Api) -> dict | None:
    """The operator's external network (``[network] floating_ip_range``,
    named ``floating_network_name``; its id derived from the range, the
    same in every API process) as Neutron shows it, or None."""
    cidr = api.settings.floating_range
    if not cidr:
        return None
    net_id = str(uuidlib.uuid5(uuidlib.NAMESPACE_URL,
                               f"pyct:external:{cidr}"))
    view = network_view({
        "id": net_id, "name": api.settings.floating_network_name,
        "project_id": "", "subnet_id": db_networks.subnet_id(net_id),
        "mtu": api.ipam.mtu, "is_default": False, "created_at": None,
        "updated_at": None})
    view.update({"router:external": True, "shared": True,
                 "provider:network_type": "flat", "subnets": []})
    return view


def subnet_view(net: dict) -> dict:
    cidr = ipaddress.IPv4Network(net["cidr"])
    hosts = [cidr.network_address + 2, cidr.broadcast_address - 1]
    return {
        "id": net["subnet_id"], "name": net["name"] + "-subnet",
        "network_id": net["id"], "tenant_id": net["project_id"],
        "project_id": net["project_id"], "ip_version": 4,
        "cidr": net["cidr"], "gateway_ip": net["gateway"],
        "allocation_pools": [{"start": str(hosts[0]),
                              "end": str(hosts[1])}],
        "dns_nameservers": list(net["dns_nameservers"]),
        "host_routes": [], "enable_dhcp": True, "ipv6_ra_mode": None,
        "ipv6_address_mode": None, "subnetpool_id": None,
        "description": "", "tags": [], "service_types": [],
        "created_at": _iso(net["created_at"]),
        "updated_at": _iso(net["updated_at"] or net["created_at"]),
        "revision_number": 0}


def port_view(port: dict) -> dict:
    return {
        "id": port["id"], "name": "", "network_id": port["network_id"],
        "tenant_id": port["project_id"], "project_id": port["project_id"],
        "mac_address": port["mac_address"],
        "fixed_ips": [{"subnet_id": port["network"]["subnet_id"],
                       "ip_address": port["ip_address"]}],
        "device_id": port["instance_uuid"] or "",
        "device_owner": "compute:nova" if port["instance_uuid"] else "",
        "status": port["status"], "admin_state_up": True,
        "security_groups": list(port.get("security_groups") or []),
        "allowed_address_pairs": [],
        "port_security_enabled": True, "description": "", "tags": [],
        "binding:vnic_type": "normal",
        "created_at": _iso(port["created_at"]),
        "updated_at": _iso(port["updated_at"] or port["created_at"]),
        "revision_number": 0}


def _text(value) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def _filtered(req: ApiRequest, items: list[dict]) -> list[dict]:
    out = items
    for key in set(req.params.keys()) - _NOT_FILTERS:
        wanted = {_text(v).lower() if v.lower() in ("true", "false")
                  else v for v in req.params.getall(key)}
        out = [i for i in out if key in i and _text(i[key]) in wanted]
    fields = req.params.getall("fields")
    if fields:
        out = [{k: v for k, v in i.items() if k in fields} for i in out]
    return out


def _project(req: ApiRequest) -> str | None:
    return None if req.is_admin else req.context.project_id


def _readable(api: Api, req: ApiRequest, rule: str,
              items: list[dict]) -> list[dict]:
    """The items ``rule`` lets the caller read (a project's readers, an
    admin): Neutron leaves the others out of lists and 404s on them."""
    return [i for i in items if api.policy.check(
        req.context, rule, {"project_id": i["project_id"]})]


def _one(items: list[dict], kind: str, item_id: str) -> dict:
    if not items:
        raise exception.NotFound(f"{kind} {item_id} could not be found.")
    return items[0]


def _networks(api: Api, req: ApiRequest, **filters) -> list[dict]:
    return _readable(api, req, "get_network", db_networks.list_networks(
        api.db, project_id=_project(req), **filters))


def _ports(api: Api, req: ApiRequest, **filters) -> list[dict]:
    ports = _readable(api, req, "get_port", db_networks.list_ports(
        api.db, project_id=_project(req), **filters))
    groups = secgroup_ports.port_groups(api.db, [p["id"] for p in ports])
    return [dict(p, security_groups=groups.get(p["id"], []))
            for p in ports]


def list_networks(api: Api, req: ApiRequest) -> Result:
    ext = external_network(api)
    return Result(200, {"networks": _filtered(
        req, [network_view(n) for n in _networks(api, req)]
        + ([ext] if ext else []))})


def show_network(api: Api, req: ApiRequest, network_id: str) -> Result:
    ext = external_network(api)
    if ext and ext["id"] == network_id:
        return Result(200, {"network": ext})
    nets = _networks(api, req, ids=[network_id])
    return Result(200, {"network": network_view(
        _one(nets, "Network", network_id))})


def _subnets(api: Api, req: ApiRequest) -> list[dict]:
    return _readable(api, req, "get_subnet", db_networks.list_networks(
        api.db, project_id=_project(req)))


def list_subnets(api: Api, req: ApiRequest) -> Result:
    return Result(200, {"subnets": _filtered(
        req, [subnet_view(n) for n in _subnets(api, req)])})


def show_subnet(api: Api, req: ApiRequest, subnet_id: str) -> Result:
    nets = [n for n in _subnets(api, req) if n["subnet_id"] == subnet_id]
    return Result(200, {"subnet": subnet_view(
        _one(nets, "Subnet", subnet_id))})


def list_ports(api: Api, req: ApiRequest) -> Result:
    return Result(200, {"ports": _filtered(
        req, [port_view(p) for p in _ports(api, req)])})


def show_port(api: Api, req: ApiRequest, port_id: str) -> Result:
    ports = _ports(api, req, port_id=port_id)
    return Result(200, {"port": port_view(_one(ports, "Port", port_id))})


def list_extensions(api: Api, req: ApiRequest) -> Result:
    return Result(200, {"extensions": []})


ROUTES = [
    ("GET", "v2.0/networks", list_networks),
    ("GET", "v2.0/networks/{network_id}", show_network),
    ("GET", "v2.0/subnets", list_subnets),
    ("GET", "v2.0/subnets/{subnet_id}", show_subnet),
    ("GET", "v2.0/ports", list_ports),
    ("GET", "v2.0/ports/{port_id}", show_port),
    ("GET", "v2.0/extensions", list_extensions),
    ("GET", "v2.0/quotas/{project_id}", network_quotas.show),
    ("GET", "v2.0/quotas/{project_id}/details", network_quotas.details),
]
