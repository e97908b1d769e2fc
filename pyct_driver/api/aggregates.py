"""os-aggregates: host aggregates and the availability zones they make.

Nova's rules hold: a host is in one zone only (adding it to an aggregate
of another zone is a 409, giving an aggregate a zone some of its hosts
are already in elsewhere a 400), a host with instances does not change
zone by joining or leaving an aggregate, an aggregate with hosts cannot
be deleted, an empty zone name is refused. Answers are 200s with the
aggregate (uuid from 2.41), as Nova's; create's lacks hosts and metadata.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import schemas
from pyct_driver.api.host_views import (STORED_COMPUTE, check_query,
                                        timestamp)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import aggregates as db_aggregates
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services

_P = "os_compute_api:os-aggregates:"
# a name without ':' (that separates a forced host) or null; string
# keywords do not apply to null
_ZONE = dict(schemas.NAME, type=["string", "null"],
             pattern=r"^(?![\s])[^:]*(?<![\s])$")
_FQDN = {"type": "string", "minLength": 1, "maxLength": 255,
         "pattern": "^[a-zA-Z0-9-._]*$"}
_META = {"type": "object", "additionalProperties": False,
         "patternProperties": {r"^[a-zA-Z0-9-_:. ]{1,255}$": {
             "type": ["string", "null"], "maxLength": 255}}}


def _body(key: str, props: dict, required: tuple[str, ...] = ()) -> dict:
    inner = {"type": "object", "properties": props,
             "additionalProperties": False}
    if required:
        inner["required"] = list(required)
    return {"type": "object", "properties": {key: inner},
            "required": [key], "additionalProperties": False}


_CREATE = _body("aggregate", {"name": schemas.NAME, "availability_zone":
                              _ZONE}, ("name",))
_UPDATE = _body("aggregate", {"name": schemas.NAME,
                              "availability_zone": _ZONE})
_UPDATE["properties"]["aggregate"]["anyOf"] = [
    {"required": ["name"]}, {"required": ["availability_zone"]}]
_ACTIONS = {
    "add_host": _body("add_host", {"host": _FQDN}, ("host",)),
    "remove_host": _body("remove_host", {"host": _FQDN}, ("host",)),
    "set_metadata": _body("set_metadata", {"metadata": _META},
                          ("metadata",)),
}


def _view(req: ApiRequest, agg: dict, full: bool = True) -> dict:
    out = {"availability_zone": agg["availability_zone"],
           "created_at": timestamp(agg["created_at"]), "deleted": False,
           "deleted_at": None, "id": agg["id"], "name": agg["name"],
           "updated_at": timestamp(agg["updated_at"])}
    if full:
        out.update(hosts=agg["hosts"], metadata=agg["metadata"])
    if req.at_least("2.41"):
        out["uuid"] = agg["uuid"]
    return {"aggregate": out}


def _id(value: str) -> int:
    try:
        return int(value)
    except ValueError as err:
        raise exception.Invalid(
            "Invalid input received: id must be an integer") from err


def _get(api: Api, aggregate_id: int) -> dict:
    return db_aggregates.get(api.db, aggregate_id)


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, _P + "index", {})
    check_query(req, (), strict=req.at_least("2.102"))
    return Result(200, {"aggregates": [
        _view(req, a)["aggregate"] for a in db_aggregates.list_(api.db)]})


def create(api: Api, req: ApiRequest) -> Result:
    body = req.json_body()
    schemas.validate(_CREATE, body)
    api.policy.authorize(req.context, _P + "create", {})
    agg = body["aggregate"]
    made = db_aggregates.create(api.db, agg["name"],
                                agg.get("availability_zone"))
    return Result(200, _view(req, made, full=False))


def show(api: Api, req: ApiRequest, aggregate_id: str) -> Result:
    api.policy.authorize(req.context, _P + "show", {})
    check_query(req, (), strict=req.at_least("2.102"))
    return Result(200, _view(req, _get(api, _id(aggregate_id))))


def _check_zone(api: Api, agg: dict, zone: str | None, hosts: list[str],
                prefix: str) -> None:
    """Nova's is_safe_to_update_az for ``agg`` getting ``zone``."""
    if not zone:
        raise exception.Invalid(
            f"{prefix}. Reason: Aggregate {agg['name']} does not support "
            "empty named availability zone.")
    zones = db_aggregates.host_zones(api.db)
    clash = sorted({z for h in hosts for a, z in zones.get(h, {}).items()
                    if z != zone and a != agg["id"]})
    if clash:
        raise exception.Invalid(
            f"{prefix}. Reason: One or more hosts already in availability "
            f"zone(s) {clash}.")


def _has_instances(api: Api, hosts: list[str]) -> int:
    return sum(len(db_instances.list_(api.db, host=h)) for h in hosts)


def update(api: Api, req: ApiRequest, aggregate_id: str) -> Result:
    body = req.json_body()
    schemas.validate(_UPDATE, body)
    api.policy.authorize(req.context, _P + "update", {})
    agg = _get(api, _id(aggregate_id))
    values = body["aggregate"]
    metadata = None
    if "availability_zone" in values:
        zone = values["availability_zone"]
        prefix = f"Cannot update aggregate {agg['id']}"
        _check_zone(api, agg, zone, agg["hosts"], prefix)
        _no_zone_move(api, agg, zone, prefix)
        metadata = {db_aggregates.ZONE_KEY: zone}
    return Result(200, _view(req, db_aggregates.update(
        api.db, agg["id"], values.get("name"), metadata)))


def _no_zone_move(api: Api, agg: dict, zone: str, prefix: str) -> None:
    if zone != agg["availability_zone"] and _has_instances(api,
                                                           agg["hosts"]):
        raise exception.Invalid(f"{prefix}. Reason: One or more hosts "
                                "contain instances in this zone.")


def delete(api: Api, req: ApiRequest, aggregate_id: str) -> Result:
    api.policy.authorize(req.context, _P + "delete", {})
    db_aggregates.delete(api.db, _id(aggregate_id))
    return Result(200)


def _host_zone(api: Api, host: str, leaving: int | None = None
               ) -> str | None:
    zones = db_aggregates.host_zones(api.db).get(host, {})
    names = {z for a, z in zones.items() if a != leaving}
    return sorted(names)[0] if names else None


def _zone_move(prefix: str, verb: str, old: str | None, new: str | None,
               count: int) -> exception.Conflict:
    """Nova's refusal to move a host with instances to another zone."""
    return exception.Conflict(
        f"{prefix}. Reason: The host cannot be {verb} the aggregate as the "
        f"availability zone of the host would change from '{old}' to "
        f"'{new}' but the host already has {count} instance(s). Changing "
        "the AZ of an existing instance is not supported by this action. "
        "Move the instances away from this host then try again. If you "
        "need to move the instances between AZs then you can use "
        "shelve_offload and unshelve to achieve this.")


def _add_host(api: Api, agg: dict, host: str) -> dict:
    prefix = f"Cannot add host to aggregate {agg['id']}"
    zone = agg["availability_zone"]
    if zone:
        try:
            _check_zone(api, agg, zone, [host], prefix)
        except exception.Invalid as err:
            raise exception.Conflict(err.message) from err
        count = _has_instances(api, [host])
        old = _host_zone(api, host)
        if count and old != zone:
            raise _zone_move(prefix, "added to", old, zone, count)
    return db_aggregates.add_host(api.db, agg["id"], host)


def _remove_host(api: Api, agg: dict, host: str) -> dict:
    zone = agg["availability_zone"]
    count = _has_instances(api, [host]) if zone else 0
    new = _host_zone(api, host, leaving=agg["id"])
    if count and new != zone and host in agg["hosts"]:
        raise _zone_move(f"Cannot remove host from aggregate {agg['id']}",
                         "removed from", zone, new, count)
    return db_aggregates.remove_host(api.db, agg["id"], host)


def _set_metadata(api: Api, agg: dict, metadata: dict) -> dict:
    if db_aggregates.ZONE_KEY in metadata:
        prefix = f"Cannot update metadata of aggregate {agg['id']}"
        zone = metadata[db_aggregates.ZONE_KEY]
        _check_zone(api, agg, zone, agg["hosts"], prefix)
        _no_zone_move(api, agg, zone, prefix)
    return db_aggregates.update(api.db, agg["id"], metadata=metadata)


def action(api: Api, req: ApiRequest, aggregate_id: str) -> Result:
    body = req.json_body()
    if not isinstance(body, dict) or len(body) != 1 \
            or next(iter(body)) not in _ACTIONS:
        raise exception.Invalid("There is no such action: " + (
            ", ".join(body) if isinstance(body, dict) else str(body)))
    name = next(iter(body))
    schemas.validate(_ACTIONS[name], body)
    api.policy.authorize(req.context, _P + name, {})
    agg = _get(api, _id(aggregate_id))
    if name == "set_metadata":
        return Result(200, _view(req, _set_metadata(
            api, agg, body[name]["metadata"])))
    host = body[name]["host"]
    known = any(s["host"] == host and s["binary"] == STORED_COMPUTE
                for s in db_services.service_list(api.db))
    if name == "add_host":
        if not known:
            raise exception.NotFound(
                f"Compute host {host} could not be found.")
        return Result(200, _view(req, _add_host(api, agg, host)))
    if not known:
        raise exception.NotFound(
            f"Cannot remove host {host} in aggregate {agg['id']}")
    return Result(200, _view(req, _remove_host(api, agg, host)))
