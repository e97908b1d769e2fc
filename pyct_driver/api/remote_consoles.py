"""Remote consoles: ``POST /servers/{id}/remote-consoles`` (2.6 and later)
and the server actions it replaced (``os-getSerialConsole``,
``os-getVNCConsole``, ``os-getSPICEConsole``, ``os-getRDPConsole``; 2.1 to
2.5).

pyct's guests have a serial console and nothing graphical, so only
``serial`` gets a URL; the other protocols get Nova's 400 "Unavailable
console type", as a Nova cloud without a VNC or SPICE proxy answers. The
server must be ACTIVE (409 otherwise). The compute host makes a one-time
key for its end (``compute.console_endpoint``); the API stores a one-time
token beside it (``db.console_tokens``) and answers
``[serial_console] base_url?token=...``, which ``pyct-serialproxy``
serves.
"""

from __future__ import annotations

import copy

from pyct_driver import exception, states
from pyct_driver.api import schemas
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.servers import get_instance
from pyct_driver.api.state import Api
from pyct_driver.db import console_tokens

RULE = "os_compute_api:os-remote-consoles"

_CREATE_26 = schemas._obj({"remote_console": schemas._obj({
    "protocol": {"type": "string", "enum": ["vnc", "spice", "serial",
                                            "rdp"]},
    "type": {"type": "string", "enum": ["novnc", "xvpvnc", "spice-html5",
                                        "serial", "rdp-html5"]},
}, ("protocol", "type"))}, ("remote_console",))
_CREATE_28 = copy.deepcopy(_CREATE_26)
_props = _CREATE_28["properties"]["remote_console"]["properties"]
_props["protocol"]["enum"].append("mks")
_props["type"]["enum"].append("webmks")

# the pre-2.6 actions: name -> the console types its schema takes
_LEGACY = {"os-getSerialConsole": ["serial"],
           "os-getVNCConsole": ["novnc", "xvpvnc"],
           "os-getSPICEConsole": ["spice-html5"],
           "os-getRDPConsole": ["rdp-html5"]}
ACTIONS = frozenset(_LEGACY)


def _serial_url(api: Api, req: ApiRequest, inst: dict) -> str:
    settings = api.settings.console
    if not settings["enabled"]:
        raise exception.ConsoleTypeUnavailable(console_type="serial")
    if inst["vm_state"] != states.ACTIVE or inst["task_state"] in (
            states.DELETING,) or not inst["host"]:
        raise exception.InstanceInvalidState(
            action="get_serial_console", instance_id=inst["uuid"],
            attr="vm_state", state=inst["vm_state"])
    where = api.compute.get_serial_console(req.context, inst["host"],
                                           inst["uuid"])
    base = settings["base_url"]
    token = console_tokens.authorize(
        api.db, inst["uuid"], "serial", where["host"], where["port"],
        where["internal_access_path"], base, settings["token_ttl"])
    return f"{base}?token={token}"


def create(api: Api, req: ApiRequest, server_id: str) -> Result:
    """``POST /servers/{id}/remote-consoles`` (2.6+)."""
    if not req.at_least("2.6"):
        raise exception.NotFound("The resource could not be found.")
    body = req.json_body()
    schemas.validate(_CREATE_28 if req.at_least("2.8") else _CREATE_26,
                     body)
    inst = get_instance(api, req, server_id, RULE)
    protocol = body["remote_console"]["protocol"]
    kind = body["remote_console"]["type"]
    if protocol != "serial":
        raise exception.ConsoleTypeUnavailable(console_type=protocol)
    if kind != "serial":
        raise exception.Invalid(f"Invalid console type {kind}")
    return Result(200, {"remote_console": {
        "protocol": "serial", "type": "serial",
        "url": _serial_url(api, req, inst)}})


def action(api: Api, req: ApiRequest, server_id: str, body: dict
           ) -> Result:
    """The pre-2.6 console actions; 2.6 and later have only
    ``remote-consoles`` (Nova: 404)."""
    name = next(iter(body))
    if req.at_least("2.6"):
        raise exception.NotFound("The resource could not be found.")
    schemas.validate(schemas._obj({name: schemas._obj(
        {"type": {"type": "string", "enum": _LEGACY[name]}}, ("type",))},
        (name,)), body)
    inst = get_instance(api, req, server_id, RULE)
    kind = body[name]["type"]
    if name != "os-getSerialConsole":
        raise exception.ConsoleTypeUnavailable(console_type=kind)
    return Result(200, {"console": {"type": "serial",
                                    "url": _serial_url(api, req, inst)}})
