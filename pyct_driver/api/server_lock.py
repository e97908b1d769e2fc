"""Locking a server: the ``lock`` and ``unlock`` actions, and the check
every state-changing request on a server makes.

A locked server refuses its project's members (409 "Instance ... is
locked") but not an admin, as Nova's ``check_instance_lock``. The lock
remembers who locked it: ``owner`` when the server's own project did,
``admin`` when someone else (an admin of another project) did; unlocking
a lock someone else holds needs ``...:unlock:unlock_override`` (admins
by default). From 2.73 ``lock`` takes a ``locked_reason`` the views
show.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import schemas, servers
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import locks as db_locks

_P = "os_compute_api:os-lock-server:"
# before 2.73 (and for unlock always) Nova takes any value under the key
_ANY = {name: schemas._obj({name: {}}, (name,)) for name in ("lock",
                                                            "unlock")}
_LOCK_273 = {"type": "object", "properties": {"lock": {
    "type": ["object", "null"],
    "properties": {"locked_reason": {"type": "string", "minLength": 1,
                                     "maxLength": 255}},
    "additionalProperties": False}},
    "required": ["lock"], "additionalProperties": False}


def check(req: ApiRequest, inst: dict) -> None:
    """409 when ``inst`` is locked and the caller is not an admin."""
    if inst["locked"] and not req.is_admin:
        raise exception.InstanceIsLocked(instance_uuid=inst["uuid"])


def _record(api: Api, req: ApiRequest, inst: dict, name: str) -> None:
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], name, ctxt.request_id,
                            ctxt.user_id, ctxt.project_id)
    db_actions.action_finish(api.db, inst["uuid"], ctxt.request_id)


def _locker(req: ApiRequest, inst: dict) -> str:
    owner = req.context.project_id == inst["project_id"]
    return "owner" if owner else "admin"


def lock(api: Api, req: ApiRequest, server_id: str, body: dict) -> Result:
    schemas.validate(_LOCK_273 if req.at_least("2.73") else _ANY["lock"],
                     body)
    inst = servers.get_instance(api, req, server_id, _P + "lock")
    api.policy.authorize(req.context, _P + "lock", {
        "project_id": inst["project_id"], "user_id": inst["user_id"]})
    reason = (body["lock"] or {}).get("locked_reason") \
        if req.at_least("2.73") else None
    db_locks.lock(api.db, inst["uuid"], _locker(req, inst), reason)
    _record(api, req, inst, "lock")
    return Result(202)


def unlock(api: Api, req: ApiRequest, server_id: str, body: dict
           ) -> Result:
    schemas.validate(_ANY["unlock"], body)
    inst = servers.get_instance(api, req, server_id, _P + "unlock")
    held = db_locks.by_instance(api.db, [inst["uuid"]]).get(inst["uuid"])
    if held is not None and held["locked_by"] != _locker(req, inst):
        api.policy.authorize(req.context, _P + "unlock:unlock_override",
                             {"project_id": inst["project_id"]})
    db_locks.unlock(api.db, inst["uuid"])
    _record(api, req, inst, "unlock")
    return Result(202)
