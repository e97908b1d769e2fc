"""Turning errors into Nova fault responses.

Every error leaves the API as Nova shapes it: a JSON body
``{"<faultName>": {"code": N, "message": "..."}}`` where the fault name
follows the HTTP status exactly as Nova maps it (406 is a ``computeFault``
there too). Unexpected exceptions become a 500 whose message never carries a
traceback; the traceback goes to the log only.
"""

from __future__ import annotations

import json
import logging

import webob

from pyct_driver import exception

LOG = logging.getLogger(__name__)

_FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden",
    404: "itemNotFound", 405: "badMethod", 409: "conflictingRequest",
    413: "overLimit", 415: "badMediaType", 429: "overLimit",
    501: "notImplemented", 503: "serviceUnavailable",
}

GENERIC_500 = ("Unexpected API Error. Please report this at the pyct "
               "issue tracker and attach the pyct API log if possible.")


def fault_name(code: int) -> str:
    return _FAULT_NAMES.get(code, "computeFault")


def fault_body(code: int, message: str) -> dict:
    return {fault_name(code): {"code": code, "message": message}}


def fault_response(code: int, message: str,
                   headers: dict[str, str] | None = None) -> webob.Response:
    resp = webob.Response(status=code, content_type="application/json",
                          charset="UTF-8")
    resp.text = json.dumps(fault_body(code, message))
    for key, value in (headers or {}).items():
        resp.headers[key] = value
    return resp


def from_exception(err: BaseException) -> webob.Response:
    """A fault response for any exception raised by a handler."""
    if isinstance(err, exception.PyctError) and err.code < 500:
        return fault_response(err.code, err.message)
    if isinstance(err, exception.PyctError):
        # NoValidHost, RPCError, ...: their message is ours, not a traceback
        LOG.error("API request failed: %s", err.message, exc_info=err)
        return fault_response(err.code, err.message)
    LOG.error("Unexpected API error", exc_info=err)
    return fault_response(500, GENERIC_500)
