"""Flavors, extra specs and the Glance v2 subset through the WSGI app."""

from __future__ import annotations

import pytest

from pyct_driver import exception
from pyct_driver.api import flavors, images
from pyct_driver.db import catalog
from tests.unit.test_api_app import Harness

DETAIL_KEYS = {"id", "name", "ram", "disk", "vcpus", "links",
               "OS-FLV-DISABLED:disabled", "OS-FLV-EXT-DATA:ephemeral",
               "os-flavor-access:is_public", "rxtx_factor", "swap"}


def test_flavor_list_detail_show_keys():
    h = Harness()
    for version in ("2.1", "2.37"):
        body = h.request("GET", "/v2.1/flavors", version=version).json
        assert body == {"flavors": [{"id": "1", "name": "m1.small",
                                     "links": [
            {"rel": "self", "href": "http://localhost/v2.1/flavors/1"},
            {"rel": "bookmark", "href": "http://localhost/flavors/1"}]}]}
        detail = h.request("GET", "/v2.1/flavors/detail",
                           version=version).json["flavors"][0]
        assert set(detail) == DETAIL_KEYS
        show = h.request("GET", "/v2.1/flavors/1").json["flavor"]
        assert show == detail
        assert show["swap"] == "" and show["ram"] == 512


def test_flavor_by_name_is_404():
    h = Harness()
    resp = h.request("GET", "/v2.1/flavors/m1.small")
    assert resp.status_int == 404
    assert resp.json == {"itemNotFound": {
        "code": 404, "message": "Flavor m1.small could not be found."}}


def test_flavor_filters_and_paging():
    h = Harness()
    flavors.create_flavor(h.db, "big", 4, 8192, 40, flavorid="2", swap=512)
    flavors.create_flavor(h.db, "secret", 1, 256, 1, flavorid="3",
                          is_public=False)
    ids = lambda b: [f["id"] for f in b["flavors"]]  # noqa: E731
    assert ids(h.request("GET", "/v2.1/flavors?minRam=1024").json) == ["2"]
    assert ids(h.request("GET", "/v2.1/flavors?minDisk=2").json) == ["2"]
    page = h.request("GET", "/v2.1/flavors?limit=1").json
    assert ids(page) == ["1"] and "marker=1" in page["flavors_links"][0][
        "href"]
    assert ids(h.request("GET", "/v2.1/flavors?marker=1").json) == ["2"]
    assert ids(h.request("GET", "/v2.1/flavors?is_public=none").json) == [
        "1", "2"]
    assert ids(h.admin("GET", "/v2.1/flavors?is_public=none").json) == [
        "1", "2", "3"]
    assert ids(h.admin("GET", "/v2.1/flavors?is_public=false").json) == [
        "3"]
    detail = h.request("GET", "/v2.1/flavors/2").json["flavor"]
    assert detail["swap"] == 512
    assert h.request("GET", "/v2.1/flavors?minRam=x").status_int == 400


def test_flavor_create_delete_admin_only():
    h = Harness()
    body = {"flavor": {"name": "new", "ram": 1024, "vcpus": 2, "disk": 10,
                       "id": "abc", "swap": 0, "rxtx_factor": 1.0,
                       "OS-FLV-EXT-DATA:ephemeral": 0,
                       "os-flavor-access:is_public": True}}
    resp = h.request("POST", "/v2.1/flavors", body)
    assert resp.status_int == 403
    assert resp.json["forbidden"]["message"] == (
        "Policy doesn't allow os_compute_api:os-flavor-manage:create to be "
        "performed.")
    resp = h.admin("POST", "/v2.1/flavors", body)
    assert resp.status_int == 200
    assert resp.json["flavor"]["id"] == "abc"
    assert set(resp.json["flavor"]) == DETAIL_KEYS
    assert h.admin("POST", "/v2.1/flavors", body).status_int == 409
    del body["flavor"]["id"]
    body["flavor"]["name"] = "generated"
    gen = h.admin("POST", "/v2.1/flavors", body).json["flavor"]["id"]
    assert len(gen) == 36
    assert h.request("DELETE", "/v2.1/flavors/abc").status_int == 403
    assert h.admin("DELETE", "/v2.1/flavors/abc").status_int == 202
    assert h.admin("DELETE", "/v2.1/flavors/abc").status_int == 404


def test_extra_specs_crud_and_validation():
    h = Harness()
    base = "/v2.1/flavors/1/os-extra_specs"
    assert h.request("GET", base).json == {"extra_specs": {}}
    resp = h.admin("POST", base, {"extra_specs": {
        "quota:cpu_shares": "2048", "hw:cpu_policy": "shared"}})
    assert resp.status_int == 200
    assert resp.json == {"extra_specs": {"quota:cpu_shares": "2048",
                                         "hw:cpu_policy": "shared"}}
    assert h.request("GET", base + "/quota:cpu_shares").json == {
        "quota:cpu_shares": "2048"}
    resp = h.admin("PUT", base + "/quota:cpu_shares",
                   {"quota:cpu_shares": "4096"})
    assert resp.status_int == 200 and resp.json == {
        "quota:cpu_shares": "4096"}
    resp = h.admin("PUT", base + "/quota:cpu_shares",
                   {"quota:cpu_period": "4096"})
    assert resp.status_int == 400
    resp = h.admin("POST", base, {"extra_specs": {"quota:cpu_shares": "1"}})
    assert resp.status_int == 400 and "quota:cpu_shares" in resp.json[
        "badRequest"]["message"]
    assert h.request("POST", base, {"extra_specs": {}}).status_int == 403
    assert h.admin("DELETE", base + "/hw:cpu_policy").status_int == 200
    resp = h.request("GET", base + "/hw:cpu_policy")
    assert resp.status_int == 404
    assert resp.json["itemNotFound"]["message"] == (
        "Flavor 1 has no extra specs with key hw:cpu_policy.")
    assert h.request("GET", "/v2.1/flavors/9/os-extra_specs"
                     ).status_int == 404


def test_create_flavor_function_validates():
    h = Harness()
    with pytest.raises(exception.Invalid):
        flavors.create_flavor(h.db, "bad", 1, 512, 1,
                              extra_specs={"quota:cpu_period": "5"})
    with pytest.raises(exception.Invalid):
        flavors.create_flavor(h.db, "", 1, 512, 1)
    with pytest.raises(exception.Invalid):
        flavors.create_flavor(h.db, "zero", 0, 512, 1)
    made = flavors.create_flavor(h.db, "ok", 2, 512, 1,
                                 extra_specs={"pyct:pids_max": "100"})
    assert catalog.flavor_get(h.db, made["flavorid"])["extra_specs"] == {
        "pyct:pids_max": "100"}


def test_image_versions_list_show(tmp_path):
    h = Harness()
    path = tmp_path / "img.tar"
    path.write_bytes(b"x" * 100)
    img = images.register_image(h.db, "debian", str(path),
                                {"os_distro": "debian",
                                 "container_format": "bare"})
    assert img["size"] == 100 and img["os_distro"] == "debian"
    assert len(img["checksum"]) == 32
    vers = h.request("GET", "/image/versions", token=None).json
    assert vers["versions"][0]["status"] == "CURRENT"
    assert vers["versions"][0]["links"][0]["href"] == \
        "http://localhost/image/v2/"
    assert h.request("GET", "/image/", token=None).status_int == 200
    body = h.request("GET", "/image/v2/images").json
    assert {i["name"] for i in body["images"]} == {"cirros", "debian"}
    assert body["first"] == "/v2/images"
    one = h.request("GET", "/image/v2/images?name=debian").json["images"]
    assert [i["id"] for i in one] == [img["id"]]
    ids = f"in:{img['id']},{h.image['id']}"
    assert len(h.request("GET", f"/image/v2/images?id={ids}").json[
        "images"]) == 2
    page = h.request("GET", "/image/v2/images?limit=1").json
    assert len(page["images"]) == 1 and "marker=" in page["next"]
    shown = h.request("GET", f"/image/v2/images/{img['id']}").json
    for key in ("id", "name", "status", "visibility", "disk_format",
                "container_format", "size", "checksum", "min_disk",
                "min_ram", "owner", "protected", "created_at",
                "updated_at", "tags", "self", "file", "schema"):
        assert key in shown
    assert shown["created_at"].endswith("Z") and shown["status"] == "active"
    assert h.request("GET", "/image/v2/images/nope").status_int == 404
    assert h.request("GET", "/image/v2/images?marker=nope").status_int == 400
    assert h.request("GET", "/image/v2/schemas/image").status_int == 200
    assert h.request("GET", "/image/v2/images", token=None).status_int == 401
