"""The payloads of the compute service's notifications, in Nova's shapes.

Pure functions from an instance row (with its ports, its flavor snapshot
and its image's properties) and the request context to what goes on the
wire: versioned payloads are ``nova_object`` envelopes (``name``,
``namespace`` "nova", ``version``, ``data``) with the fields and versions
of Nova's ``InstanceActionPayload`` 1.9, ``InstanceCreatePayload`` 1.13,
``FlavorPayload`` 1.4, ``IpPayload`` 1.0, ``KeypairPayload`` 1.0 and
``ExceptionPayload`` 1.1, so a consumer written against Nova's
notification samples reads them unchanged; ``legacy_payload`` is the
unversioned format's flat dict. What pyct has no notion of (kernel and
ramdisk ids, block devices, shares, trusted certificates) takes the value
Nova sends when a deployment lacks it.
"""

from __future__ import annotations

import datetime
import traceback
from typing import Any

from pyct_driver import states
from pyct_driver.context import RequestContext
from pyct_driver.virt.network import names as net_names

NAMESPACE = "nova"
ACTION_PAYLOAD = ("InstanceActionPayload", "1.9")
CREATE_PAYLOAD = ("InstanceCreatePayload", "1.13")
FLAVOR_PAYLOAD = ("FlavorPayload", "1.4")
IP_PAYLOAD = ("IpPayload", "1.0")
KEYPAIR_PAYLOAD = ("KeypairPayload", "1.0")
EXCEPTION_PAYLOAD = ("ExceptionPayload", "1.1")

# Nova's InstancePowerState names for the power_state numbers
POWER_STATES = {
    states.NOSTATE: "pending", states.RUNNING: "running",
    states.PAUSED_POWER: "paused", states.SHUTDOWN: "shutdown",
    states.CRASHED: "crashed", states.SUSPENDED_POWER: "suspended",
}


def envelope(kind: tuple[str, str], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` as the versioned object ``kind`` (name, version)."""
    return {"nova_object.name": kind[0], "nova_object.namespace": NAMESPACE,
            "nova_object.version": kind[1], "nova_object.data": data}


def isotime(value: datetime.datetime | None) -> str | None:
    """Nova's DateTimeField on the wire: UTC, seconds, a ``Z``."""
    return value.strftime("%Y-%m-%dT%H:%M:%SZ") if value else None


def exception_payload(err: BaseException) -> dict[str, Any]:
    """``ExceptionPayload``: where ``err`` was raised (innermost frame of
    its traceback), its class, message and traceback."""
    tb = err.__traceback__
    while tb is not None and tb.tb_next is not None:
        tb = tb.tb_next
    module = tb.tb_frame.f_globals.get("__name__", "unknown") if tb else \
        "unknown"
    function = tb.tb_frame.f_code.co_name if tb else "unknown"
    message = getattr(err, "message", None) or str(err)
    return envelope(EXCEPTION_PAYLOAD, {
        "module_name": module, "function_name": function,
        "exception": type(err).__name__, "exception_message": message,
        "traceback": "".join(traceback.format_exception(err))})


def flavor_payload(flavor: dict) -> dict[str, Any]:
    """``FlavorPayload`` of the instance's flavor snapshot; ``projects``
    is null as in every instance notification (Nova loads it only for
    flavor notifications)."""
    return envelope(FLAVOR_PAYLOAD, {
        "flavorid": str(flavor.get("flavorid")), "name": flavor.get("name"),
        "memory_mb": int(flavor.get("memory_mb") or 0),
        "vcpus": int(flavor.get("vcpus") or 0),
        "root_gb": int(flavor.get("root_gb") or 0),
        "ephemeral_gb": int(flavor.get("ephemeral_gb") or 0),
        "swap": int(flavor.get("swap") or 0),
        "rxtx_factor": float(flavor.get("rxtx_factor") or 1.0),
        "vcpu_weight": 0, "disabled": False,
        "is_public": bool(flavor.get("is_public", True)),
        "extra_specs": dict(flavor.get("extra_specs") or {}),
        "projects": None, "description": flavor.get("description")})


def ip_payloads(ports: list[dict]) -> list[dict[str, Any]]:
    """One ``IpPayload`` per fixed address of the instance's ports; the
    device is the port's host-side veth, as Nova names the tap."""
    return [envelope(IP_PAYLOAD, {
        "label": port["network"].get("name"), "mac": port["mac_address"],
        "meta": {}, "port_uuid": port["id"], "version": 4,
        "address": port["ip_address"],
        "device_name": net_names.veth_name(port["id"])})
        for port in ports if port.get("ip_address")]


def keypair_payloads(instance: dict, keypair: dict | None
                     ) -> list[dict[str, Any]]:
    if not instance.get("key_name") or not instance.get("key_data"):
        return []
    keypair = keypair or {}
    return [envelope(KEYPAIR_PAYLOAD, {
        "user_id": instance["user_id"], "name": instance["key_name"],
        "fingerprint": keypair.get("fingerprint"),
        "public_key": instance["key_data"],
        "type": keypair.get("type") or "ssh"})]


def instance_data(ctxt: RequestContext, instance: dict, ports: list[dict],
                  image_properties: dict, fault: dict | None
                  ) -> dict[str, Any]:
    """``InstanceActionPayload``'s data for ``instance`` as it is now.
    The request id is only named when a user asked (a periodic task's
    context has no user or project, as in Nova)."""
    power = instance.get("power_state") or states.NOSTATE
    return {
        "uuid": instance["uuid"], "user_id": instance.get("user_id"),
        "tenant_id": instance.get("project_id"),
        "reservation_id": instance.get("reservation_id"),
        "display_name": instance.get("name"),
        "display_description": instance.get("description"),
        "host_name": instance.get("hostname"),
        "host": instance.get("host"), "node": instance.get("host"),
        "os_type": image_properties.get("os_type"),
        "architecture": image_properties.get("architecture"),
        "availability_zone": instance.get("availability_zone"),
        "flavor": flavor_payload(instance.get("flavor") or {}),
        "image_uuid": instance.get("image_ref"),
        "key_name": instance.get("key_name"),
        "kernel_id": "", "ramdisk_id": "",
        "created_at": isotime(instance.get("created_at")),
        "launched_at": isotime(instance.get("launched_at")),
        "terminated_at": isotime(instance.get("terminated_at")),
        "deleted_at": isotime(instance.get("deleted_at")),
        "updated_at": isotime(instance.get("updated_at")),
        "state": instance.get("vm_state"),
        "power_state": POWER_STATES.get(power, "pending"),
        "task_state": instance.get("task_state"),
        "progress": 0,
        "ip_addresses": ip_payloads(ports),
        # Nova's defaults: [notifications] bdms_in_notifications and
        # include_share_mapping off
        "block_devices": None, "shares": None,
        "metadata": {str(k): str(v) for k, v in
                     (instance.get("metadata") or {}).items()},
        "locked": bool(instance.get("locked")), "locked_reason": None,
        "auto_disk_config": "MANUAL",
        "request_id": ctxt.request_id if (ctxt.user_id and
                                          ctxt.project_id) else None,
        "action_initiator_user": ctxt.user_id,
        "action_initiator_project": ctxt.project_id,
        "fault": fault,
    }


def create_data(data: dict[str, Any], instance: dict,
                keypair: dict | None) -> dict[str, Any]:
    """``InstanceCreatePayload``: the action payload plus key pairs, tags,
    certificates and the instance's internal name."""
    out = dict(data)
    out.update(keypairs=keypair_payloads(instance, keypair),
               tags=[], trusted_image_certificates=None,
               instance_name="instance-%08x" % int(instance.get("id") or 0))
    return out


def legacy_payload(instance: dict, ports: list[dict],
                   err: BaseException | None = None) -> dict[str, Any]:
    """The unversioned format's payload (Nova's ``info_from_instance``
    keys), with ``exception``/``message`` on an error."""
    flavor = instance.get("flavor") or {}
    power = instance.get("power_state") or states.NOSTATE
    out: dict[str, Any] = {
        "tenant_id": instance.get("project_id"),
        "user_id": instance.get("user_id"),
        "instance_id": instance["uuid"],
        "display_name": instance.get("name"),
        "reservation_id": instance.get("reservation_id"),
        "hostname": instance.get("hostname"),
        "instance_type": flavor.get("name"),
        "instance_flavor_id": flavor.get("flavorid"),
        "memory_mb": flavor.get("memory_mb"), "vcpus": flavor.get("vcpus"),
        "root_gb": flavor.get("root_gb"),
        "ephemeral_gb": flavor.get("ephemeral_gb"),
        "disk_gb": (flavor.get("root_gb") or 0)
        + (flavor.get("ephemeral_gb") or 0),
        "host": instance.get("host"), "node": instance.get("host"),
        "availability_zone": instance.get("availability_zone"),
        "state": instance.get("vm_state"),
        "state_description": instance.get("task_state") or "",
        "power_state": POWER_STATES.get(power, "pending"),
        "progress": "",
        "created_at": str(instance.get("created_at") or ""),
        "launched_at": str(instance.get("launched_at") or ""),
        "terminated_at": str(instance.get("terminated_at") or ""),
        "deleted_at": str(instance.get("deleted_at") or ""),
        "image_ref_url": instance.get("image_ref"),
        "metadata": dict(instance.get("metadata") or {}),
        "fixed_ips": [{"address": p["ip_address"], "type": "fixed",
                       "version": 4, "label": p["network"].get("name"),
                       "vif_mac": p["mac_address"], "meta": {},
                       "floating_ips": []}
                      for p in ports if p.get("ip_address")],
    }
    if err is not None:
        out["exception"] = type(err).__name__
        out["message"] = getattr(err, "message", None) or str(err)
    return out
