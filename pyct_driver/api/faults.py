"""Turning errors into fault responses, each API family in its service's shape.

Compute routes answer as Nova: ``{"<faultName>": {"code": N, "message":
"..."}}`` where the fault name follows the HTTP status exactly as Nova maps
it (406 is a ``computeFault`` there too); ``/networking`` answers as
Neutron (``{"NeutronError": {"type", "message", "detail"}}``) and
``/image`` as Glance (webob's own error page, JSON ``{"message", "code",
"title"}`` when asked for). A server error (5xx) shows a client only a
generic message and the request id, unless pyct marked it ``safe`` (its
words are pyct's own): the error text may carry a database driver's
message, SQL or table names. The full error and its traceback go to the
log with the request id, where an operator finds them by that id.
"""

from __future__ import annotations

import json
import logging

import webob
import webob.exc

from pyct_driver import exception

LOG = logging.getLogger(__name__)

_FAULT_NAMES = {
    400: "badRequest", 401: "unauthorized", 403: "forbidden",
    404: "itemNotFound", 405: "badMethod", 409: "conflictingRequest",
    413: "overLimit", 415: "badMediaType", 429: "overLimit",
    501: "notImplemented", 503: "serviceUnavailable",
}

# webob's HTTPInternalServerError explanation, which Nova answers with
GENERIC_5XX = ("The server has either erred or is incapable of performing "
               "the requested operation.")
# neutron.api.v2.resource's words for an unexpected error
_NEUTRON_5XX = ("Request Failed: internal server error while processing "
                "your request.")
# neutron-lib's exception names for pyct's generic classes; a specific
# class (PortNotFound, PortInUse, ...) keeps its own name, as in Neutron
_NEUTRON_TYPES = {400: "BadRequest", 401: "NotAuthorized",
                  403: "Forbidden", 404: "NotFound", 409: "Conflict"}
_GENERIC_CLASSES = (exception.PyctError, exception.Invalid,
                    exception.NotFound, exception.Conflict,
                    exception.Forbidden, exception.NotAuthorized)


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


def request_id(environ: dict) -> str:
    """The request's id (``RequestIdMiddleware`` sets it first)."""
    return environ.get("openstack.request_id", "-")


def client_view(err: BaseException, req_id: str) -> tuple[int, str | None]:
    """The status of ``err`` and the message a client may read (None: a
    server error to hide behind the family's generic words). Server
    errors are logged here."""
    if isinstance(err, exception.PyctError):
        if err.code < 500:
            return err.code, err.message
        if err.safe:
            # what it wraps (a compute host's error) is the operator's
            LOG.warning("request %s answered %d: %s", req_id, err.code,
                        err.message, exc_info=err if err.__cause__
                        else None)
            return err.code, err.message
        code = err.code
    else:
        code = 500
    LOG.error("request %s failed: %s: %s", req_id, type(err).__name__, err,
              exc_info=err)
    return code, None


def with_request_id(text: str, req_id: str) -> str:
    return f"{text} Request ID: {req_id}"


def from_exception(err: BaseException, req_id: str = "-") -> webob.Response:
    """A Nova fault response for any exception raised by a handler."""
    code, message = client_view(err, req_id)
    # a 503 of an outage says when to come back (Nova's fault body, and
    # the header HTTP clients and proxies honour)
    retry = getattr(err, "retry_after", None)
    return fault_response(code, message if message is not None
                          else with_request_id(GENERIC_5XX, req_id),
                          {"Retry-After": str(retry)} if retry else None)


def neutron_fault(code: int, kind: str, message: str) -> webob.Response:
    resp = webob.Response(status=code, content_type="application/json",
                          charset="UTF-8")
    resp.text = json.dumps({"NeutronError": {
        "type": kind, "message": message, "detail": ""}})
    return resp


def neutron_from_exception(err: BaseException,
                           req_id: str) -> webob.Response:
    """A NeutronError for any exception of a ``/networking`` handler."""
    if isinstance(err, exception.NotImplementedYet):
        return neutron_fault(501, "NotImplemented", err.message)
    code, message = client_view(err, req_id)
    if message is None:
        return neutron_fault(code, type(webob.exc.status_map.get(
            code, webob.exc.HTTPInternalServerError)()).__name__,
            with_request_id(_NEUTRON_5XX, req_id))
    kind = getattr(err, "neutron_type", type(err).__name__)
    if type(err) in _GENERIC_CLASSES or code not in _NEUTRON_TYPES:
        kind = _NEUTRON_TYPES.get(code) or type(
            webob.exc.status_map[code]()).__name__
    return neutron_fault(code, kind, message)


def glance_from_exception(err: BaseException,
                          req_id: str) -> webob.Response:
    """Glance's error response for any exception of an ``/image`` handler:
    webob's own, in the form the client's Accept asks for (JSON
    ``{"message", "code", "title"}`` for the SDK)."""
    if isinstance(err, exception.NotImplementedYet):
        resp = webob.Response(status=501, content_type="application/json",
                              charset="UTF-8")
        resp.text = json.dumps({"message": err.message,
                                "code": "501 Not Implemented",
                                "title": "Not Implemented"})
        return resp
    code, message = client_view(err, req_id)
    error_class = webob.exc.status_map.get(
        code, webob.exc.HTTPInternalServerError)
    if message is None:
        return error_class(detail=f"Request ID: {req_id}")
    if isinstance(err, exception.UnsupportedMediaType):
        return webob.exc.HTTPUnsupportedMediaType(
            detail=err.message,
            headers={"Accept-Patch": ", ".join(err.accepted)})
    return error_class(explanation=message)


def for_path(path: str, err: BaseException, req_id: str) -> webob.Response:
    """The fault of the API family ``path`` belongs to (for errors raised
    outside the router: the middlewares)."""
    family = path.lstrip("/").split("/", 1)[0]
    if family == "networking":
        return neutron_from_exception(err, req_id)
    if family == "image":
        return glance_from_exception(err, req_id)
    return from_exception(err, req_id)
