"""Glance's image PATCH: what ``openstack image set`` sends.

Visibility changes by the owner (public only by an admin), name, minimums
and custom properties, with Glance's answers for bodies it refuses and for
callers who may not change (403) or not even see (404) the image.
"""

from __future__ import annotations

import json

import pytest

from tests.unit.test_image_visibility import (ACCEPTED, ADMIN, OWNER,
                                              STRANGER, World)

V21 = "application/openstack-images-v2.1-json-patch"
V20 = "application/openstack-images-v2.0-json-patch"


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def _patch(world: World, vis: str, token: str, ops, ctype: str = V21):
    raw = ops if isinstance(ops, bytes) else json.dumps(ops).encode()
    return world.h.request(
        "PATCH", f"/image/v2/images/{world.ids[vis]}", token=token, raw=raw,
        headers={"Content-Type": ctype, "Accept": "application/json"})


def _replace(path: str, value) -> dict:
    return {"op": "replace", "path": path, "value": value}


def _message(resp) -> str:
    return resp.json["message"].split("<br />")[0]


def _show(world: World, vis: str, token: str = ADMIN) -> dict:
    return world.h.request("GET", f"/image/v2/images/{world.ids[vis]}",
                           token=token).json


def test_owner_moves_through_visibilities(world):
    """``image set --shared/--community/--private`` by the owner; each
    step changes who may see the image."""
    for value, stranger_sees in (("shared", False), ("community", True),
                                 ("private", False)):
        resp = _patch(world, "private", OWNER,
                      [_replace("/visibility", value)])
        assert resp.status_int == 200, resp.text
        assert resp.json["visibility"] == value
        shown = world.h.request(
            "GET", f"/image/v2/images/{world.ids['private']}",
            token=STRANGER)
        assert (shown.status_int == 200) is stranger_sees, value
        assert (world.boot(STRANGER, world.ids["private"]).status_int
                == 202) is stranger_sees


def test_publicize_is_admin_only(world):
    resp = _patch(world, "private", OWNER, [_replace("/visibility",
                                                     "public")])
    assert resp.status_int == 403
    assert _message(resp) == \
        "You are not authorized to complete publicize_image action."
    assert _show(world, "private")["visibility"] == "private"
    resp = _patch(world, "private", ADMIN, [_replace("/visibility",
                                                     "public")])
    assert resp.status_int == 200
    assert world.h.request(
        "GET", f"/image/v2/images/{world.ids['private']}",
        token=STRANGER).status_int == 200


@pytest.mark.parametrize("vis,token,ops,code,message", [
    # cannot see it: 404, whatever the change
    ("private", STRANGER, [_replace("/name", "x")], 404,
     "No image found with ID {id}"),
    ("private", STRANGER, [_replace("/visibility", "public")], 404,
     "No image found with ID {id}"),
    ("shared", STRANGER, [_replace("/visibility", "private")], 404,
     "No image found with ID {id}"),
    # sees it but does not own it: 403
    ("shared", ACCEPTED, [_replace("/name", "x")], 403,
     "You are not authorized to complete modify_image action."),
    ("shared", ACCEPTED, [_replace("/visibility", "private")], 403,
     "You are not authorized to complete modify_image action."),
    ("public", STRANGER, [_replace("/visibility", "private")], 403,
     "You are not authorized to complete modify_image action."),
    ("public", STRANGER, [_replace("/visibility", "community")], 403,
     "You are not authorized to complete communitize_image action."),
    ("community", STRANGER, [{"op": "add", "path": "/os_command_line",
                              "value": "/bin/evil"}], 403,
     "You are not authorized to complete modify_image action."),
    ("cirros", STRANGER, [_replace("/min_ram", 1)], 403,
     "You are not authorized to complete modify_image action."),
    ("private", OWNER, [_replace("/owner", "projB")], 403,
     "Owner can't be updated by non admin."),
])
def test_refused_changes(world, vis, token, ops, code, message):
    before = _show(world, vis)
    resp = _patch(world, vis, token, ops)
    assert resp.status_int == code, resp.text
    assert _message(resp) == message.format(id=world.ids[vis])
    assert _show(world, vis) == before


def test_owner_sets_name_minimums_and_properties(world):
    resp = _patch(world, "private", OWNER, [
        _replace("/name", "renamed"), _replace("/min_disk", 2),
        _replace("/min_ram", 256),
        {"op": "add", "path": "/os_distro", "value": "debian"},
        {"op": "add", "path": "/hw~1mode", "value": "x"}])
    assert resp.status_int == 200, resp.text
    body = resp.json
    assert (body["name"], body["min_disk"], body["min_ram"]) == (
        "renamed", 2, 256)
    assert body["os_distro"] == "debian" and body["hw/mode"] == "x"
    resp = _patch(world, "private", OWNER, [
        _replace("/os_distro", "ubuntu"),
        {"op": "remove", "path": "/hw~1mode"}])
    assert resp.status_int == 200
    assert resp.json["os_distro"] == "ubuntu" and "hw/mode" not in resp.json
    # v2.1 add of an existing property replaces it
    resp = _patch(world, "private", OWNER, [
        {"op": "add", "path": "/os_distro", "value": "arch"}])
    assert resp.json["os_distro"] == "arch"
    # the boot path honours the new minimum (m1.small has 512 MiB)
    _patch(world, "private", OWNER, [_replace("/min_ram", 1024)])
    boot = world.boot(OWNER, world.ids["private"])
    assert boot.status_int == 400
    assert boot.json["badRequest"]["message"] == \
        "Flavor's memory is too small for requested image."


def test_admin_changes_owner(world):
    resp = _patch(world, "private", ADMIN, [_replace("/owner", "projB")])
    assert resp.status_int == 200 and resp.json["owner"] == "projB"
    assert world.h.request(
        "GET", f"/image/v2/images/{world.ids['private']}",
        token=OWNER).status_int == 404
    assert "private" in world.listed(STRANGER)


def test_draft4_form(world):
    resp = _patch(world, "private", OWNER,
                  [{"replace": "/name", "value": "d4"},
                   {"add": "/k", "value": "v"}], ctype=V20)
    assert resp.status_int == 200, resp.text
    assert (resp.json["name"], resp.json["k"]) == ("d4", "v")
    resp = _patch(world, "private", OWNER, [{"add": "/k", "value": "w"}],
                  ctype=V20)
    assert resp.status_int == 409
    assert _message(resp) == "Property k already present."


@pytest.mark.parametrize("ops,code,message", [
    (b"", 400, "Body expected in request."),
    (b"[", 400, "Malformed JSON in request body."),
    ({"op": "replace"}, 400,
     "Request body must be a JSON array of operation objects."),
    (["x"], 400, "Operations must be JSON objects."),
    ([{"path": "/name", "value": "x"}], 400,
     "Unable to find `op` in JSON Schema change. It must be one of the "
     "following: add, remove, replace."),
    ([{"op": "move", "path": "/name", "value": "x"}], 400,
     "Invalid operation: `move`. It must be one of the following: add, "
     "remove, replace."),
    ([{"op": "replace", "value": "x"}], 400,
     "Unable to find 'path' in JSON Schema change"),
    ([{"op": "replace", "path": "name", "value": "x"}], 400,
     'Pointer `name` does not start with "/".'),
    ([{"op": "replace", "path": "/a/b", "value": "x"}], 400,
     "Invalid JSON pointer for this resource: '/a/b'"),
    ([{"op": "replace", "path": "/name"}], 400,
     'Operation "replace" requires a member named "value".'),
    ([_replace("/min_ram", "lots")], 400,
     "Provided object does not match schema 'image': 'lots' is not of "
     "type 'integer'"),
    ([_replace("/min_ram", -1)], 400,
     "Invalid value '-1' for parameter 'min_ram': Cannot be a negative "
     "value"),
    ([_replace("/min_disk", 2 ** 31)], 400,
     "'min_disk' value out of range, must not exceed 2147483647."),
    ([_replace("/visibility", "everyone")], 400,
     "Provided object does not match schema 'image': 'everyone' is not "
     "one of ['community', 'public', 'private', 'shared']"),
    ([_replace("/name", "n" * 256)], 400,
     "Provided object does not match schema 'image': '" + "n" * 256
     + "' is too long"),
    ([{"op": "add", "path": "/k", "value": 5}], 400,
     "Provided object does not match schema 'image': 5 is not of type "
     "'string'"),
    ([_replace("/status", "active")], 403, "Attribute 'status' is "
     "read-only."),
    ([_replace("/os_hash_value", "x")], 403, "Attribute 'os_hash_value' "
     "is read-only."),
    ([_replace("/protected", "yes")], 400, "Provided object does not "
     "match schema 'image': 'yes' is not of type 'boolean'"),
    ([_replace("/location", "/etc/shadow")], 403,
     "Attribute 'location' is reserved."),
    ([_replace("/os_glance_import_task", "x")], 403,
     "Attribute 'os_glance_import_task' is reserved."),
    ([_replace("/disk_format", "qcow2")], 403,
     "Attribute disk_format can be only replaced for a queued image."),
    ([{"op": "remove", "path": "/name"}], 403,
     "Property name may not be removed."),
    ([_replace("/nope", "x")], 409, "Property nope does not exist."),
    ([{"op": "remove", "path": "/nope"}], 409,
     "Property nope does not exist."),
    # a patch is all or nothing
    ([_replace("/name", "half"), _replace("/nope", "x")], 409,
     "Property nope does not exist."),
])
def test_bad_patches(world, ops, code, message):
    before = _show(world, "private")
    resp = _patch(world, "private", OWNER, ops)
    assert resp.status_int == code, resp.text
    assert _message(resp) == message
    assert _show(world, "private") == before


def test_wrong_content_type_is_415(world):
    resp = _patch(world, "private", OWNER, [_replace("/name", "x")],
                  ctype="application/json")
    assert resp.status_int == 415
    assert resp.headers["Accept-Patch"] == f"{V20}, {V21}"
    assert resp.json["message"].endswith(
        f"Image PATCH expects Content-Type one of: {V20}, {V21}")
    assert _show(world, "private")["name"] == "private"
