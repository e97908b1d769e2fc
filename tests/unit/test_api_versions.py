"""Version documents and URL routing as Nova's.

``/`` lists v2.0 and v2.1, ``/v2/`` and ``/v2.1/`` show their own
documents, ``/v2/…`` is the legacy v2.0 alias (same handlers, 2.1
behaviour, microversion headers ignored both ways), a first path segment
is a project id only when a route follows it, and unknown collections are
404s. keystoneauth's discovery and openstacksdk read the documents over
HTTP from the served app.
"""

from __future__ import annotations

import openstack
import pytest
from keystoneauth1 import discover
from keystoneauth1 import session as ks_session

from pyct_driver.api import microversion
from tests.unit.test_api_app import Harness
from tests.unit.test_api_wsgi_server import serving

MAX = microversion.to_str(microversion.MAX_VERSION)


@pytest.mark.parametrize("root,version_id,status,version,minimum,updated", [
    ("v2", "v2.0", "SUPPORTED", "", "", "2011-01-21T11:33:21Z"),
    ("v2.1", "v2.1", "CURRENT", MAX, "2.1", "2013-07-23T11:33:21Z")])
def test_version_documents_are_novas(root, version_id, status, version,
                                     minimum, updated):
    h = Harness()
    for path in (f"/{root}", f"/{root}/"):
        resp = h.request("GET", path, token=None)
        assert resp.status_int == 200, resp.text
        assert resp.json == {"version": {
            "id": version_id, "status": status, "version": version,
            "min_version": minimum, "updated": updated,
            "links": [{"rel": "self", "href": f"http://localhost/{root}/"},
                      {"rel": "describedby", "type": "text/html",
                       "href": "http://docs.openstack.org/"}],
            "media-types": [{
                "base": "application/json",
                "type": "application/vnd.openstack.compute+json;version="
                        + version_id[1:].replace(".0", "")}]}}
        # as Nova: /v2.1/ answers at a microversion, legacy /v2/ never
        assert ("OpenStack-API-Version" in resp.headers) == (
            root == "v2.1")


def test_project_root_shows_the_version_it_came_in_on():
    h = Harness()
    for root, version_id in (("v2.1", "v2.1"), ("v2", "v2.0")):
        resp = h.request("GET", f"/{root}/c0ffee/", token="alice:c0ffee")
        assert resp.status_int == 200, resp.text
        assert resp.json["version"]["id"] == version_id


def test_legacy_v2_serves_compute_at_21_and_ignores_microversions():
    h = Harness()
    h.add_host()
    sid = h.boot("vm")["id"]
    for version in (None, "2.37", "9.9", "bogus"):
        resp = h.request("GET", f"/v2/servers/{sid}", version=version)
        assert resp.status_int == 200, (version, resp.text)
        assert "OpenStack-API-Version" not in resp.headers
        assert "X-OpenStack-Nova-API-Version" not in resp.headers
        assert "Vary" not in resp.headers
        links = {link["rel"]: link["href"]
                 for link in resp.json["server"]["links"]}
        assert links["self"] == f"http://localhost/v2/servers/{sid}"
        # 2.1's view: no 2.9 "locked", no 2.16 "host_status"
        assert "locked" not in resp.json["server"]
    # networks "none" is 2.37: at 2.1 behaviour a bad networks value
    resp = h.request("POST", "/v2/servers", {"server": {
        "name": "x", "imageRef": h.image["id"], "flavorRef": "1",
        "networks": "none"}}, version="2.37")
    assert resp.status_int == 400, resp.text
    resp = h.request("GET", "/v2/p1/servers/detail")
    assert resp.status_int == 200
    assert [s["id"] for s in resp.json["servers"]] == [sid]
    assert resp.json["servers"][0]["links"][0]["href"] == \
        f"http://localhost/v2/p1/servers/{sid}"


def test_v21_still_honours_microversions():
    h = Harness()
    resp = h.request("GET", "/v2.1/servers", version="2.37")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.37"
    assert h.request("GET", "/v2.1/servers", version="9.9").status_int \
        == 406


@pytest.mark.parametrize("path", [
    "/v2.1/os-hosts", "/v2.1/os-hosts/", "/v2.1/os-hosts/x",
    "/v2.1/os-hosts/x/y", "/v2.1/os-nonexistent", "/v2/os-hosts",
    "/v2.1/p1/os-hosts", "/v2.1/p1/os-hosts/x", "/v2.1/servers/x/nope",
    "/v2.1/p1", "/v2.1/p1/", "/v2.1/c0ffee/nope", "/v3", "/v2.2/servers"])
def test_unknown_collections_are_404(path):
    h = Harness()
    resp = h.request("GET", path)
    assert resp.status_int == 404, resp.text
    assert resp.json == {"itemNotFound": {
        "code": 404, "message": "The resource could not be found."}}


def test_project_in_url_must_be_the_callers():
    h = Harness()
    assert h.request("GET", "/v2.1/p1/servers").status_int == 200
    resp = h.request("GET", "/v2.1/p2/servers")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Malformed request URL: URL's project_id 'p2' doesn't match "
        "Context's project_id 'p1'")


@pytest.mark.parametrize("path", [
    "/v2.1/servers/x/os-volume_attachments",
    "/v2.1/p1/servers/x/os-volume_attachments",
    "/v2/servers/x/os-volume_attachments"])
def test_not_yet_features_stay_501(path):
    h = Harness()
    resp = h.request("POST", path, {"volumeAttachment": {}})
    assert resp.status_int == 501, resp.text
    assert "volumes" in resp.json["notImplemented"]["message"]


def test_keystoneauth_discovery_reads_both_versions():
    h = Harness()
    with serving(h.app) as port:
        root = f"http://127.0.0.1:{port}"
        disc = discover.Discover(ks_session.Session(), root + "/")
        data = {d["raw_status"]: d for d in disc.version_data()}
        assert data["CURRENT"]["version"] == (2, 1)
        assert data["CURRENT"]["url"] == root + "/v2.1/"
        assert data["CURRENT"]["min_microversion"] == (2, 1)
        assert data["CURRENT"]["max_microversion"] == \
            microversion.MAX_VERSION
        assert data["SUPPORTED"]["version"] == (2, 0)
        assert data["SUPPORTED"]["url"] == root + "/v2/"
        assert data["SUPPORTED"]["max_microversion"] is None


def test_openstacksdk_endpoint_data_and_legacy_v2():
    h = Harness()
    h.add_host()
    sid = h.boot("vm")["id"]
    with serving(h.app) as port:
        root = f"http://127.0.0.1:{port}"
        conn = openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": root + "/v2.1", "token": "alice:p1"},
            compute_endpoint_override=root + "/v2.1",
            region_name="RegionOne")
        data = conn.compute.get_endpoint_data()
        assert data.min_microversion == (2, 1)
        assert data.max_microversion == microversion.MAX_VERSION
        assert data.url.rstrip("/") == root + "/v2.1"
        assert [s.id for s in conn.compute.servers()] == [sid]
        legacy = openstack.connect(
            auth_type="admin_token",
            auth={"endpoint": root + "/v2", "token": "alice:p1"},
            compute_endpoint_override=root + "/v2",
            region_name="RegionOne")
        assert [s.id for s in legacy.compute.servers()] == [sid]


def test_legacy_v2_drops_unknown_body_properties_as_nova():
    h = Harness()
    h.add_host()
    server = {"name": "x", "imageRef": h.image["id"], "flavorRef": "1",
              "no_such_key": 1}
    resp = h.request("POST", "/v2.1/servers", {"server": server})
    assert resp.status_int == 400
    assert "no_such_key" in resp.json["badRequest"]["message"]
    resp = h.request("POST", "/v2/servers", {"server": server,
                                             "other_top": {}})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    resp = h.request("PUT", f"/v2/servers/{sid}",
                     {"server": {"name": "y", "bogus": True}})
    assert resp.status_int == 200 and resp.json["server"]["name"] == "y"
    # what the schema does name is still checked
    resp = h.request("PUT", f"/v2/servers/{sid}",
                     {"server": {"name": 5, "bogus": True}})
    assert resp.status_int == 400
    # and the relaxation ends with the request
    resp = h.request("PUT", f"/v2.1/servers/{sid}",
                     {"server": {"name": "z", "bogus": True}})
    assert resp.status_int == 400


def test_legacy_v2_keeps_the_personas():
    h = Harness()
    h.add_host()
    sid = h.boot("vm")["id"]
    assert h.request("GET", f"/v2/servers/{sid}",
                     token="reader:p1").status_int == 200
    assert h.request("DELETE", f"/v2/servers/{sid}",
                     token="reader:p1").status_int == 403
    assert h.request("GET", f"/v2/servers/{sid}",
                     token="bob:p2").status_int == 404
    assert h.request("DELETE", f"/v2/servers/{sid}").status_int == 204
