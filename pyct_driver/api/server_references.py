"""What a server create request refers to, checked before anything is made.

Nova validates each reference of ``POST /servers`` and answers a 400 for
one that does not exist: a security group (``secgroup_lookup``), a
server group named by the ``group`` scheduler hint
(of the caller's project; the group is returned for the scheduler),
a requested host (2.74, admins) that is not a compute
host. It also checks the request's own values: a ``hostname`` (2.90) is
for one server only, ``tags`` (2.52) are at most 50. Trusted image
certificates (2.63) need a compute host that verifies image signatures,
device tags one that tags devices; pyct has neither, so, as in a Nova
cloud without such hosts, the server is created in ERROR (``unplaceable``).
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api.request import ApiRequest
from pyct_driver.api.state import Api
from pyct_driver.db import server_groups as db_groups
from pyct_driver.db import services as db_services

HINTS = {
    "type": "object",
    "properties": {
        "group": {"oneOf": [
            {"type": "string", "format": "uuid"},
            {"type": "array", "items": {"type": "string",
                                        "format": "uuid"}}]},
        "different_host": {"oneOf": [
            {"type": "string", "format": "uuid"},
            {"type": "array", "items": {"type": "string",
                                        "format": "uuid"}}]},
        "same_host": {"type": ["string", "array"],
                      "items": {"type": "string", "format": "uuid"}},
        "query": {"type": ["string", "object"]},
        "target_cell": {"type": "string", "minLength": 1,
                        "maxLength": 255},
        "different_cell": {"type": ["string", "array"],
                           "items": {"type": "string"}},
        "build_near_host_ip": {"type": "string", "anyOf": [
            {"format": "ipv4"}, {"format": "ipv6"}]},
        "cidr": {"type": "string", "pattern": "^/[0-9a-f.:]+$"},
    },
    # Nova lets any other hint through (its default filters ignore them)
    "additionalProperties": True,
}


def server_group(api: Api, req: ApiRequest, body: dict) -> dict | None:
    """The group the ``group`` hint names (with its members' hosts), or
    None; one that does not exist for the caller is a 400."""
    hints = body.get("os:scheduler_hints") or body.get(
        "OS-SCH-HNT:scheduler_hints") or {}
    group = hints.get("group")
    if isinstance(group, list):
        group = group[0] if group else None
    if not group:
        return None
    try:
        found = db_groups.get(api.db, group, None if req.is_admin
                              else req.context.project_id)
    except exception.NotFound as err:
        raise exception.Invalid(f"Instance group {group} could not be "
                                "found.") from err
    found["member_hosts"] = list(db_groups.member_hosts(
        api.db, found["id"]).values())
    return found


def requested_host(api: Api, req: ApiRequest, server: dict,
                   zone_host: str | None) -> str | None:
    """2.74's ``host``/``hypervisor_hostname`` (one and the same in pyct:
    a host has one node named after it), or None."""
    host = server.get("host")
    node = server.get("hypervisor_hostname")
    if not host and not node:
        return None
    api.policy.authorize(
        req.context, "os_compute_api:servers:create:requested_destination",
        {"project_id": req.context.project_id})
    if zone_host:
        raise exception.Invalid(
            "One mechanism with host and/or hypervisor_hostname and another "
            "mechanism with zone:host:node are mutually exclusive.")
    nodes = {n["host"] for n in db_services.compute_node_list(api.db)}
    for name in (host, node):
        if name and name not in nodes:
            raise exception.Invalid(
                f"Compute host {name} could not be found.")
    if host and node and host != node:
        raise exception.Invalid(f"Compute host {node} could not be found.")
    return host or node


def hostname(server: dict, max_count: int) -> str | None:
    value = server.get("hostname")
    if value is not None and max_count > 1:
        raise exception.Invalid(
            "Unable to allocate a single hostname to multiple instances")
    return value


def _device_tags(server: dict) -> bool:
    items = server.get("networks")
    items = items if isinstance(items, list) else []
    items = items + list(server.get("block_device_mapping_v2") or [])
    return any(item.get("tag") for item in items)


def unplaceable(api: Api, req: ApiRequest, server: dict) -> str | None:
    """Why no pyct host can build this server, or None: the servers are
    then created in ERROR with Nova's "Build of instance … aborted"
    fault, as a Nova compute host without the capability aborts them.
    Trusted certificates (2.63): no host verifies image signatures. Device
    tags (2.32, 2.42): no host puts device metadata in the guest."""
    if server.get("trusted_image_certificates"):
        api.policy.authorize(req.context,
                             "os_compute_api:servers:create:trusted_certs",
                             {"project_id": req.context.project_id})
        return ("Trusted image certificates provided on host that does not "
                "support certificate validation.")
    if _device_tags(server):
        return ("Attempt to boot guest with tagged devices on host that "
                "does not support tagging.")
    return None
