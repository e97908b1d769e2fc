"""Servers, flavors and key pairs: each response body's shape at every
microversion boundary from 2.1 to 2.96, checked with strict JSON schemas.

The schemas are built here from tables of (field, first version, last
version, JSON type), modelled on the response shapes Nova documents per
microversion: every field present exactly from the version that adds it
(``additionalProperties`` false, the always-present ones required), with
the admin-only fields required for an admin and absent for a member.
"""

from __future__ import annotations

import copy

import jsonschema
import pytest

from pyct_driver.api import images, microversion
from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from tests.unit.test_api_app import Harness

INF = (9, 99)
STR = {"type": "string"}
NSTR = {"type": ["string", "null"]}
INT = {"type": "integer"}
BOOL = {"type": "boolean"}
LINKS = {"type": "array", "items": {"type": "object", "properties": {
    "rel": STR, "href": STR}, "required": ["rel", "href"],
    "additionalProperties": False}}
# every boundary: the version before and the version of each change
BOUNDARIES = ["2.1", "2.2", "2.3", "2.8", "2.9", "2.10", "2.15", "2.16",
              "2.18", "2.19", "2.25", "2.26", "2.34", "2.35", "2.46",
              "2.47", "2.54", "2.55", "2.60", "2.61", "2.62", "2.63",
              "2.70", "2.71", "2.72", "2.73", "2.74", "2.75", "2.89",
              "2.90", "2.91", "2.92", "2.95", "2.96"]


def v(text: str) -> tuple[int, int]:
    major, minor = text.split(".")
    return int(major), int(minor)


def obj(props: dict, required) -> dict:
    return {"type": "object", "properties": props,
            "required": sorted(required), "additionalProperties": False}


ADDRESS = obj({"version": INT, "addr": STR, "OS-EXT-IPS:type": STR,
               "OS-EXT-IPS-MAC:mac_addr": STR},
              ["version", "addr", "OS-EXT-IPS:type",
               "OS-EXT-IPS-MAC:mac_addr"])
BARE_ADDRESS = obj({"version": INT, "addr": STR}, ["version", "addr"])
FLAVOR_REF = obj({"id": STR, "links": LINKS}, ["id", "links"])
FLAVOR_247 = obj({"vcpus": INT, "ram": INT, "disk": INT, "ephemeral": INT,
                  "swap": INT, "original_name": STR,
                  "extra_specs": {"type": "object", "additionalProperties":
                                  STR}},
                 ["vcpus", "ram", "disk", "ephemeral", "swap",
                  "original_name", "extra_specs"])
# (field, since, until, schema, who): who is "all", "admin" (policy-only
# fields) or "full" (left out of the update body before 2.75)
SERVER = [
    ("accessIPv4", "2.1", None, STR, "all"),
    ("accessIPv6", "2.1", None, STR, "all"),
    ("addresses", "2.1", None, {"type": "object", "additionalProperties": {
        "type": "array", "items": ADDRESS}}, "all"),
    ("created", "2.1", None, STR, "all"),
    ("flavor", "2.1", "2.46", FLAVOR_REF, "all"),
    ("flavor", "2.47", None, FLAVOR_247, "all"),
    ("hostId", "2.1", None, STR, "all"),
    ("id", "2.1", None, STR, "all"),
    ("image", "2.1", None, obj({"id": STR, "links": LINKS},
                               ["id", "links"]), "all"),
    ("links", "2.1", None, LINKS, "all"),
    ("metadata", "2.1", None, {"type": "object"}, "all"),
    ("name", "2.1", None, STR, "all"),
    ("status", "2.1", None, STR, "all"),
    ("tenant_id", "2.1", None, STR, "all"),
    ("user_id", "2.1", None, STR, "all"),
    ("updated", "2.1", None, STR, "all"),
    ("progress", "2.1", None, INT, "all"),
    ("OS-DCF:diskConfig", "2.1", None, STR, "all"),
    ("OS-EXT-AZ:availability_zone", "2.1", None, STR, "full"),
    ("config_drive", "2.1", None, STR, "full"),
    ("key_name", "2.1", None, NSTR, "full"),
    ("OS-SRV-USG:launched_at", "2.1", None, NSTR, "full"),
    ("OS-SRV-USG:terminated_at", "2.1", None, NSTR, "full"),
    ("OS-EXT-STS:task_state", "2.1", None, NSTR, "full"),
    ("OS-EXT-STS:vm_state", "2.1", None, STR, "full"),
    ("OS-EXT-STS:power_state", "2.1", None, INT, "full"),
    ("security_groups", "2.1", None, {"type": "array", "items": obj(
        {"name": STR}, ["name"])}, "full"),
    ("os-extended-volumes:volumes_attached", "2.1", None,
     {"type": "array", "maxItems": 0}, "full"),
    ("OS-EXT-SRV-ATTR:host", "2.1", None, NSTR, "admin"),
    ("OS-EXT-SRV-ATTR:hypervisor_hostname", "2.1", None, NSTR, "admin"),
    ("OS-EXT-SRV-ATTR:instance_name", "2.1", None, STR, "admin"),
    ("OS-EXT-SRV-ATTR:hostname", "2.3", None, STR, "admin"),
    ("OS-EXT-SRV-ATTR:reservation_id", "2.3", None, STR, "admin"),
    ("OS-EXT-SRV-ATTR:launch_index", "2.3", None, INT, "admin"),
    ("OS-EXT-SRV-ATTR:kernel_id", "2.3", None, NSTR, "admin"),
    ("OS-EXT-SRV-ATTR:ramdisk_id", "2.3", None, NSTR, "admin"),
    ("OS-EXT-SRV-ATTR:root_device_name", "2.3", None, NSTR, "admin"),
    ("OS-EXT-SRV-ATTR:user_data", "2.3", None, NSTR, "admin"),
    ("locked", "2.9", None, BOOL, "all"),
    ("host_status", "2.16", None, STR, "admin"),
    ("description", "2.19", None, NSTR, "all"),
    ("tags", "2.26", None, {"type": "array", "items": STR}, "all"),
    ("trusted_image_certificates", "2.63", None, {"type": "null"}, "all"),
    ("server_groups", "2.71", None, {"type": "array", "maxItems": 0},
     "not-list"),
    ("locked_reason", "2.73", None, {"type": "null"}, "all"),
    ("OS-EXT-SRV-ATTR:hostname", "2.90", None, STR, "all"),
    ("pinned_availability_zone", "2.96", None, NSTR, "full"),
]


def server_schema(version: str, view: str, admin: bool) -> dict:
    """``view``: show, detail (an item of the list) or update."""
    props: dict = {}
    for name, since, until, schema, who in SERVER:
        if not v(since) <= v(version) <= v(until or "9.99"):
            continue
        if who == "admin" and not admin:
            continue
        if who == "not-list" and view == "detail":
            continue
        if view == "update" and v(version) < (2, 75) and (
                who in ("full", "admin")):
            continue
        props[name] = schema
    if view == "update" and v(version) < (2, 75):
        props["addresses"] = {"type": "object", "additionalProperties": {
            "type": "array", "items": BARE_ADDRESS}}
    return obj(props, props)


def _check(body, schema) -> None:
    jsonschema.Draft4Validator(schema).validate(body)


@pytest.fixture(scope="module")
def world():
    h = Harness()
    h.add_host("node1")
    # the bodies of many boots are checked, more than a default quota
    resp = h.request("PUT", "/v2.1/os-quota-sets/p1", {"quota_set": {
        "instances": -1, "cores": -1, "ram": -1}}, token="admin:adminproj")
    assert resp.status_int == 200, resp.text
    net = db_networks.create_network(h.db, "p1", "net1",
                                     db_networks.IpamSettings(), list)
    h.server = h.boot("web", version="2.37",
                      networks=[{"uuid": net["id"]}])["id"]
    return h


@pytest.mark.parametrize("version", BOUNDARIES)
@pytest.mark.parametrize("admin", [False, True])
def test_server_show_detail_update_index(world, version, admin):
    token = "admin:adminproj" if admin else "alice:p1"
    sid = world.server

    def call(method, path, body=None):
        resp = world.request(method, path, body, token=token,
                             version=version)
        assert resp.status_int == 200, resp.text
        return resp.json

    _check(call("GET", f"/v2.1/servers/{sid}")["server"],
           server_schema(version, "show", admin))
    listing = call("GET", "/v2.1/servers/detail" + (
        "?all_tenants=1" if admin else ""))
    assert set(listing) == {"servers"}
    for item in listing["servers"]:
        _check(item, server_schema(version, "detail", admin))
    updated = call("PUT", f"/v2.1/servers/{sid}",
                   {"server": {"name": "web"}})["server"]
    _check(updated, server_schema(version, "update", admin))
    brief = call("GET", "/v2.1/servers")
    _check(brief, obj({"servers": {"type": "array", "items": obj(
        {"id": STR, "name": STR, "links": LINKS},
        ["id", "name", "links"])}}, ["servers"]))


def test_embedded_flavor_and_hostname_values(world):
    resp = world.request("GET", f"/v2.1/servers/{world.server}",
                         version="2.96")
    server = resp.json["server"]
    assert server["flavor"] == {"vcpus": 1, "ram": 512, "disk": 1,
                                "ephemeral": 0, "swap": 0,
                                "original_name": "m1.small",
                                "extra_specs": {}}
    assert server["OS-EXT-SRV-ATTR:hostname"] == "web"
    assert server["server_groups"] == [] and server["locked_reason"] is None
    assert server["pinned_availability_zone"] is None
    assert server["trusted_image_certificates"] is None


@pytest.mark.parametrize("version", BOUNDARIES)
def test_server_create_body(world, version):
    resp = world.request("POST", "/v2.1/servers", {"server": {
        "name": "x", "imageRef": world.image["id"], "flavorRef": "1",
        "networks": "none"}} if v(version) >= (2, 37) else {"server": {
            "name": "x", "imageRef": world.image["id"], "flavorRef": "1"}},
        version=version)
    assert resp.status_int == 202, resp.text
    _check(resp.json, obj({"server": obj(
        {"id": STR, "links": LINKS, "OS-DCF:diskConfig": STR,
         "adminPass": STR}, ["id", "links", "OS-DCF:diskConfig",
                             "adminPass"])}, ["server"]))


FLAVOR = [
    ("id", "2.1", STR), ("name", "2.1", STR), ("ram", "2.1", INT),
    ("disk", "2.1", INT), ("vcpus", "2.1", INT), ("links", "2.1", LINKS),
    ("OS-FLV-DISABLED:disabled", "2.1", BOOL),
    ("OS-FLV-EXT-DATA:ephemeral", "2.1", INT),
    ("os-flavor-access:is_public", "2.1", BOOL),
    ("rxtx_factor", "2.1", {"type": "number"}),
    ("swap", "2.1", {"enum": [""]}),
    ("description", "2.55", NSTR),
    ("extra_specs", "2.61", {"type": "object"}),
    ("swap", "2.75", INT),
]


def flavor_schema(version: str, brief: bool = False) -> dict:
    props = {name: schema for name, since, schema in FLAVOR
             if v(since) <= v(version)
             and (not brief or name in ("id", "name", "links",
                                        "description"))}
    return obj(props, props)


@pytest.mark.parametrize("version", BOUNDARIES)
def test_flavor_bodies(version):
    h = Harness()
    full, brief = flavor_schema(version), flavor_schema(version, True)
    resp = h.request("GET", "/v2.1/flavors/1", version=version)
    _check(resp.json, obj({"flavor": full}, ["flavor"]))
    resp = h.request("GET", "/v2.1/flavors/detail", version=version)
    _check(resp.json, obj({"flavors": {"type": "array", "items": full}},
                          ["flavors"]))
    resp = h.request("GET", "/v2.1/flavors", version=version)
    _check(resp.json, obj({"flavors": {"type": "array", "items": brief}},
                          ["flavors"]))
    body = {"flavor": {"name": "new", "ram": 64, "vcpus": 1, "disk": 0}}
    if v(version) >= (2, 55):
        body["flavor"]["description"] = "small"
    resp = h.admin("POST", "/v2.1/flavors", body, version=version)
    assert resp.status_int == 200, resp.text
    _check(resp.json, obj({"flavor": full}, ["flavor"]))


def test_flavor_description_update_and_specs():
    h = Harness()
    body = {"flavor": {"description": "tiny one"}}
    assert h.admin("PUT", "/v2.1/flavors/1", body,
                   version="2.54").status_int == 404
    assert h.request("PUT", "/v2.1/flavors/1", body,
                     version="2.55").status_int == 403
    for bad in ({"flavor": {}}, {"flavor": {"description": 5}},
                {"flavor": {"description": "x", "name": "y"}}, {}):
        assert h.admin("PUT", "/v2.1/flavors/1", bad,
                       version="2.55").status_int == 400, bad
    resp = h.admin("PUT", "/v2.1/flavors/1", body, version="2.61")
    assert resp.status_int == 200
    assert resp.json["flavor"]["description"] == "tiny one"
    assert resp.json["flavor"]["extra_specs"] == {}
    assert h.admin("PUT", "/v2.1/flavors/nosuch", body,
                   version="2.55").status_int == 404
    resp = h.request("GET", "/v2.1/flavors/1", version="2.55")
    assert resp.json["flavor"]["description"] == "tiny one"


def keypair_schemas(version: str, generated: bool) -> tuple[dict, ...]:
    base = {"name": STR, "public_key": STR, "fingerprint": STR}
    if v(version) >= (2, 2):
        base["type"] = {"enum": ["ssh", "x509"]}
    created = dict(base, user_id=STR)
    if generated:
        created["private_key"] = STR
    shown = dict(base, user_id=STR, id=INT, deleted=BOOL, created_at=STR,
                 updated_at=NSTR, deleted_at={"type": "null"})
    listing = {"keypairs": {"type": "array", "items": obj(
        {"keypair": obj(base, base)}, ["keypair"])}}
    if v(version) >= (2, 35):
        listing["keypairs_links"] = LINKS
    return (obj({"keypair": obj(created, created)}, ["keypair"]),
            obj({"keypair": obj(shown, shown)}, ["keypair"]),
            obj(listing, ["keypairs"]))


PUBLIC = ("ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIDa2f7JY1pUz6v4zv3hQvqg5QhH"
          "0xjzXJZf8b3Q2bq8p test@host")


@pytest.mark.parametrize("version", BOUNDARIES)
def test_keypair_bodies(version):
    h = Harness()
    generate = v(version) < (2, 92)
    created_s, shown_s, listing_s = keypair_schemas(version, generate)
    body: dict = {"keypair": {"name": "k1"}}
    if not generate:
        body["keypair"]["public_key"] = PUBLIC
    resp = h.request("POST", "/v2.1/os-keypairs", body, version=version)
    assert resp.status_int == (201 if v(version) >= (2, 2) else 200), \
        resp.text
    _check(resp.json, created_s)
    _check(h.request("GET", "/v2.1/os-keypairs/k1",
                     version=version).json, shown_s)
    _check(h.request("GET", "/v2.1/os-keypairs?limit=1",
                     version=version).json, listing_s)
    resp = h.request("DELETE", "/v2.1/os-keypairs/k1", version=version)
    assert resp.status_int == (204 if v(version) >= (2, 2) else 202)


def test_keypair_292_imports_only_and_allows_at_and_dot():
    h = Harness()
    resp = h.request("POST", "/v2.1/os-keypairs",
                     {"keypair": {"name": "k"}}, version="2.92")
    assert resp.status_int == 400
    assert "'public_key' is a required property" in resp.text
    assert h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "me@host.x", "public_key": PUBLIC}},
        version="2.91").status_int == 400
    assert h.request("POST", "/v2.1/os-keypairs", {"keypair": {
        "name": "me@host.x", "public_key": PUBLIC}},
        version="2.92").status_int == 201
    assert h.request("GET", "/v2.1/os-keypairs?foo=1",
                     version="2.75").status_int == 400
    assert h.request("GET", "/v2.1/os-keypairs?foo=1",
                     version="2.74").status_int == 200


def test_keypair_next_link_is_url_encoded():
    h = Harness()
    for name in ("a b", "c d"):
        h.request("POST", "/v2.1/os-keypairs", {"keypair": {
            "name": name, "public_key": PUBLIC}}, version="2.92")
    resp = h.request("GET", "/v2.1/os-keypairs?limit=1", version="2.35")
    href = resp.json["keypairs_links"][0]["href"]
    assert href.endswith("os-keypairs?limit=1&marker=a+b")
    resp = h.request("GET", "/v2.1/os-keypairs?limit=1&marker=a+b",
                     version="2.35")
    assert [k["keypair"]["name"] for k in resp.json["keypairs"]] == ["c d"]


def test_every_boundary_is_within_the_advertised_range():
    assert microversion.MAX_VERSION == (2, 96)
    assert max(v(b) for b in BOUNDARIES) == microversion.MAX_VERSION
    assert copy.deepcopy(BOUNDARIES) == sorted(BOUNDARIES, key=v)


def _flavor_pages(h: Harness, query: str, version: str = "2.96"
                  ) -> list[list[str]]:
    pages, path = [], "/v2.1/flavors?" + query
    while path:
        resp = h.request("GET", path, version=version)
        assert resp.status_int == 200, resp.text
        pages.append([f["name"] for f in resp.json["flavors"]])
        links = resp.json.get("flavors_links")
        path = links[0]["href"].split("localhost", 1)[1] if links else None
        assert len(pages) < 10
    return pages


def test_flavor_sort_keys_paging_and_query_checks():
    h = Harness()
    for name, ram, fid in (("a&b", 1024, "7"), ("a&c", 256, "8")):
        h.admin("POST", "/v2.1/flavors", {"flavor": {
            "name": name, "ram": ram, "vcpus": 1, "disk": 0, "id": fid}})
    assert _flavor_pages(h, "sort_key=memory_mb&sort_dir=desc&limit=2") == [
        ["a&b", "m1.small"], ["a&c"]]
    assert _flavor_pages(h, "sort_key=name&limit=1&minRam=300") == [
        ["a&b"], ["m1.small"], []]
    resp = h.request("GET", "/v2.1/flavors?minRam=300&limit=1")
    assert "minRam=300&limit=1&marker=1" in resp.json[
        "flavors_links"][0]["href"]
    for query in ("sort_key=nosuch", "sort_dir=up", "marker=nosuch",
                  "limit=-1"):
        resp = h.request("GET", "/v2.1/flavors?" + query)
        assert resp.status_int == 400, query
    assert h.request("GET", "/v2.1/flavors?foo=1",
                     version="2.74").status_int == 200
    resp = h.request("GET", "/v2.1/flavors/detail?foo=1", version="2.75")
    assert resp.status_int == 400
    assert "'foo' was unexpected" in resp.text


def test_image_next_link_is_url_encoded():
    h = Harness()
    for _ in range(2):
        images.register_image(h.db, "a&b", "/nonexistent",
                              {"disk_format": "raw"})
    resp = h.request("GET", "/image/v2/images?name=a%26b&limit=1")
    assert resp.status_int == 200, resp.text
    nxt = resp.json["next"]
    assert nxt.startswith("/v2/images?name=a%26b&limit=1&marker=")
    resp = h.request("GET", "/image" + nxt)
    assert [i["name"] for i in resp.json["images"]] == ["a&b"]


def test_disabled_flavors_listed_for_admins_only():
    h = Harness()
    with h.db.session() as session:
        session.query(models.Flavor).update({"disabled": True})
    assert h.request("GET", "/v2.1/flavors").json["flavors"] == []
    listed = h.admin("GET", "/v2.1/flavors/detail").json["flavors"]
    assert [(f["id"], f["OS-FLV-DISABLED:disabled"]) for f in listed] == [
        ("1", True)]
