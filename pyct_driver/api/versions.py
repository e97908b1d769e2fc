"""Version documents of the compute API: ``/``, ``/v2/`` and ``/v2.1/``.

As Nova: ``/`` lists v2.0 (SUPPORTED, the legacy API without
microversions, served at ``/v2`` by the same handlers at 2.1 behaviour)
and v2.1 (CURRENT, from 2.1 up to our maximum microversion); ``/v2/`` and
``/v2.1/`` each show their own document. The image API's document lives
in ``images``.
"""

from __future__ import annotations

from pyct_driver.api import microversion
from pyct_driver.api.request import ApiRequest, Result

_DOCS = {
    "v2.0": {"status": "SUPPORTED", "version": "", "min_version": "",
             "updated": "2011-01-21T11:33:21Z", "path": "v2",
             "media": "2"},
    "v2.1": {"status": "CURRENT",
             "version": microversion.to_str(microversion.MAX_VERSION),
             "min_version": microversion.to_str(microversion.MIN_VERSION),
             "updated": "2013-07-23T11:33:21Z", "path": "v2.1",
             "media": "2.1"},
}


def _brief(version_id: str, base_url: str) -> dict:
    doc = _DOCS[version_id]
    return {"id": version_id, "status": doc["status"],
            "version": doc["version"], "min_version": doc["min_version"],
            "updated": doc["updated"],
            "links": [{"rel": "self",
                       "href": f"{base_url}/{doc['path']}/"}]}


def index(base_url: str) -> Result:
    """``GET /``: every version we serve."""
    return Result(200, {"versions": [_brief(v, base_url)
                                      for v in sorted(_DOCS)]})


def document(version_id: str, base_url: str) -> Result:
    """``GET /v2/`` or ``/v2.1/``: one version, with its media type."""
    doc = _brief(version_id, base_url)
    doc["links"].append({
        "rel": "describedby", "type": "text/html",
        "href": "http://docs.openstack.org/"})
    doc["media-types"] = [{
        "base": "application/json",
        "type": "application/vnd.openstack.compute+json;version="
                + _DOCS[version_id]["media"]}]
    return Result(200, {"version": doc})


def show(api: object, req: ApiRequest) -> Result:
    """``GET /v2.1/{project_id}/`` (or ``/v2/…``): the document of the
    version the request came in on."""
    return document("v2.0" if req.legacy_v2 else "v2.1", req.base_url)
