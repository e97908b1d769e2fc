"""Flavors: list, show, create, delete, their extra specs and access lists.

Flavors are found by their public id only (a name is a 404, as in Nova;
clients fall back to listing). A private flavor exists, for a caller who
is not an admin, only if the caller's project is on its access list
(``os-flavor-access``, ``addTenantAccess``/``removeTenantAccess``): it is
missing from lists, a 404 on show and extra specs, and a 400 on boot --
exactly as in Nova, so a private flavor's extra specs (``pyct:privileged``)
stay with the projects an admin chose. Extra specs are validated by
``extra_specs.validate_extra_specs`` when they are set, so a bad value is a
400 then and never a failed boot. ``create_flavor`` is the same creation
path for ``pyct-manage flavor create``.
"""

from __future__ import annotations

import uuid

from pyct_driver import exception, extra_specs
from pyct_driver.api import schemas
from pyct_driver.api.request import (ApiRequest, Result, parse_int,
                                     reject_unknown_params)
from pyct_driver.api.state import Api
from pyct_driver.db import catalog
from pyct_driver.db.engine import Database

_PREFIX = "os_compute_api:os-flavor-extra-specs:"


def _links(req: ApiRequest, flavor: dict) -> list[dict]:
    return req.compute_link("flavors", flavor["flavorid"])


def view_summary(req: ApiRequest, flavor: dict) -> dict:
    out = {"id": flavor["flavorid"], "name": flavor["name"],
           "links": _links(req, flavor)}
    if req.at_least("2.55"):
        out["description"] = flavor["description"]
    return out


def _show_specs(api: Api, req: ApiRequest) -> bool:
    """2.61: extra specs in the flavor body when the caller may list them."""
    return req.at_least("2.61") and api.policy.check(
        req.context, _PREFIX + "index",
        {"project_id": req.context.project_id})


def view_detail(req: ApiRequest, flavor: dict, specs: bool = False) -> dict:
    """A flavor at the request's microversion: 2.55 adds ``description``,
    2.61 ``extra_specs`` (``specs``: policy allows), 2.75 shows no swap as
    0 instead of ""."""
    out = {
        "id": flavor["flavorid"],
        "name": flavor["name"],
        "ram": flavor["memory_mb"],
        "disk": flavor["root_gb"],
        "vcpus": flavor["vcpus"],
        "links": _links(req, flavor),
        "OS-FLV-DISABLED:disabled": bool(flavor["disabled"]),
        "OS-FLV-EXT-DATA:ephemeral": flavor["ephemeral_gb"],
        "os-flavor-access:is_public": bool(flavor["is_public"]),
        "rxtx_factor": flavor["rxtx_factor"] or "",
        "swap": flavor["swap"] or "",
    }
    if req.at_least("2.55"):
        out["description"] = flavor["description"]
    if specs:
        out["extra_specs"] = dict(flavor["extra_specs"])
    if req.at_least("2.75"):
        out["swap"] = flavor["swap"] or 0
    return out


def _parse_is_public(value: str | None) -> bool | None:
    if value is None:
        return True
    if value.lower() == "none":
        return None
    lowered = value.lower()
    if lowered in ("true", "1", "yes", "on", "t", "y"):
        return True
    if lowered in ("false", "0", "no", "off", "f", "n"):
        return False
    raise exception.Invalid(f"Invalid is_public filter [{value}]")


def caller_project(req: ApiRequest) -> str | None:
    """The project whose flavor access limits what the caller sees; None
    for an admin, who sees every flavor."""
    return None if req.is_admin else req.context.project_id


def _list(api: Api, req: ApiRequest) -> tuple[list[dict], int | None]:
    filters: dict = {"project_id": req.context.project_id,
                     "admin": req.is_admin}
    filters["is_public"] = (_parse_is_public(req.param("is_public"))
                            if req.is_admin else True)
    for name, key in (("minRam", "min_ram"), ("minDisk", "min_disk")):
        value = req.param(name)
        if value is not None:
            try:
                filters[key] = int(value)
            except ValueError as err:
                raise exception.Invalid(
                    f"Invalid {name} filter [{value}]") from err
    _check_query(req)
    limit = parse_int(req.param("limit"), "limit")
    limit = min(limit, api.settings.max_limit) if limit is not None \
        else api.settings.max_limit
    marker = req.param("marker")
    rows = catalog.flavor_list(
        api.db, limit=limit, marker=marker,
        sort_key=req.param("sort_key") or "flavorid",
        sort_dir=req.param("sort_dir") or "asc", **filters)
    return rows, limit


_SORT_KEYS = ("created_at", "description", "disabled", "ephemeral_gb",
              "flavorid", "id", "is_public", "memory_mb", "name", "root_gb",
              "rxtx_factor", "swap", "updated_at", "vcpu_weight", "vcpus")
_QUERY = ("limit", "marker", "is_public", "minRam", "minDisk", "sort_key",
          "sort_dir")


def _check_query(req: ApiRequest) -> None:
    """Nova's flavor list query schema: sort keys and directions from its
    lists; from 2.75 no parameter it does not know."""
    for name, allowed in (("sort_key", _SORT_KEYS),
                          ("sort_dir", ("asc", "desc"))):
        for value in req.params.getall(name):
            if value not in allowed:
                raise exception.Invalid(
                    f"Invalid input for query parameters {name}. Value: "
                    f"{value}. '{value}' is not one of {list(allowed)}")
    if req.at_least("2.75"):
        reject_unknown_params(req.params.keys(), _QUERY)


def _page_links(req: ApiRequest, rows: list[dict], limit: int | None,
                path: str) -> list[dict]:
    if not rows or limit is None or len(rows) < limit:
        return []
    query = req.next_query(rows[-1]["flavorid"])
    return [{"rel": "next", "href": f"{req.collection_url(path)}?{query}"}]


def index(api: Api, req: ApiRequest) -> Result:
    rows, limit = _list(api, req)
    body: dict = {"flavors": [view_summary(req, f) for f in rows]}
    links = _page_links(req, rows, limit, "flavors")
    if links:
        body["flavors_links"] = links
    return Result(200, body)


def detail(api: Api, req: ApiRequest) -> Result:
    rows, limit = _list(api, req)
    specs = _show_specs(api, req)
    body: dict = {"flavors": [view_detail(req, f, specs) for f in rows]}
    links = _page_links(req, rows, limit, "flavors/detail")
    if links:
        body["flavors_links"] = links
    return Result(200, body)


def show(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    return Result(200, {"flavor": view_detail(
        req, catalog.flavor_get(api.db, flavor_id, caller_project(req)),
        _show_specs(api, req))})


def _values_from_body(flavor: dict) -> dict:
    values = {
        "name": flavor["name"],
        "flavorid": flavor.get("id") or str(uuid.uuid4()),
        "vcpus": schemas.to_int(flavor["vcpus"]),
        "memory_mb": schemas.to_int(flavor["ram"]),
        "root_gb": schemas.to_int(flavor["disk"]),
        "ephemeral_gb": schemas.to_int(
            flavor.get("OS-FLV-EXT-DATA:ephemeral", 0)),
        "swap": schemas.to_int(flavor.get("swap", 0)),
        "rxtx_factor": float(flavor.get("rxtx_factor", 1.0)),
        "is_public": schemas.to_bool(
            flavor.get("os-flavor-access:is_public", True)),
    }
    for field, key in (("ram", "memory_mb"), ("vcpus", "vcpus")):
        if values[key] < 1:
            raise exception.Invalid(
                f"Invalid input for field/attribute {field}. Value: "
                f"{values[key]}. {values[key]} is less than the minimum "
                "of 1")
    if values["rxtx_factor"] <= 0:
        raise exception.Invalid("Invalid input for field/attribute "
                                "rxtx_factor. Value must be > 0.")
    return values


def create_flavor(db: Database, name: str, vcpus: int, ram: int, disk: int,
                  flavorid: str | None = None, swap: int = 0,
                  ephemeral: int = 0, is_public: bool = True,
                  extra_specs: dict[str, str] | None = None,
                  allow_host_root: bool = False) -> dict:
    """Create a flavor, validated as the API validates it
    (``allow_host_root``: ``[container] allow_host_root_guests``)."""
    flavor: dict = {"name": name, "ram": ram, "vcpus": vcpus, "disk": disk,
                    "swap": swap, "OS-FLV-EXT-DATA:ephemeral": ephemeral,
                    "os-flavor-access:is_public": is_public}
    if flavorid is not None:
        flavor["id"] = flavorid
    schemas.validate(schemas.FLAVOR_CREATE, {"flavor": flavor})
    specs = {str(k): str(v) for k, v in (extra_specs or {}).items()}
    schemas.validate(schemas.EXTRA_SPECS_CREATE, {"extra_specs": specs})
    _validate_specs(specs, allow_host_root)
    return catalog.flavor_create(db, _values_from_body(flavor), specs)


def _validate_specs(specs: dict[str, str], allow_host_root: bool) -> None:
    try:
        extra_specs.validate_extra_specs(specs, allow_host_root)
    except exception.InvalidExtraSpec as err:
        raise exception.Invalid(err.message) from err


def create(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, "os_compute_api:os-flavor-manage:create")
    body = req.json_body()
    schemas.validate(schemas.flavor_create(req.version), body)
    values = _values_from_body(body["flavor"])
    values["description"] = body["flavor"].get("description")
    row = catalog.flavor_create(api.db, values)
    return Result(200, {"flavor": view_detail(req, row,
                                              _show_specs(api, req))})


def update(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    """2.55: a flavor's description is the one thing that changes."""
    if not req.at_least("2.55"):
        raise exception.NotFound("The resource could not be found.")
    api.policy.authorize(req.context, "os_compute_api:os-flavor-manage:update",
                         {})
    body = req.json_body()
    schemas.validate(schemas.FLAVOR_UPDATE, body)
    row = catalog.flavor_update(api.db, flavor_id,
                                {"description": body["flavor"]["description"]})
    return Result(200, {"flavor": view_detail(req, row,
                                              _show_specs(api, req))})


def delete(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    api.policy.authorize(req.context, "os_compute_api:os-flavor-manage:delete")
    catalog.flavor_delete(api.db, flavor_id)
    return Result(202)


def specs_index(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    api.policy.authorize(req.context, _PREFIX + "index")
    flavor = catalog.flavor_get(api.db, flavor_id, caller_project(req))
    return Result(200, {"extra_specs": flavor["extra_specs"]})


def _stringify(specs: dict) -> dict[str, str]:
    out = {}
    for key, value in specs.items():
        if isinstance(value, bool):
            value = "True" if value else "False"
        out[key] = str(value)
    return out


def _set(api: Api, flavor_id: str, specs: dict[str, str]) -> None:
    current = catalog.flavor_get(api.db, flavor_id)["extra_specs"]
    _validate_specs({**current, **specs}, api.settings.allow_host_root)
    catalog.flavor_extra_specs_set(api.db, flavor_id, specs)


def specs_create(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    api.policy.authorize(req.context, _PREFIX + "create")
    body = req.json_body()
    schemas.validate(schemas.EXTRA_SPECS_CREATE, body)
    specs = _stringify(body["extra_specs"])
    _set(api, flavor_id, specs)
    return Result(200, {"extra_specs": specs})


def spec_show(api: Api, req: ApiRequest, flavor_id: str, key: str) -> Result:
    api.policy.authorize(req.context, _PREFIX + "show")
    specs = catalog.flavor_get(api.db, flavor_id,
                               caller_project(req))["extra_specs"]
    if key not in specs:
        raise exception.NotFound(
            f"Flavor {flavor_id} has no extra specs with key {key}.")
    return Result(200, {key: specs[key]})


def spec_update(api: Api, req: ApiRequest, flavor_id: str, key: str
                ) -> Result:
    api.policy.authorize(req.context, _PREFIX + "update")
    body = req.json_body()
    schemas.validate(schemas.EXTRA_SPEC_UPDATE, body)
    if key not in body:
        raise exception.Invalid("Request body and URI mismatch")
    specs = _stringify(body)
    _set(api, flavor_id, specs)
    return Result(200, specs)


def spec_delete(api: Api, req: ApiRequest, flavor_id: str, key: str
                ) -> Result:
    api.policy.authorize(req.context, _PREFIX + "delete")
    catalog.flavor_extra_spec_delete(api.db, flavor_id, key)
    return Result(200)


def _access_view(flavor_id: str, projects: list[str]) -> dict:
    return {"flavor_access": [{"flavor_id": flavor_id, "tenant_id": p}
                              for p in projects]}


def access_index(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    api.policy.authorize(req.context, "os_compute_api:os-flavor-access")
    flavor = catalog.flavor_get(api.db, flavor_id, caller_project(req))
    if flavor["is_public"]:
        raise exception.NotFound(
            "Access list not available for public flavors.")
    return Result(200, _access_view(
        flavor_id, catalog.flavor_access_list(api.db, flavor_id)))


def action(api: Api, req: ApiRequest, flavor_id: str) -> Result:
    """``addTenantAccess`` / ``removeTenantAccess``."""
    body = req.json_body()
    name = next(iter(body), None) if isinstance(body, dict) else None
    if name not in ("addTenantAccess", "removeTenantAccess"):
        raise exception.Invalid("There is no such action: %s" % name)
    schemas.validate(schemas.FLAVOR_ACCESS[name], body)
    rule = ("add_tenant_access" if name == "addTenantAccess"
            else "remove_tenant_access")
    api.policy.authorize(req.context,
                         f"os_compute_api:os-flavor-access:{rule}", {})
    tenant = body[name]["tenant"]
    flavor = catalog.flavor_get(api.db, flavor_id, caller_project(req))
    if name == "addTenantAccess":
        if flavor["is_public"] and req.at_least("2.7"):
            raise exception.Conflict("Can not add access to a public "
                                     "flavor.")
        projects = catalog.flavor_access_add(api.db, flavor_id, tenant)
    else:
        projects = catalog.flavor_access_remove(api.db, flavor_id, tenant)
    return Result(200, _access_view(flavor_id, projects))
