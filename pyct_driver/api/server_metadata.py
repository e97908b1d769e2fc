"""Server metadata: ``/servers/{id}/metadata`` and ``/metadata/{key}``.

List, merge (POST), replace (PUT), show one, set one, delete one, with
Nova's rules: keys of 1-255 characters from ``[a-zA-Z0-9-_:. ]``, values
of at most 255; the result may hold at most ``metadata_items`` (quota)
items (403); a single-item PUT names the same key in the URL and the body
and holds exactly one item (400). Changes need the server ACTIVE, PAUSED,
SUSPENDED or SHUTOFF with no task (409) and not locked (409 for members).
"""

from __future__ import annotations

from pyct_driver import exception, states
from pyct_driver.api import quota_check, schemas, server_lock, servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import instances as db_instances

_P = "os_compute_api:server-metadata:"
_CHANGEABLE = (states.ACTIVE, states.PAUSED, states.SUSPENDED,
               states.STOPPED)
_ALL = schemas._obj({"metadata": schemas.METADATA}, ("metadata",))
_ONE = schemas._obj({"meta": dict(schemas.METADATA, minProperties=1)},
                    ("meta",))
_NOT_FOUND = "Metadata item was not found"


def _server(api: Api, req: ApiRequest, server_id: str, rule: str) -> dict:
    return servers.get_instance(api, req, server_id, _P + rule)


def _change(api: Api, req: ApiRequest, inst: dict, metadata: dict,
            what: str = "update metadata") -> dict:
    """Store ``metadata`` as the server's whole metadata (state and lock
    checked, quota counted on the result)."""
    server_lock.check(req, inst)
    if inst["vm_state"] not in _CHANGEABLE or inst["task_state"]:
        attr = "task_state" if inst["task_state"] else "vm_state"
        raise exception.InstanceInvalidState(
            action=what, instance_id=inst["uuid"], attr=attr,
            state=inst[attr])
    quota_check.check_metadata(api, inst["project_id"], inst["user_id"],
                               metadata)
    # the compare-and-swap keeps a racing state change from being missed
    return db_instances.update(
        api.db, inst["uuid"], {"metadata": metadata},
        expected_vm_state=inst["vm_state"], expected_task_state=None,
        action=what)


def index(api: Api, req: ApiRequest, server_id: str) -> Result:
    inst = _server(api, req, server_id, "index")
    return Result(200, {"metadata": dict(inst["metadata"])})


def create(api: Api, req: ApiRequest, server_id: str) -> Result:
    body = req.json_body()
    schemas.validate(_ALL, body)
    inst = _server(api, req, server_id, "create")
    merged = {**inst["metadata"], **body["metadata"]}
    inst = _change(api, req, inst, merged)
    return Result(200, {"metadata": dict(inst["metadata"])})


def update_all(api: Api, req: ApiRequest, server_id: str) -> Result:
    body = req.json_body()
    schemas.validate(_ALL, body)
    inst = _server(api, req, server_id, "update_all")
    inst = _change(api, req, inst, dict(body["metadata"]))
    return Result(200, {"metadata": dict(inst["metadata"])})


def show(api: Api, req: ApiRequest, server_id: str, key: str) -> Result:
    inst = _server(api, req, server_id, "show")
    if key not in inst["metadata"]:
        raise exception.NotFound(_NOT_FOUND)
    return Result(200, {"meta": {key: inst["metadata"][key]}})


def update(api: Api, req: ApiRequest, server_id: str, key: str) -> Result:
    body = req.json_body()
    schemas.validate(_ONE, body)
    meta = body["meta"]
    if key not in meta:
        raise exception.Invalid("Request body and URI mismatch")
    if len(meta) > 1:
        raise exception.Invalid("Request body contains too many items")
    inst = _server(api, req, server_id, "update")
    _change(api, req, inst, {**inst["metadata"], key: meta[key]})
    return Result(200, {"meta": {key: meta[key]}})


def delete(api: Api, req: ApiRequest, server_id: str, key: str) -> Result:
    inst = _server(api, req, server_id, "delete")
    if key not in inst["metadata"]:
        raise exception.NotFound(_NOT_FOUND)
    rest = {k: v for k, v in inst["metadata"].items() if k != key}
    _change(api, req, inst, rest, "delete metadata")
    return Result(204)
