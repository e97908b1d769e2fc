"""How a server looks at each microversion.

``detail`` builds exactly the body Nova defines for the request's version:
2.3 adds the remaining ``OS-EXT-SRV-ATTR:*`` attributes (admins only),
then ``_since_2_9`` adds, one microversion at a time, what later versions
add: 2.9 ``locked``, 2.16 ``host_status`` (when policy allows), 2.19
``description``, 2.26 ``tags``, 2.47 the embedded flavor, 2.63
``trusted_image_certificates``, 2.71 ``server_groups`` (show and update,
not the list), 2.73 ``locked_reason``, 2.90 the hostname for everyone,
2.96 ``pinned_availability_zone``. ``fault`` appears only in ERROR and
DELETED, ``progress`` only while building or active, ``security_groups``
only when the server has networks. ``for_update`` trims the body to what
``PUT /servers/{id}`` answered before 2.75.
"""

from __future__ import annotations

import hashlib
from typing import Callable

from pyct_driver import states
from pyct_driver.api.request import ApiRequest

_FAULT_STATUSES = ("ERROR", "DELETED")
_PROGRESS_STATUSES = ("ACTIVE", "BUILD", "REBUILD", "RESIZE",
                      "VERIFY_RESIZE", "MIGRATING")


def isotime(value) -> str | None:
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def host_id(inst: dict) -> str:
    if not inst.get("host"):
        return ""
    return hashlib.sha224(
        (inst["project_id"] + inst["host"]).encode()).hexdigest()


def instance_name(inst: dict) -> str:
    return "instance-%08x" % inst["id"]


def has_networks(inst: dict) -> bool:
    nets = inst.get("networks")
    return bool(nets) and nets != "none"


def summary(req: ApiRequest, inst: dict) -> dict:
    return {"id": inst["uuid"], "name": inst["name"],
            "links": req.compute_link("servers", inst["uuid"])}


def _fault(req: ApiRequest, fault: dict) -> dict:
    out = {"code": fault["code"], "message": fault["message"],
           "created": isotime(fault["created_at"])}
    if fault.get("details") and (req.is_admin or fault["code"] != 500):
        out["details"] = fault["details"]
    return out


def detail(req: ApiRequest, inst: dict, fault: dict | None,
           show_extended: bool,
           host_status: Callable[[dict], str] | None,
           addresses: dict | None = None, extra: dict | None = None
           ) -> dict:
    """The full server body; ``host_status`` is None when not allowed;
    ``addresses`` is Nova's network name -> fixed IPs map; ``extra`` what
    later microversions need (see ``_since_2_9``)."""
    status = states.status_of(inst["vm_state"], inst["task_state"])
    server = {
        "accessIPv4": "",
        "accessIPv6": "",
        "addresses": addresses or {},
        "created": isotime(inst["created_at"]),
        "flavor": _flavor(req, inst, (extra or {}).get("flavor_specs")),
        "hostId": host_id(inst),
        "id": inst["uuid"],
        "image": {"id": inst["image_ref"],
                  "links": req.bookmark("images", inst["image_ref"])},
        "links": req.compute_link("servers", inst["uuid"]),
        "metadata": dict(inst["metadata"] or {}),
        "name": inst["name"],
        "status": status,
        "tenant_id": inst["project_id"] or "",
        "user_id": inst["user_id"] or "",
        "updated": isotime(inst["updated_at"] or inst["created_at"]),
        "OS-DCF:diskConfig": "MANUAL",
        "OS-EXT-AZ:availability_zone": inst["availability_zone"] or "nova",
        "config_drive": "True" if inst["config_drive"] else "",
        "key_name": inst["key_name"],
        "OS-SRV-USG:launched_at": (inst["launched_at"].isoformat()
                                   if inst["launched_at"] else None),
        "OS-SRV-USG:terminated_at": (inst["terminated_at"].isoformat()
                                     if inst["terminated_at"] else None),
        "OS-EXT-STS:task_state": inst["task_state"],
        "OS-EXT-STS:vm_state": inst["vm_state"],
        "OS-EXT-STS:power_state": inst["power_state"],
        "os-extended-volumes:volumes_attached": [],
    }
    if status in _FAULT_STATUSES and fault:
        server["fault"] = _fault(req, fault)
    if status in _PROGRESS_STATUSES:
        server["progress"] = 0
    if has_networks(inst):
        server["security_groups"] = [{"name": name} for name in (
            extra or {}).get("security_groups") or ["default"]]
    if show_extended:
        server["OS-EXT-SRV-ATTR:host"] = inst["host"]
        server["OS-EXT-SRV-ATTR:hypervisor_hostname"] = inst["host"]
        server["OS-EXT-SRV-ATTR:instance_name"] = instance_name(inst)
        if req.at_least("2.3"):
            server.update({
                "OS-EXT-SRV-ATTR:hostname": inst["hostname"],
                "OS-EXT-SRV-ATTR:reservation_id": inst["reservation_id"],
                "OS-EXT-SRV-ATTR:launch_index": inst["launch_index"],
                "OS-EXT-SRV-ATTR:kernel_id": "",
                "OS-EXT-SRV-ATTR:ramdisk_id": "",
                "OS-EXT-SRV-ATTR:root_device_name": None,
                "OS-EXT-SRV-ATTR:user_data": inst["user_data"],
            })
    _since_2_9(req, inst, server, show_extended, host_status, extra or {})
    return server


def _flavor(req: ApiRequest, inst: dict, specs: bool | None) -> dict:
    """The flavor's id and link; from 2.47 the flavor itself as it was at
    boot (its extra specs when policy allows)."""
    if not req.at_least("2.47"):
        return {"id": inst["flavor_id"],
                "links": req.bookmark("flavors", inst["flavor_id"])}
    flavor = inst["flavor"] or {}
    out = {"vcpus": flavor.get("vcpus", 0),
           "ram": flavor.get("memory_mb", 0),
           "disk": flavor.get("root_gb", 0),
           "ephemeral": flavor.get("ephemeral_gb", 0),
           "swap": flavor.get("swap", 0),
           "original_name": flavor.get("name", "")}
    if specs:
        out["extra_specs"] = dict(flavor.get("extra_specs") or {})
    return out


def _since_2_9(req: ApiRequest, inst: dict, server: dict,
               show_extended: bool,
               host_status: Callable[[dict], str] | None,
               extra: dict) -> None:
    """What each microversion from 2.9 adds, in Nova's order.

    ``extra``: ``tags`` (the server's), ``view`` (``show``, ``detail`` or
    ``update``: server_groups are not in the list), ``flavor_specs``,
    ``server_groups`` (the uuid of the server's group, if any),
    ``locked_reason``.
    """
    if req.at_least("2.9"):
        server["locked"] = bool(inst["locked"])
    if req.at_least("2.16") and host_status is not None:
        server["host_status"] = host_status(inst)
    if req.at_least("2.19"):
        server["description"] = inst["description"]
    if req.at_least("2.26"):
        server["tags"] = list(extra.get("tags") or [])
    if req.at_least("2.63"):
        # pyct verifies no image signatures: no server has certificates
        server["trusted_image_certificates"] = None
    if req.at_least("2.71") and extra.get("view", "show") != "detail":
        server["server_groups"] = list(extra.get("server_groups") or [])
    if req.at_least("2.73"):
        server["locked_reason"] = extra.get("locked_reason")
    if req.at_least("2.90") and not show_extended:
        server["OS-EXT-SRV-ATTR:hostname"] = inst["hostname"]
    if req.at_least("2.96") and "OS-EXT-AZ:availability_zone" in server:
        # the zone asked for at boot, none if the scheduler chose
        server["pinned_availability_zone"] = inst.get(
            "pinned_availability_zone")


# what PUT /servers/{id} left out before 2.75 (Nova's update view)
_NOT_IN_UPDATE = (
    "OS-EXT-AZ:availability_zone", "config_drive", "key_name",
    "OS-SRV-USG:launched_at", "OS-SRV-USG:terminated_at",
    "security_groups", "OS-EXT-STS:task_state", "OS-EXT-STS:vm_state",
    "OS-EXT-STS:power_state", "os-extended-volumes:volumes_attached",
    "host_status", "pinned_availability_zone")


def for_update(req: ApiRequest, server: dict) -> dict:
    """The update response: before 2.75 without the extension fields and
    with bare addresses."""
    if req.at_least("2.75"):
        return server
    out = {k: v for k, v in server.items()
           if k not in _NOT_IN_UPDATE and not k.startswith("OS-EXT-SRV-ATTR")}
    out["addresses"] = {
        net: [{"version": a["version"], "addr": a["addr"]} for a in addrs]
        for net, addrs in server["addresses"].items()}
    return out
