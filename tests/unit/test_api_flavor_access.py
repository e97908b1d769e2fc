"""Private flavors and Nova's flavor access model through the WSGI app.

The attack this closes: an admin's private flavor (e.g. one with
``pyct:privileged``) was visible to, and bootable by, every project.
"""

from __future__ import annotations

import sqlalchemy as sa

from pyct_driver.api import flavors
from pyct_driver.db import catalog, models
from tests.unit.test_api_app import Harness

ACCESS = "/v2.1/flavors/{}/os-flavor-access"
ACTION = "/v2.1/flavors/{}/action"


def _ids(resp) -> list[str]:
    assert resp.status_int == 200, resp.text
    return [f["id"] for f in resp.json["flavors"]]


def _harness() -> Harness:
    h = Harness()
    h.add_host()
    flavors.create_flavor(h.db, "root-ish", 1, 256, 1, flavorid="priv",
                          is_public=False,
                          extra_specs={"pyct:privileged": "true"})
    return h


def _add(h: Harness, flavor: str, tenant: str, version: str = "2.37"):
    return h.admin("POST", ACTION.format(flavor),
                   {"addTenantAccess": {"tenant": tenant}}, version=version)


def _count_instances(h: Harness) -> int:
    with h.db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(
            models.Instance))


def test_private_flavor_does_not_exist_for_other_projects():
    h = _harness()
    assert "priv" not in _ids(h.request("GET", "/v2.1/flavors"))
    assert "priv" not in _ids(h.request("GET", "/v2.1/flavors/detail"))
    # a member's is_public filter changes nothing
    for value in ("none", "false"):
        assert "priv" not in _ids(h.request(
            "GET", f"/v2.1/flavors?is_public={value}"))
    for path in ("/v2.1/flavors/priv", "/v2.1/flavors/priv/os-extra_specs",
                 "/v2.1/flavors/priv/os-extra_specs/pyct:privileged"):
        resp = h.request("GET", path)
        assert resp.status_int == 404, path
        assert resp.json == {"itemNotFound": {
            "code": 404, "message": "Flavor priv could not be found."}}
    # paging past it by marker is refused, not a side channel
    assert h.request("GET", "/v2.1/flavors?marker=priv").status_int == 400


def test_private_privileged_flavor_cannot_be_booted_by_other_project():
    h = _harness()
    server = {"name": "x", "imageRef": h.image["id"], "flavorRef": "priv",
              "networks": "none"}
    for ref in ("priv", "http://localhost/v2.1/flavors/priv"):
        resp = h.request("POST", "/v2.1/servers",
                         {"server": dict(server, flavorRef=ref)},
                         version="2.37")
        assert resp.status_int == 400
        assert resp.json == {"badRequest": {
            "code": 400, "message": "Flavor priv could not be found."}}
    assert _count_instances(h) == 0
    assert h.compute.calls == []


def test_granted_project_sees_and_boots_until_access_is_removed():
    h = _harness()
    resp = _add(h, "priv", "p1")
    assert resp.status_int == 200
    assert resp.json == {"flavor_access": [
        {"flavor_id": "priv", "tenant_id": "p1"}]}
    assert _ids(h.request("GET", "/v2.1/flavors")) == ["1", "priv"]
    assert h.request("GET", "/v2.1/flavors/priv").status_int == 200
    assert h.request("GET", "/v2.1/flavors/priv/os-extra_specs").json == {
        "extra_specs": {"pyct:privileged": "true"}}
    assert h.boot(flavorRef="priv")["id"]
    # another project still sees nothing
    assert h.request("GET", "/v2.1/flavors/priv",
                     token="bob:p2").status_int == 404
    resp = h.admin("POST", ACTION.format("priv"),
                   {"removeTenantAccess": {"tenant": "p1"}})
    assert resp.status_int == 200
    assert resp.json == {"flavor_access": []}
    assert h.request("GET", "/v2.1/flavors/priv").status_int == 404
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "y", "imageRef": h.image["id"], "flavorRef": "priv",
        "networks": "none"}}, version="2.37")
    assert resp.status_int == 400
    assert _count_instances(h) == 1


def test_access_list_is_admin_only_and_not_for_public_flavors():
    h = _harness()
    assert _add(h, "priv", "p1").status_int == 200
    assert _add(h, "priv", "p0").status_int == 200
    resp = h.admin("GET", ACCESS.format("priv"))
    assert resp.json == {"flavor_access": [
        {"flavor_id": "priv", "tenant_id": "p0"},
        {"flavor_id": "priv", "tenant_id": "p1"}]}
    # even a project with access may not read who else has it
    resp = h.request("GET", ACCESS.format("priv"))
    assert resp.status_int == 403
    resp = h.admin("GET", ACCESS.format("1"))
    assert resp.status_int == 404
    assert resp.json["itemNotFound"]["message"] == (
        "Access list not available for public flavors.")
    assert h.admin("GET", ACCESS.format("nope")).status_int == 404


def test_add_and_remove_errors_as_nova_answers():
    h = _harness()
    assert _add(h, "priv", "p1").status_int == 200
    resp = _add(h, "priv", "p1")
    assert resp.status_int == 409
    assert resp.json["conflictingRequest"]["message"] == (
        "Flavor access already exists for flavor priv and project p1 "
        "combination.")
    resp = h.admin("POST", ACTION.format("priv"),
                   {"removeTenantAccess": {"tenant": "p9"}})
    assert resp.status_int == 404
    assert resp.json["itemNotFound"]["message"] == (
        "Flavor access not found for priv / p9 combination.")
    resp = _add(h, "1", "p1")
    assert resp.status_int == 409
    assert resp.json["conflictingRequest"]["message"] == (
        "Can not add access to a public flavor.")
    assert _add(h, "nope", "p1").status_int == 404
    # members may not grant themselves anything
    resp = h.request("POST", ACTION.format("priv"),
                     {"addTenantAccess": {"tenant": "p2"}})
    assert resp.status_int == 403
    assert catalog.flavor_access_list(h.db, "priv") == ["p1"]
    for body in ({"addTenantAccess": {}}, {"addTenantAccess": {"tenant": ""}},
                 {"addTenantAccess": {"tenant": "x" * 256}},
                 {"addTenantAccess": {"tenant": "p3", "extra": 1}},
                 {"frobnicate": {"tenant": "p3"}}, []):
        resp = h.admin("POST", ACTION.format("priv"), body)
        assert resp.status_int == 400, body
        assert "badRequest" in resp.json
    assert catalog.flavor_access_list(h.db, "priv") == ["p1"]


def test_admin_lists_follow_nova_is_public_filter():
    h = _harness()
    flavors.create_flavor(h.db, "other", 1, 128, 1, flavorid="zz",
                          is_public=False)
    assert _add(h, "priv", "adminproj").status_int == 200
    # default: public plus what the admin's own project was given
    assert _ids(h.admin("GET", "/v2.1/flavors")) == ["1", "priv"]
    assert _ids(h.admin("GET", "/v2.1/flavors?is_public=false")) == [
        "priv", "zz"]
    assert _ids(h.admin("GET", "/v2.1/flavors?is_public=none")) == [
        "1", "priv", "zz"]
    assert h.admin("GET", "/v2.1/flavors/zz").status_int == 200
    assert h.admin("GET", "/v2.1/flavors?is_public=maybe").status_int == 400


def test_deleting_a_flavor_removes_its_access_rows():
    h = _harness()
    assert _add(h, "priv", "p1").status_int == 200
    assert h.admin("DELETE", "/v2.1/flavors/priv").status_int == 202
    with h.db.session() as session:
        assert session.scalar(sa.select(sa.func.count()).select_from(
            models.FlavorProject)) == 0
