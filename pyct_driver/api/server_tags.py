"""Server tags, ``/servers/{id}/tags`` (microversion 2.26 and later).

List, check one, add one (201 with its Location, 204 if it was there),
replace all, delete one, delete all -- Nova's answers and words. Changing
tags needs the server ACTIVE, PAUSED, SUSPENDED or SHUTOFF (409
otherwise); below 2.26 the routes do not exist (404). A tag is a non-empty
string of at most 60 characters without ``/`` or ``,``.
"""

from __future__ import annotations

import urllib.parse

import jsonschema

from pyct_driver import exception, states
from pyct_driver.api import schemas, servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import tags as db_tags

_P = "os_compute_api:os-server-tags:"
_CHANGEABLE = (states.ACTIVE, states.PAUSED, states.SUSPENDED,
               states.STOPPED)
TAG = {"type": "string", "minLength": 1, "maxLength": 60,
       "pattern": r"^[^,/]*$"}
UPDATE_ALL = schemas._obj({"tags": {"type": "array", "items": TAG,
                                    "maxItems": db_tags.MAX_TAGS}},
                          ("tags",))


def _server(api: Api, req: ApiRequest, server_id: str, rule: str,
            action: str | None = None) -> dict:
    if not req.at_least("2.26"):
        raise exception.NotFound("The resource could not be found.")
    inst = servers.get_instance(api, req, server_id, _P + rule)
    if action is not None and inst["vm_state"] not in _CHANGEABLE:
        raise exception.InstanceInvalidState(
            action=action, instance_id=inst["uuid"], attr="vm_state",
            state=inst["vm_state"])
    return inst


def index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = _server(api, req, server_id, "index")
    return Result(200, {"tags": db_tags.get(api.db, inst["uuid"])})


def show(api: Api, req: ApiRequest, server_id: str, tag: str) -> Result:
    inst = _server(api, req, server_id, "show")
    if tag not in db_tags.get(api.db, inst["uuid"]):
        raise exception.NotFound(
            f"Server {server_id} has no tag '{tag}'")
    return Result(204)


def update(api: Api, req: ApiRequest, server_id: str, tag: str) -> Result:
    inst = _server(api, req, server_id, "update", "update tag")
    try:
        jsonschema.validate(tag, TAG)
    except jsonschema.ValidationError as err:
        raise exception.Invalid(
            f"Tag '{tag}' is invalid. It must be a non empty string without "
            "characters '/' and ','. Validation error message: "
            f"{err.message}") from err
    if not db_tags.add(api.db, inst["uuid"], tag):
        return Result(204)
    location = (req.collection_url(f"servers/{inst['uuid']}/tags") + "/"
                + urllib.parse.quote(tag, safe=""))
    return Result(201, None, {"Location": location})


def update_all(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = _server(api, req, server_id, "update_all", "update tags")
    body = req.json_body()
    schemas.validate(UPDATE_ALL, body)
    return Result(200, {"tags": db_tags.replace(api.db, inst["uuid"],
                                                body["tags"])})


def delete(api: Api, req: ApiRequest, server_id: str, tag: str) -> Result:
    inst = _server(api, req, server_id, "delete", "delete tag")
    db_tags.delete(api.db, inst["uuid"], tag)
    return Result(204)


def delete_all(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = _server(api, req, server_id, "delete_all", "delete tags")
    db_tags.delete(api.db, inst["uuid"])
    return Result(204)
