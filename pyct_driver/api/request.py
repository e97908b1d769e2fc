"""One API request as the handlers see it, and what they hand back.

``ApiRequest`` carries the caller's context, the microversion, the base
URLs links are built from, and the parsed query and body; ``json_body``
turns malformed JSON into a 400 (Nova's words). ``Result`` is a handler's
answer: a status, a JSON-able body (or none) and extra headers.
"""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import webob

from pyct_driver import exception
from pyct_driver.api import microversion
from pyct_driver.context import RequestContext


@dataclasses.dataclass
class Result:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class ApiRequest:
    """A request under ``/v2.1`` or ``/image``, authenticated."""

    def __init__(self, webob_req: webob.Request, ctxt: RequestContext,
                 version: microversion.Version, base_url: str,
                 project_in_url: str | None) -> None:
        self.raw = webob_req
        self.context = ctxt
        self.version = version
        # e.g. http://host:8774 (the WSGI root), no trailing slash
        self.base_url = base_url.rstrip("/")
        self.project_in_url = project_in_url

    @property
    def is_admin(self) -> bool:
        return bool(self.context.is_admin)

    def at_least(self, version: str) -> bool:
        major, minor = version.split(".")
        return self.version >= (int(major), int(minor))

    @property
    def params(self) -> webob.multidict.MultiDict:
        return self.raw.GET

    def param(self, name: str) -> str | None:
        values = self.raw.GET.getall(name)
        return values[-1] if values else None

    def json_body(self) -> Any:
        data = self.raw.body
        if not data:
            raise exception.Invalid("The request body is empty or "
                                    "missing.")
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError) as err:
            raise exception.Invalid(
                "Malformed request body: cannot understand JSON") from err

    def compute_link(self, collection: str, item: str) -> list[dict]:
        """Nova's self and bookmark links of one resource."""
        proj = f"/{self.project_in_url}" if self.project_in_url else ""
        return [
            {"rel": "self",
             "href": f"{self.base_url}/v2.1{proj}/{collection}/{item}"},
            {"rel": "bookmark",
             "href": f"{self.base_url}{proj}/{collection}/{item}"},
        ]

    def bookmark(self, collection: str, item: str) -> list[dict]:
        return [self.compute_link(collection, item)[1]]

    def collection_url(self, collection: str) -> str:
        proj = f"/{self.project_in_url}" if self.project_in_url else ""
        return f"{self.base_url}/v2.1{proj}/{collection}"


def parse_int(value: str | None, name: str, minimum: int = 0
              ) -> int | None:
    """A query-string integer; a bad one is a 400 as in Nova."""
    if value is None:
        return None
    try:
        number = int(value)
    except ValueError as err:
        raise exception.Invalid(f"{name} param must be an integer") from err
    if number < minimum:
        raise exception.Invalid(
            f"{name} param must be positive" if minimum > 0 else
            f"{name} param must be non-negative")
    return number
