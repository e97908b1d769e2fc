"""JSON schemas of request bodies, and validation with Nova's messages.

Every object schema forbids additional properties -- except on ``/v2``,
Nova's legacy v2.0 alias, where unknown properties are dropped from the
body instead (``LEGACY_V2``, set by the app for such a request). Schemas
that changed across microversions are built by functions taking the
request's version. A failure is a 400 whose message reads like Nova's
("Invalid input for field/attribute name. Value: ... ").
"""

from __future__ import annotations

import base64
import binascii
import contextvars
import copy
import uuid as uuidlib
from typing import Any

import jsonschema
from jsonschema import exceptions as js_exc

from pyct_driver import exception

_checker = jsonschema.FormatChecker()


@_checker.checks("uuid")
def _is_uuid(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        return str(uuidlib.UUID(value)) == value.lower() and len(value) == 36
    except ValueError:
        return False


@_checker.checks("base64")
def _is_base64(value: object) -> bool:
    if not isinstance(value, str):
        return True
    try:
        base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        return False
    return True


def _obj(properties: dict, required: tuple[str, ...] = ()) -> dict:
    return {"type": "object", "properties": properties,
            "required": list(required), "additionalProperties": False}


NAME = {"type": "string", "minLength": 1, "maxLength": 255,
        # no leading/trailing whitespace, so never only spaces
        "pattern": r"^(?![\s])[\S\s]*(?<![\s])$"}
POSITIVE_INT = {"type": ["integer", "string"], "pattern": r"^[0-9]*$",
                "minimum": 1, "minLength": 1}
NON_NEGATIVE_INT = {"type": ["integer", "string"], "pattern": r"^[0-9]*$",
                    "minimum": 0, "minLength": 1}
BOOLEAN = {"type": ["boolean", "string"],
           "enum": [True, "True", "TRUE", "true", "1", "ON", "On", "on",
                    "YES", "Yes", "yes", False, "False", "FALSE", "false",
                    "0", "OFF", "Off", "off", "NO", "No", "no"]}
UUID = {"type": "string", "format": "uuid"}
_TAG = {"type": "string", "minLength": 1, "maxLength": 60,
        "pattern": r"^[^,/]*$"}
METADATA = {"type": "object",
            "patternProperties": {
                r"^[a-zA-Z0-9-_:. ]{1,255}$": {"type": "string",
                                                 "maxLength": 255}},
            "additionalProperties": False}


def _bdm(with_tag: bool) -> dict:
    schema = _obj({
        "source_type": {"type": "string",
                        "enum": ["volume", "image", "snapshot", "blank"]},
        "destination_type": {"type": "string", "enum": ["local", "volume"]},
        "uuid": {"type": "string", "minLength": 1, "maxLength": 255},
        "boot_index": {"type": ["integer", "string", "null"],
                       "pattern": r"^-?[0-9]+$"},
        "delete_on_termination": BOOLEAN,
        "device_name": {"type": ["string", "null"], "maxLength": 255},
        "volume_size": {"type": ["integer", "string", "null"],
                        "pattern": r"^[0-9]+$"},
        "guest_format": {"type": "string", "maxLength": 255},
        "disk_bus": {"type": "string", "maxLength": 255},
        "device_type": {"type": "string", "maxLength": 255},
        "no_device": {},
    })
    if with_tag:
        schema["properties"]["tag"] = _TAG
    return schema


def _network_item(with_tag: bool) -> dict:
    schema = _obj({
        "uuid": {"type": "string", "format": "uuid"},
        "port": {"type": ["string", "null"], "format": "uuid"},
        "fixed_ip": {"type": "string", "anyOf": [{"format": "ipv4"},
                                                  {"format": "ipv6"}]},
    })
    if with_tag:
        schema["properties"]["tag"] = _TAG
    return schema


HOSTNAME = {"type": "string", "minLength": 2, "maxLength": 63,
            "pattern": r"^[a-zA-Z0-9]+[a-zA-Z0-9-]*[a-zA-Z0-9]+$"}
FQDN = {"type": "string", "minLength": 1, "maxLength": 255,
        "pattern": r"^[a-zA-Z0-9-._]*$"}
DESCRIPTION = {"type": ["string", "null"], "minLength": 0,
               "maxLength": 255,
               "pattern": r"^[\S\s]*$"}


def _hostname(version: tuple[int, int]) -> dict:
    # 2.90 takes a hostname, 2.94 a fully qualified one
    return FQDN if version >= (2, 94) else HOSTNAME


def server_create(version: tuple[int, int],
                  hints: dict | None = None) -> dict:
    # device tags: 2.32 on networks and BDMs, 2.33-2.36 on networks only
    # (Nova's slip), none 2.37-2.41, both again from 2.42
    net_tag = version == (2, 32) or (2, 33) <= version < (2, 37) \
        or version >= (2, 42)
    bdm_tag = version == (2, 32) or version >= (2, 42)
    bdm = _bdm(bdm_tag)
    if version >= (2, 67):
        bdm["properties"]["volume_type"] = {
            "type": ["string", "null"], "minLength": 0, "maxLength": 255}
    server = {
        "name": NAME,
        "imageRef": UUID,
        "flavorRef": {"type": ["string", "integer"], "minLength": 1},
        "adminPass": {"type": "string"},
        "metadata": METADATA,
        "networks": {"type": "array", "items": _network_item(net_tag)},
        "OS-DCF:diskConfig": {"type": "string",
                              "enum": ["AUTO", "MANUAL"]},
        "accessIPv4": {"type": "string", "format": "ipv4"},
        "accessIPv6": {"type": "string", "format": "ipv6"},
        "availability_zone": {"type": "string", "minLength": 1,
                              "maxLength": 255},
        "block_device_mapping_v2": {"type": "array", "items": bdm},
        "config_drive": BOOLEAN,
        "key_name": {"type": "string", "minLength": 1, "maxLength": 255},
        "min_count": POSITIVE_INT,
        "max_count": POSITIVE_INT,
        "return_reservation_id": BOOLEAN,
        "security_groups": {"type": "array", "items": _obj(
            {"name": {"type": "string", "minLength": 1,
                      "maxLength": 255}})},
        # the 64 KiB limit applies to the decoded bytes (server_create)
        "user_data": {"type": "string", "format": "base64"},
    }
    required = ["name", "flavorRef"]
    if version >= (2, 19):
        server["description"] = DESCRIPTION
    if version >= (2, 37):
        server["networks"] = {"oneOf": [
            {"type": "array", "items": _network_item(net_tag)},
            {"type": "string", "enum": ["none", "auto"]}]}
        required.append("networks")
    if version >= (2, 52):
        server["tags"] = {"type": "array", "items": _TAG, "maxItems": 50}
    if version >= (2, 63):
        server["trusted_image_certificates"] = {
            "type": ["array", "null"], "minItems": 1, "maxItems": 50,
            "uniqueItems": True,
            "items": {"type": "string", "minLength": 1}}
    if version >= (2, 74):
        server["host"] = FQDN
        server["hypervisor_hostname"] = FQDN
    if version >= (2, 90):
        server["hostname"] = _hostname(version)
    hints = hints or {"type": "object"}
    return _obj({"server": _obj(server, tuple(required)),
                 "os:scheduler_hints": hints,
                 "OS-SCH-HNT:scheduler_hints": hints},
                ("server",))


def server_update(version: tuple[int, int]) -> dict:
    server = {"name": NAME,
              "accessIPv4": {"type": "string", "format": "ipv4"},
              "accessIPv6": {"type": "string", "format": "ipv6"},
              "OS-DCF:diskConfig": {"type": "string",
                                    "enum": ["AUTO", "MANUAL"]}}
    if version >= (2, 19):
        server["description"] = DESCRIPTION
    if version >= (2, 90):
        server["hostname"] = _hostname(version)
    return _obj({"server": _obj(server)}, ("server",))


REBOOT = _obj({"reboot": _obj(
    {"type": {"type": "string",
              "enum": ["HARD", "Hard", "hard", "SOFT", "Soft", "soft"]}},
    ("type",))}, ("reboot",))
CONSOLE_OUTPUT = _obj({"os-getConsoleOutput": _obj(
    {"length": {"type": ["integer", "string", "null"],
                "pattern": r"^-?[0-9]+$", "minimum": -1}})},
    ("os-getConsoleOutput",))


def empty_action(name: str) -> dict:
    return _obj({name: {"type": "null"}}, (name,))


FLAVOR_ID = {"type": ["string", "null"], "minLength": 1, "maxLength": 255,
             "pattern": r"^(?! )[a-zA-Z0-9. _-]+(?<! )$"}
FLAVOR_CREATE = _obj({"flavor": _obj({
    "name": NAME,
    "id": FLAVOR_ID,
    "ram": POSITIVE_INT,
    "vcpus": POSITIVE_INT,
    "disk": NON_NEGATIVE_INT,
    "OS-FLV-EXT-DATA:ephemeral": NON_NEGATIVE_INT,
    "swap": NON_NEGATIVE_INT,
    "rxtx_factor": {"type": ["number", "string"],
                    "pattern": r"^[0-9]+(\.[0-9]+)?$",
                    "minimum": 0, "exclusiveMinimum": True,
                    "maximum": 3.40282e+38},
    "os-flavor-access:is_public": BOOLEAN,
}, ("name", "ram", "vcpus", "disk"))}, ("flavor",))

FLAVOR_DESCRIPTION = {"type": ["string", "null"], "minLength": 0,
                      "maxLength": 65535}
FLAVOR_UPDATE = _obj({"flavor": _obj({"description": FLAVOR_DESCRIPTION},
                                     ("description",))}, ("flavor",))


def flavor_create(version: tuple[int, int]) -> dict:
    """2.55 lets a flavor be created with its description."""
    if version < (2, 55):
        return FLAVOR_CREATE
    schema = copy.deepcopy(FLAVOR_CREATE)
    schema["properties"]["flavor"]["properties"]["description"] = \
        FLAVOR_DESCRIPTION
    return schema


_SPEC_KEY = r"^[a-zA-Z0-9-_:. /]{1,255}$"
_SPEC_VALUE = {"type": ["string", "number", "boolean"], "minLength": 0,
               "maxLength": 255}
EXTRA_SPECS_CREATE = _obj({"extra_specs": {
    "type": "object", "patternProperties": {_SPEC_KEY: _SPEC_VALUE},
    "additionalProperties": False}}, ("extra_specs",))
EXTRA_SPEC_UPDATE = {"type": "object",
                     "patternProperties": {_SPEC_KEY: _SPEC_VALUE},
                     "additionalProperties": False,
                     "minProperties": 1, "maxProperties": 1}


# True while a /v2 request is handled: the app sets it around the handler
# (one request runs in one thread, so the flag is that request's), so no
# handler needs to know about the legacy alias.
LEGACY_V2: contextvars.ContextVar[bool] = contextvars.ContextVar(
    "legacy_v2", default=False)


def _drop_unknown(validator, value, instance, schema):
    """Nova's legacy v2 relaxation of ``additionalProperties: false``:
    properties the schema does not name are removed from the body (kept
    and checked where ``patternProperties`` names what may be there)."""
    if value is not False or not validator.is_type(instance, "object"):
        yield from jsonschema.Draft4Validator.VALIDATORS[
            "additionalProperties"](validator, value, instance, schema)
        return
    patterns = schema.get("patternProperties")
    if patterns:
        yield from jsonschema.Draft4Validator.VALIDATORS[
            "additionalProperties"](validator, value, instance, schema)
        return
    extra = set(instance) - set(schema.get("properties", {}))
    # every key unknown: one branch of a oneOf that does not apply
    if extra and extra != set(instance):
        for key in extra:
            del instance[key]


_Relaxed = jsonschema.validators.extend(
    jsonschema.Draft4Validator, {"additionalProperties": _drop_unknown})


def validate(schema: dict, body: Any) -> None:
    """Raise Invalid (400) with a Nova-style message if ``body`` fails."""
    kind = _Relaxed if LEGACY_V2.get() else jsonschema.Draft4Validator
    validator = kind(schema, format_checker=_checker)
    error = js_exc.best_match(validator.iter_errors(body))
    if error is None:
        return
    if error.path:
        field = list(error.path)[-1]
        message = (f"Invalid input for field/attribute {field}. Value: "
                   f"{error.instance}. {error.message}")
    else:
        message = error.message
    raise exception.Invalid(message)


def to_int(value: Any) -> int:
    return int(value)


def to_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    return str(value).lower() in ("true", "1", "on", "yes")


def _tenant_access(action: str) -> dict:
    return _obj({action: _obj({
        "tenant": {"type": "string", "minLength": 1, "maxLength": 255},
    }, ("tenant",))}, (action,))


FLAVOR_ACCESS = {name: _tenant_access(name)
                 for name in ("addTenantAccess", "removeTenantAccess")}
