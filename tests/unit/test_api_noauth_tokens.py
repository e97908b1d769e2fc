"""noauth's Keystone-style token issue, and the 501s for features pyct
does not have yet, through the WSGI app."""

from __future__ import annotations

import pytest

from tests.unit.test_api_app import Harness

TOKENS = "/identity/v3/auth/tokens"


def _auth(user="demo", project={"name": "demo"}, methods=("password",)):
    body = {"auth": {"identity": {
        "methods": list(methods),
        "password": {"user": {"name": user, "domain": {"name": "Default"},
                              "password": "whatever"}}}}}
    if project is not None:
        body["auth"]["scope"] = {"project": dict(
            project, domain={"name": "Default"})}
    return body


def test_password_login_gets_a_scoped_token_and_the_catalog():
    h = Harness()
    resp = h.request("POST", TOKENS, _auth(), token=None)
    assert resp.status_int == 201
    assert resp.headers["X-Subject-Token"] == "demo:demo"
    token = resp.json["token"]
    assert token["project"]["id"] == "demo"
    assert token["user"]["id"] == "demo"
    assert {r["name"] for r in token["roles"]} == {"member", "reader"}
    urls = {s["type"]: s["endpoints"][0]["url"] for s in token["catalog"]}
    assert urls == {"compute": "http://localhost/v2.1",
                    "image": "http://localhost/image",
                    "network": "http://localhost/networking",
                    "identity": "http://localhost/identity"}
    # the token works like any noauth token
    assert h.request("GET", "/v2.1/servers",
                     token=resp.headers["X-Subject-Token"]).status_int == 200
    admin = h.request("POST", TOKENS, _auth("admin", {"id": "adminproj"}),
                      token=None).json["token"]
    assert "admin" in {r["name"] for r in admin["roles"]}


@pytest.mark.parametrize("body", [
    _auth(project=None), _auth(methods=("token",)), _auth(user="a:b"),
    _auth(project={"name": "x:y"}), {"auth": {}}, [], "nope"])
def test_bad_logins_are_400(body):
    h = Harness()
    resp = h.request("POST", TOKENS, body, token=None)
    assert resp.status_int == 400
    assert resp.json["error"]["code"] == 400
    assert "X-Subject-Token" not in resp.headers


@pytest.mark.parametrize("method,path,feature", [
    ("GET", "/v2.1/p1/os-server-external-events", "external events"),
    ("GET", "/v2.1/servers/x/os-volume_attachments", "volumes")])
def test_missing_compute_features_are_novas_501(method, path, feature):
    h = Harness()
    resp = h.request(method, path, {})
    assert resp.status_int == 501
    assert resp.json["notImplemented"]["message"].startswith(
        f"pyct does not implement {feature} yet")


def test_missing_server_actions_and_sub_resources_are_501():
    h = Harness()
    h.add_host()
    sid = h.boot()["id"]
    for body in ({"forceDelete": None}, {"restore": None}):
        resp = h.request("POST", f"/v2.1/servers/{sid}/action", body)
        assert resp.status_int == 501, body
        assert "does not implement" in resp.json["notImplemented"]["message"]
    resp = h.request("POST", f"/v2.1/servers/{sid}/action", {"frob": None})
    assert resp.status_int == 400  # not a Nova action at all
    resp = h.request("GET", f"/v2.1/servers/{sid}/os-volume_attachments")
    assert resp.status_int == 501
    assert h.request("GET", f"/v2.1/servers/{sid}/frobs").status_int == 404


def test_missing_network_and_image_features_use_their_fault_forms():
    h = Harness()
    resp = h.request("GET", "/networking/v2.0/routers")
    assert resp.status_int == 501
    assert resp.json["NeutronError"]["type"] == "NotImplemented"
    assert h.request("POST", "/networking/v2.0/networks",
                     {"network": {}}).status_int == 501
    resp = h.request("POST", f"/image/v2/images/{h.image['id']}/import",
                     {"method": {"name": "glance-direct"}})
    assert resp.status_int == 501
    assert "interoperable image import" in resp.json["message"]
