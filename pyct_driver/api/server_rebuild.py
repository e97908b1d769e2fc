"""Server action ``rebuild``: a new root from an image, same server.

The id, ports and addresses stay; the root made from the old image is
discarded and a new one is made from ``imageRef`` (the same image or
another the caller may use). What the body may change follows Nova's
microversions: name, metadata (replaced), adminPass, preserve_ephemeral
(pyct guests have no ephemeral disk, so it changes nothing),
``description`` from 2.19, ``key_name`` from 2.54 (null removes the key),
``user_data`` from 2.57 (null removes it), ``hostname`` from 2.90. The new
values are written with the compare-and-swap into ``rebuilding`` (ACTIVE,
SHUTOFF and ERROR servers, as in Nova; a wrong state or a lost race is a
409), then the host rebuilds. The answer is the server as shown after an
update before 2.75 and as ``GET`` shows it from 2.75, with ``adminPass``.
"""

from __future__ import annotations

from pyct_driver import exception, states
from pyct_driver.api import (keypairs, quota_check, schemas, server_lock,
                             server_views)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.server_create import (admin_password,
                                           check_fits_image, image_for_boot,
                                           user_data_checked)
from pyct_driver.api.servers import get_instance, render_one
from pyct_driver.api.state import Api
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances

_RULE = "os_compute_api:servers:rebuild"


def schema(version: tuple[int, int]) -> dict:
    body = {
        "name": schemas.NAME, "imageRef": schemas.UUID,
        "adminPass": {"type": "string"}, "metadata": schemas.METADATA,
        "preserve_ephemeral": schemas.BOOLEAN,
        "OS-DCF:diskConfig": {"type": "string", "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
    }
    if version < (2, 57):
        body["personality"] = {"type": "array", "items": schemas._obj(
            {"path": {"type": "string"}, "contents": {
                "type": "string", "format": "base64"}})}
    if version >= (2, 19):
        body["description"] = schemas.DESCRIPTION
    if version >= (2, 54):
        body["key_name"] = {"type": ["string", "null"], "minLength": 1,
                            "maxLength": 255}
    if version >= (2, 57):
        body["user_data"] = {"type": ["string", "null"], "format": "base64"}
    if version >= (2, 63):
        body["trusted_image_certificates"] = {
            "type": ["array", "null"], "minItems": 1, "maxItems": 50,
            "uniqueItems": True, "items": {"type": "string",
                                           "minLength": 1}}
    if version >= (2, 90):
        body["hostname"] = schemas._hostname(version)
    return schemas._obj({"rebuild": schemas._obj(body, ("imageRef",))},
                        ("rebuild",))


def _values(api: Api, req: ApiRequest, inst: dict, args: dict) -> dict:
    """The instance's new values from the request (checked)."""
    image = image_for_boot(api, req, args["imageRef"])
    check_fits_image(inst["flavor"], image)
    if args.get("personality"):
        raise exception.Invalid("Personality files are not supported.")
    values: dict = {"image_ref": image["id"]}
    for key in ("name", "description", "hostname"):
        if key in args:
            values[key] = args[key]
    if "metadata" in args:
        quota_check.check_metadata(api, inst["project_id"],
                                   req.context.user_id, args["metadata"])
        values["metadata"] = args["metadata"]
    if "key_name" in args:
        values["key_name"] = args["key_name"]
        values["key_data"] = keypairs.key_data_for_boot(api, req,
                                                        args["key_name"])
    if "user_data" in args:
        values["user_data"] = user_data_checked(args["user_data"])
    return values


def rebuild(api: Api, req: ApiRequest, server_id: str, body: dict
            ) -> Result:
    schemas.validate(schema(req.version), body)
    args = body["rebuild"]
    inst = get_instance(api, req, server_id, _RULE)
    server_lock.check(req, inst)
    if args.get("trusted_image_certificates"):
        api.policy.authorize(req.context, _RULE + ":trusted_certs",
                             {"project_id": inst["project_id"]})
    values = _values(api, req, inst, args)
    before = inst["vm_state"]
    values["task_state"] = states.REBUILDING
    inst = db_instances.update(
        api.db, inst["uuid"], values, expected_task_state=(None,),
        expected_vm_state=(states.ACTIVE, states.STOPPED, states.ERROR),
        action="rebuild")
    ctxt = req.context
    db_actions.action_start(api.db, inst["uuid"], "rebuild",
                            ctxt.request_id, ctxt.user_id, ctxt.project_id)
    api.compute.rebuild_instance(
        ctxt, inst["host"], inst["uuid"], before,
        schemas.to_bool(args.get("preserve_ephemeral", False)))
    view = "show" if req.at_least("2.75") else "update"
    server = render_one(api, req, inst, view)
    if view == "update":
        server = server_views.for_update(req, server)
    server["adminPass"] = args.get("adminPass") or admin_password()
    return Result(202, {"server": server})
