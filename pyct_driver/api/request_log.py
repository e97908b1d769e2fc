"""The API's access log: one INFO line per request, in Nova's format.

``RequestLogMiddleware`` sits just inside the request-id middleware, so it
sees every response (faults, 401s and 413s included) and knows the request
id. Once the body is complete (built, or streamed to its end) it logs the
client, method, path, status, body length, compute microversion and wall
time, as Nova's requestlog does (one line)::

    127.0.0.1 "GET /v2.1/servers/detail" status: 200 len: 1337
    microversion: 2.1 time: 0.012345

The line carries the request id, and the user and project once the request
was authenticated, in oslo.log's context fields. While the request runs,
the request id is this thread's logging context, so every other line the
request causes (a state change, a fault) carries it too. The path is
re-quoted: a client cannot put quotes, newlines or terminal escapes into
the log.
"""

from __future__ import annotations

import time
import urllib.parse
from typing import Callable, Iterable, Iterator

from oslo_log import log as logging

from pyct_driver.context import RequestContext

LOG = logging.getLogger(__name__)

# the WSGI environ key where the API leaves the authenticated context
CONTEXT_KEY = "pyct.context"
_PATH_SAFE = "/;=,:@+$!*'()-._~"
_QUERY_SAFE = _PATH_SAFE + "&?%"
_MICROVERSION_HEADER = "openstack-api-version"


def _target(environ: dict) -> str:
    path = urllib.parse.quote(
        environ.get("SCRIPT_NAME", "") + environ.get("PATH_INFO", ""),
        safe=_PATH_SAFE)
    query = environ.get("QUERY_STRING")
    if query:
        path += "?" + urllib.parse.quote(query, safe=_QUERY_SAFE)
    return path


class _Logged:
    """The response body, logging the request when the server closes it."""

    def __init__(self, body: Iterable[bytes], done: Callable[[int], None]
                 ) -> None:
        self._body = body
        self._done = done
        self._sent = 0

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self._body:
            self._sent += len(chunk)
            yield chunk

    def close(self) -> None:
        try:
            close = getattr(self._body, "close", None)
            if close is not None:
                close()
        finally:
            self._done(self._sent)


class RequestLogMiddleware:
    """Log each request once, when its response is complete."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable):
        start = time.monotonic()
        request_id = environ.get("openstack.request_id")
        global_id = environ.get("openstack.global_request_id")
        # this thread's logging context for the request's other lines
        RequestContext(request_id=request_id, global_request_id=global_id,
                       overwrite=True)
        seen: dict[str, object] = {}

        def _start(status: str, headers: list, exc_info=None):
            seen["status"] = status.split(" ", 1)[0]
            for key, value in headers:
                if key.lower() == _MICROVERSION_HEADER:
                    seen["microversion"] = value.rpartition(" ")[2]
            return start_response(status, headers, exc_info)

        def done(sent: int) -> None:
            ctxt = environ.get(CONTEXT_KEY) or RequestContext(
                request_id=request_id, global_request_id=global_id,
                overwrite=False)
            LOG.info('%s "%s %s" status: %s len: %d microversion: %s '
                     'time: %.6f', environ.get("REMOTE_ADDR", "-"),
                     urllib.parse.quote(environ.get("REQUEST_METHOD", "-"),
                                        safe=""), _target(environ),
                     seen.get("status", "500"), sent,
                     seen.get("microversion", "-"),
                     time.monotonic() - start, context=ctxt)

        try:
            body = self.app(environ, _start)
        except BaseException:
            done(0)
            raise
        if isinstance(body, (list, tuple)):
            # complete already (webob's usual body); handed on as it is, so
            # the server still sees a list it can measure
            done(sum(len(chunk) for chunk in body))
            return body
        return _Logged(body, done)
