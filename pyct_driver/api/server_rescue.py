"""Server action ``rescue``: its body, its image check and its answer.

Nova's body is ``{"rescue": {"adminPass": ..., "rescue_image_ref": ...}}``
(or ``{"rescue": null}``); the password is generated when absent and is
answered with 200 ``{"adminPass": ...}`` unless ``[api]
enable_instance_password`` is off (then ``{}``). The rescue image is the
one given or, as in Nova, the server's own; one the caller may not see,
or one that is not active (deactivated), is a 400 before anything
changes. The state change (ACTIVE, SHUTOFF or ERROR to ``rescuing``),
the lock check and the cast are ``server_actions``'s; ``unrescue``,
``suspend`` and ``resume`` are plain transitions there.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import schemas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.server_create import admin_password, image_for_boot
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api

RULE = "os_compute_api:os-rescue"

SCHEMA = {"type": "object", "properties": {"rescue": {
    "type": ["object", "null"],
    "properties": {"adminPass": {"type": "string"},
                   "rescue_image_ref": schemas.UUID},
    "additionalProperties": False}},
    "required": ["rescue"], "additionalProperties": False}


def arguments(api: Api, req: ApiRequest, server_id: str, body: dict
              ) -> dict:
    """The compute call's arguments (password, image) from a checked
    body; the image must be one the caller may boot."""
    schemas.validate(SCHEMA, body)
    args = body["rescue"] or {}
    inst = get_instance(api, req, server_id, RULE)
    image_ref = args.get("rescue_image_ref") or inst["image_ref"]
    try:
        image = image_for_boot(api, req, image_ref)
    except exception.Invalid as err:
        raise exception.Invalid(
            f"Instance {inst['uuid']} cannot be rescued: "
            f"{err.message}") from err
    password = args.get("adminPass") or admin_password()
    return {"rescue_password": password, "rescue_image_ref": image["id"]}


def answer(api: Api, args: dict) -> Result:
    if not api.settings.instance_password:
        return Result(200, {})
    return Result(200, {"adminPass": args["rescue_password"]})
