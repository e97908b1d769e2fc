"""The API's request body cap: 413 for a body past ``[api]
max_request_body_size`` before any handler reads it.

Image data (``PUT /image/v2/images/{id}/file``) is exempt: it streams to
disk, and its route enforces ``[image] max_image_size_mb`` itself.
"""

from __future__ import annotations

import re
from typing import Callable

from pyct_driver.api import faults

_UPLOAD = re.compile(r"^/image/v2/images/[^/]+/file/?$")


class BodyLimitMiddleware:
    """Refuse bodies larger than ``limit`` bytes with a 413."""

    def __init__(self, app: Callable, limit: int) -> None:
        self.app = app
        self.limit = limit

    def __call__(self, environ: dict, start_response: Callable):
        try:
            length = int(environ.get("CONTENT_LENGTH") or 0)
        except ValueError:
            length = 0
        # image data streams past the limit; its route has its own cap
        upload = (environ.get("REQUEST_METHOD") == "PUT" and
                  _UPLOAD.match(environ.get("PATH_INFO", "")))
        if length > self.limit and not upload:
            resp = faults.fault_response(413, "Request is too large.")
            return resp(environ, start_response)
        return self.app(environ, start_response)
