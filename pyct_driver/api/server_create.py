"""Server create: validate, authorize, place, record, cast.

Order matters for "nothing left behind": every check (schema, policy,
image, flavor, networks, block devices, counts) runs before any row is
written; then all instances, their ``create`` actions and any NoValidHost
faults go in ONE transaction, which first takes the project's quota lock
and counts (``quota_check.InstanceGuard``): as many servers as fit
between ``min_count`` and ``max_count`` are inserted, or none (Nova's
403). Only then are the builds cast. A multi-create is placed whole
before any row is written: fewer than ``min_count`` placeable is
NoValidHost and nothing is made. A single server no host can take is
still created, in ERROR with a NoValidHost fault, and the request still
answers 202, as Nova does.
"""

from __future__ import annotations

import base64
import re
import secrets
import string
import uuid

from pyct_driver import exception, states
from pyct_driver.api import (availability_zones, flavors, images, keypairs,
                             quota_check, schemas, secgroup_lookup,
                             server_networks,
                             server_references, server_views)
from pyct_driver.api.group_placement import GroupPlacement
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import catalog, image_access
from pyct_driver.db import instances as db_instances
from pyct_driver.db import server_groups as db_groups

FLAVOR_KEYS = ("flavorid", "name", "vcpus", "memory_mb", "root_gb",
                "ephemeral_gb", "swap", "rxtx_factor", "is_public",
                "extra_specs")


def image_for_boot(api: Api, req: ApiRequest, image_ref: str | None) -> dict:
    """The image to boot; one the caller may not see is as missing as in
    Nova when Glance answers 404."""
    if not image_ref:
        raise exception.Invalid("Can not find requested image")
    try:
        image = image_access.image_get_visible(api.db, image_ref,
                                               images.viewer(req))
    except exception.ImageNotFound as err:
        raise exception.Invalid("Can not find requested image") from err
    if image["status"] != "active":
        raise exception.Invalid(f"Image {image_ref} is not active.")
    return image


def _flavor(api: Api, req: ApiRequest, flavor_ref: str | int) -> dict:
    flavor_id = str(flavor_ref).rstrip("/").rsplit("/", 1)[-1]
    try:
        # a private flavor the project was not given does not exist for it
        flavor = catalog.flavor_get(api.db, flavor_id,
                                    flavors.caller_project(req))
    except exception.FlavorNotFound as err:
        raise exception.Invalid(err.message) from err
    if flavor["disabled"]:
        raise exception.Invalid("Flavor is disabled.")
    return flavor


def check_fits_image(flavor: dict, image: dict) -> None:
    """Nova's 400s for a flavor below the image's min_ram or min_disk."""
    if flavor["memory_mb"] < (image.get("min_ram") or 0):
        raise exception.Invalid("Flavor's memory is too small for "
                                "requested image.")
    if flavor["root_gb"] and flavor["root_gb"] < (image.get("min_disk")
                                                  or 0):
        raise exception.Invalid("Flavor's disk is too small for requested "
                                "image.")


def _block_devices(bdms: list[dict] | None, image_ref: str | None
                   ) -> tuple[list[dict] | None, str | None]:
    """Accept only an image-backed local root; return (bdms, image)."""
    if bdms is None:
        return None, image_ref
    if len(bdms) != 1:
        raise exception.Invalid(
            "Block Device Mapping is Invalid: only one image-backed root "
            "disk is supported.")
    bdm = bdms[0]
    boot_index = bdm.get("boot_index")
    if (bdm.get("source_type") != "image"
            or bdm.get("destination_type", "local") != "local"
            or boot_index is None or int(boot_index) != 0
            or not bdm.get("uuid")):
        raise exception.Invalid(
            "Block Device Mapping is Invalid: only source_type image, "
            "destination_type local, boot_index 0 is supported; volumes "
            "are not.")
    if image_ref and bdm["uuid"] != image_ref:
        raise exception.Invalid(
            "Block Device Mapping is Invalid: the root disk's uuid must be "
            "the imageRef.")
    return [dict(bdm, boot_index=0)], image_ref or bdm["uuid"]


def _networks(value):
    if value is None or isinstance(value, str):
        return value
    for net in value:
        if not net.get("uuid") and not net.get("port"):
            raise exception.Invalid(
                "Bad networks format: network uuid is not in proper format "
                "()")
    return value


def _counts(api: Api, server: dict) -> tuple[int, int]:
    min_count = schemas.to_int(server.get("min_count", 1))
    max_count = schemas.to_int(server.get("max_count", min_count))
    for name, value in (("min_count", min_count), ("max_count", max_count)):
        if value < 1:
            raise exception.Invalid(
                f"Invalid input for field/attribute {name}. Value: {value}."
                " 0 is less than the minimum of 1")
    if min_count > max_count:
        raise exception.Invalid("min_count must be <= max_count")
    limit = api.settings.max_instances_per_request
    if max_count > limit:
        raise exception.Invalid(f"max_count must be <= {limit}")
    return min_count, max_count


def user_data_checked(value: str | None) -> str | None:
    if value is None:
        return None
    if len(base64.b64decode(value)) > 65535:
        raise exception.Invalid("User data too large. User data must be no "
                                "larger than 65535 bytes once base64 "
                                "decoded.")
    return value


def _force_host(api: Api, req: ApiRequest, zone: str | None
                ) -> tuple[str | None, str | None]:
    if not zone:
        return None, None
    name, _, host = zone.partition(":")
    if host:
        api.policy.authorize(req.context,
                             "os_compute_api:servers:create:forced_host")
    # a forced host skips the zone check, as in Nova
    if name and not host and name not in availability_zones.available(api):
        raise exception.Invalid(
            "The requested availability zone is not available")
    return name or None, host or None


def hostname_of(name: str) -> str:
    """An RFC 1123 hostname from a server name, as Nova sanitizes it."""
    text = re.sub(r"[^a-z0-9.-]+", "-", name.lower().replace("_", "-"),
                  flags=re.ASCII)
    labels = [label.strip("-") for label in text.split(".")]
    text = ".".join(label[:63] for label in labels if label)[:63]
    return text.strip(".-") or "server"


def admin_password() -> str:
    alphabet = string.ascii_letters + string.digits
    return "".join(secrets.choice(alphabet) for _ in range(12))


def create(api: Api, req: ApiRequest) -> Result:
    body = req.json_body()
    schemas.validate(schemas.server_create(
        req.version, server_references.HINTS), body)
    ctxt = req.context
    api.policy.authorize(ctxt, "os_compute_api:servers:create",
                         {"project_id": ctxt.project_id})
    server = body["server"]
    bdms, image_ref = _block_devices(server.get("block_device_mapping_v2"),
                                     server.get("imageRef"))
    # the checks' reads share one transaction (one COMMIT, one checkout);
    # what may write (the default security group, an "auto" network,
    # the quota lock row) runs outside: their race retries need their own
    with api.db.transaction():
        image = image_for_boot(api, req, image_ref)
        flavor = _flavor(api, req, server["flavorRef"])
        check_fits_image(flavor, image)
        networks = _networks(server.get("networks"))
        min_count, max_count = _counts(api, server)
        metadata = server.get("metadata", {})
        guard = quota_check.InstanceGuard(api, ctxt.project_id,
                                          ctxt.user_id, flavor, min_count,
                                          max_count)
        quota_check.check_metadata(api, ctxt.project_id, ctxt.user_id,
                                   metadata, guard.metadata_items)
        user_data = user_data_checked(server.get("user_data"))
        zone, force_host = _force_host(api, req,
                                       server.get("availability_zone"))
        force_host = server_references.requested_host(
            api, req, server, force_host) or force_host
        hostname = server_references.hostname(server, max_count)
    group_ids = secgroup_lookup.for_boot(api, req, server)
    with api.db.transaction():
        group = server_references.server_group(api, req, body)
        unplaceable = server_references.unplaceable(api, req, server)
        password = server.get("adminPass") or admin_password()
        snapshot = {k: flavor[k] for k in FLAVOR_KEYS}
        key_data = keypairs.key_data_for_boot(api, req,
                                              server.get("key_name"))
        # over quota is a 403 before anything is made or placed (Nova
        # too checks it before scheduling); the exact check is the
        # guard's, in the transaction that inserts the rows
        fits = guard.precheck()
    # last check: "auto" may create the project's default network
    port_requests = server_networks.resolve(api, req, networks, max_count)

    with api.db.transaction():
        hosts = _place(api, flavor, min_count, max_count, fits, force_host,
                       None if force_host else zone, group)
        zone_of = availability_zones.zone_lookup(api)
    if unplaceable is not None:
        hosts = [None] * len(hosts)
    guard.prepare()
    reservation_id = "r-" + secrets.token_hex(4)
    rows, faults, ports = [], {}, {}
    for index, host in enumerate(hosts):
        name = server["name"] if max_count == 1 else \
            f"{server['name']}-{index + 1}"
        inst_uuid = str(uuid.uuid4())
        rows.append({
            "uuid": inst_uuid, "name": name,
            "hostname": hostname or hostname_of(name),
            "description": server.get("description"),
            "project_id": ctxt.project_id, "user_id": ctxt.user_id,
            "host": host, "image_ref": image["id"],
            "flavor_id": flavor["flavorid"], "flavor": snapshot,
            "vm_state": states.BUILDING if host else states.ERROR,
            "task_state": states.SCHEDULING if host else None,
            "power_state": states.NOSTATE, "metadata": metadata,
            "user_data": user_data, "key_name": server.get("key_name"),
            "key_data": key_data,
            "networks": networks, "block_device_mapping": bdms,
            "config_drive": schemas.to_bool(
                server.get("config_drive", False)),
            "reservation_id": reservation_id, "launch_index": index,
            "availability_zone": zone or (zone_of(host) if host else None),
            "pinned_availability_zone": zone,
        })
        if host is None:
            err = exception.NoValidHost(
                reason="There are not enough hosts available.")
            if unplaceable is not None:
                err = exception.PyctError(f"Build of instance {inst_uuid} "
                                          f"aborted: {unplaceable}")
            faults[inst_uuid] = {"code": 500, "message": err.message,
                                 "details": err.message, "host": None}
        elif port_requests:
            ports[inst_uuid] = port_requests
    created = db_instances.create_many(
        api.db, rows, action={"action": "create",
                              "request_id": ctxt.request_id,
                              "user_id": ctxt.user_id,
                              "project_id": ctxt.project_id},
        faults=faults, ports=ports, tags=server.get("tags"),
        guard=guard if group is None else db_groups.member_guard(
            group, [r["uuid"] for r in rows], quota_check.effective(
                api, ctxt.project_id)["server_group_members"], guard))
    if ports:
        # only ports join groups: a server made without any changes no
        # group's members, so no host has filters to refresh
        secgroup_lookup.attach_to_ports(api, [i["uuid"] for i in created],
                                        group_ids)
        secgroup_lookup.refresh(api, req, group_ids,
                                skip=[i["host"] for i in created])
    for inst in created:
        if inst["host"]:
            _cast_build(api, req, inst)

    first = created[0]
    links = req.compute_link("servers", first["uuid"])
    if schemas.to_bool(server.get("return_reservation_id", False)):
        return Result(202, {"reservation_id": reservation_id})
    resp: dict = {"id": first["uuid"], "links": links,
                  "OS-DCF:diskConfig": "MANUAL", "adminPass": password}
    if server_views.has_networks(first):
        resp["security_groups"] = [
            {"name": g["name"]} for g in server.get(
                "security_groups", [{"name": "default"}])]
    return Result(202, {"server": resp},
                  {"Location": links[0]["href"]})


def _place(api: Api, flavor: dict, min_count: int, max_count: int,
           fits: int, force_host: str | None,
           zone: str | None, group: dict | None) -> list[str | None]:
    """Hosts for the servers: as many as the quota ``fits`` (at most
    ``max_count``), or as many as the hosts can take if that is at least
    ``min_count`` -- a multi-create is all-or-nothing down to its minimum:
    NoValidHost, and nothing made. One server no host can take is still
    made, in ERROR, as Nova does."""
    placement = None if group is None else GroupPlacement(
        group["policy"], group["rules"], group["member_hosts"])
    hosts = api.scheduler.select_hosts(flavor, min(fits, max_count),
                                       force_host, zone, placement)
    if max_count == 1:
        return hosts
    placed = [h for h in hosts if h is not None]
    if len(placed) < min_count:
        raise exception.NoValidHost(
            reason="There are not enough hosts available.")
    return placed


def _cast_build(api: Api, req: ApiRequest, inst: dict) -> None:
    try:
        api.compute.build_and_run_instance(req.context, inst["host"],
                                           inst["uuid"])
    except exception.RPCError as err:
        # the row exists; leave it in ERROR with the reason, not BUILD
        db_instances.update(api.db, inst["uuid"], {
            "vm_state": states.ERROR, "task_state": None})
        db_actions.fault_create(api.db, inst["uuid"], 500, err.message,
                                err.message, inst["host"])
