"""One API request as the handlers see it, and what they hand back.

``ApiRequest`` carries the caller's context, the microversion, the base
URLs links are built from, and the parsed query and body; ``json_body``
turns malformed JSON into a 400 (Nova's words). A body nested deeper than
``MAX_BODY_DEPTH`` is malformed too, found by a scan before the parser
runs: the parser recurses once per level, and a 50,000-deep body used to
end in a RecursionError (a 500 and a traceback). ``Result`` is a handler's
answer: a status, a JSON-able body (or none) and extra headers.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import re
import urllib.parse
from typing import Any, Container, Iterable

import webob

from pyct_driver import exception
from pyct_driver.api import microversion
from pyct_driver.context import RequestContext

# Nova's deepest bodies nest about five levels; no request needs 32.
MAX_BODY_DEPTH = 32
MALFORMED_BODY = "Malformed request body"
# the bytes that open/close a level or a string; never part of a UTF-8
# multi-byte sequence, so the body need not be decoded to scan it
_STRUCTURE = re.compile(rb'[\[\]{}"\\]')


def nesting_exceeds(data: bytes, limit: int) -> bool:
    """Whether JSON text ``data`` opens more than ``limit`` nested arrays
    or objects; brackets inside strings do not count. Linear, no
    recursion, and it stops at the first level past ``limit``."""
    if data.count(b"[") + data.count(b"{") <= limit:
        return False            # the common case, without a Python loop
    depth = 0
    in_string = False
    escaped_at = -1
    for found in _STRUCTURE.finditer(data):
        pos = found.start()
        if pos == escaped_at:
            continue
        char = data[pos]
        if in_string:
            if char == 0x5C:            # backslash: skip what it escapes
                escaped_at = pos + 1
            elif char == 0x22:
                in_string = False
        elif char == 0x22:
            in_string = True
        elif char in b"[{":
            depth += 1
            if depth > limit:
                return True
        elif char in b"]}":
            depth -= 1
    return False


@dataclasses.dataclass
class Result:
    status: int = 200
    body: Any = None
    headers: dict[str, str] = dataclasses.field(default_factory=dict)


class ApiRequest:
    """A request under ``/v2.1`` or ``/image``, authenticated."""

    def __init__(self, webob_req: webob.Request, ctxt: RequestContext,
                 version: microversion.Version, base_url: str,
                 project_in_url: str | None, legacy_v2: bool = False
                 ) -> None:
        self.raw = webob_req
        self.context = ctxt
        self.version = version
        # e.g. http://host:8774 (the WSGI root), no trailing slash
        self.base_url = base_url.rstrip("/")
        self.project_in_url = project_in_url
        # came in on /v2 (Nova's legacy v2.0 alias): links stay below /v2
        self.legacy_v2 = legacy_v2
        self.api_root = "v2" if legacy_v2 else "v2.1"

    @property
    def is_admin(self) -> bool:
        return bool(self.context.is_admin)

    def at_least(self, version: str) -> bool:
        return self.version >= _parsed(version)

    @property
    def params(self) -> webob.multidict.MultiDict:
        try:
            return self.raw.GET
        except UnicodeDecodeError as err:     # webob decodes lazily
            raise exception.Invalid(
                "Query string is not UTF-8 encoded") from err

    def param(self, name: str) -> str | None:
        values = self.params.getall(name)
        return values[-1] if values else None

    def json_body(self) -> Any:
        data = self.raw.body
        if not data:
            raise exception.Invalid("The request body is empty or "
                                    "missing.")
        if nesting_exceeds(data, MAX_BODY_DEPTH):
            raise exception.Invalid(MALFORMED_BODY)
        try:
            return json.loads(data.decode("utf-8"))
        except (ValueError, UnicodeDecodeError, RecursionError) as err:
            raise exception.Invalid(MALFORMED_BODY) from err

    def compute_link(self, collection: str, item: str) -> list[dict]:
        """Nova's self and bookmark links of one resource."""
        proj = f"/{self.project_in_url}" if self.project_in_url else ""
        return [
            {"rel": "self",
             "href": f"{self.base_url}/{self.api_root}{proj}/{collection}/"
                     f"{item}"},
            {"rel": "bookmark",
             "href": f"{self.base_url}{proj}/{collection}/{item}"},
        ]

    def bookmark(self, collection: str, item: str) -> list[dict]:
        return [self.compute_link(collection, item)[1]]

    def next_query(self, marker: str) -> str:
        """The query string of a list's ``next`` link: this request's
        parameters, URL-encoded again (so a value holding ``&`` or ``=``
        survives), with ``marker`` replaced."""
        params = [(k, v) for k, v in self.params.items() if k != "marker"]
        params.append(("marker", marker))
        return urllib.parse.urlencode(params)

    def collection_url(self, collection: str) -> str:
        proj = f"/{self.project_in_url}" if self.project_in_url else ""
        return f"{self.base_url}/{self.api_root}{proj}/{collection}"


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


def reject_unknown_params(names: Iterable[str], allowed: Container[str]
                          ) -> None:
    """A query parameter outside ``allowed`` is a 400 with jsonschema's
    words, as Nova's query schemas answer from 2.75."""
    unknown = sorted(k for k in set(names) if k not in allowed)
    if unknown:
        quoted = ", ".join(repr(k) for k in unknown)
        verb = "were" if len(unknown) > 1 else "was"
        raise exception.Invalid("Additional properties are not allowed "
                                f"({quoted} {verb} unexpected)")


@functools.lru_cache(maxsize=256)
def _parsed(version: str) -> tuple[int, int]:
    """"2.26" -> (2, 26); cached: a list page asks a dozen per server."""
    major, minor = version.split(".")
    return int(major), int(minor)
