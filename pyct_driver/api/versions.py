"""Version documents: the compute root (``/``, ``/v2.1``).

We list only what we serve: v2.1, CURRENT, from 2.1 up to our maximum
microversion. The image API's document lives in ``images``.
"""

from __future__ import annotations

from pyct_driver.api import microversion
from pyct_driver.api.request import Result

_UPDATED = "2013-07-23T11:33:21Z"


def _v21(base_url: str) -> dict:
    return {
        "id": "v2.1",
        "status": "CURRENT",
        "version": microversion.to_str(microversion.MAX_VERSION),
        "min_version": microversion.to_str(microversion.MIN_VERSION),
        "updated": _UPDATED,
        "links": [{"rel": "self", "href": f"{base_url}/v2.1/"}],
    }


def index(base_url: str) -> Result:
    """``GET /``: every version we serve."""
    return Result(200, {"versions": [_v21(base_url)]})


def show_v21(api: object, req: object = None, base_url: str | None = None
             ) -> Result:
    """``GET /v2.1``: the one version document, with its media type."""
    if base_url is None:
        base_url = req.base_url  # type: ignore[union-attr]
    doc = _v21(base_url)
    doc["links"].append({
        "rel": "describedby", "type": "text/html",
        "href": "https://docs.openstack.org/"})
    doc["media-types"] = [{
        "base": "application/json",
        "type": "application/vnd.openstack.compute+json;version=2.1"}]
    return Result(200, {"version": doc})
