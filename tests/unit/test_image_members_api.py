"""Glance's image members API: who may list, add, change and remove.

The catalogue of test_image_visibility (projA's images; the shared one
with members projP pending, projAcc accepted, projR rejected). Every
route is tried by the owner, a member, another member, a stranger and an
admin, with Glance's status codes and messages.
"""

from __future__ import annotations

import pytest

from tests.unit.test_image_visibility import (ACCEPTED, ADMIN, JSON, OWNER,
                                              PENDING, REJECTED, STRANGER,
                                              World)


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def _members(world: World, vis: str = "shared") -> str:
    return f"/image/v2/images/{world.ids[vis]}/members"


def _call(world: World, method: str, path: str, token: str, body=None,
          raw: bytes | None = None):
    return world.h.request(method, path, body, token=token, raw=raw,
                           headers=JSON)


def _message(resp) -> str:
    return resp.json["message"].split("<br />")[0]


def _statuses(resp) -> dict[str, str]:
    assert resp.status_int == 200, resp.text
    assert resp.json["schema"] == "/v2/schemas/members"
    return {m["member_id"]: m["status"] for m in resp.json["members"]}


ALL = {"projP": "pending", "projAcc": "accepted", "projR": "rejected"}


@pytest.mark.parametrize("token,expected", [
    (OWNER, ALL), (ADMIN, ALL),
    # a member reads only its own membership
    (PENDING, {"projP": "pending"}), (ACCEPTED, {"projAcc": "accepted"}),
    (REJECTED, {"projR": "rejected"}),
])
def test_member_list(world, token, expected):
    assert _statuses(_call(world, "GET", _members(world), token)) == \
        expected


def test_member_list_refusals(world):
    image_id = world.ids["shared"]
    resp = _call(world, "GET", _members(world), STRANGER)
    assert resp.status_int == 404
    assert _message(resp) == f"Image {image_id} not found."
    for vis, token in (("private", OWNER), ("public", STRANGER),
                       ("community", STRANGER), ("public", ADMIN)):
        resp = _call(world, "GET", _members(world, vis), token)
        assert resp.status_int == 403, (vis, token)
        assert _message(resp) == (
            f"Not allowed to list members for image {world.ids[vis]}: "
            "Only shared images have members.")
    resp = _call(world, "GET", _members(world, "private"), STRANGER)
    assert resp.status_int == 404


def test_member_show(world):
    image_id = world.ids["shared"]
    shown = _call(world, "GET", _members(world) + "/projP", OWNER).json
    assert set(shown) == {"member_id", "image_id", "status", "created_at",
                          "updated_at", "schema"}
    assert (shown["member_id"], shown["image_id"], shown["status"]) == (
        "projP", image_id, "pending")
    assert shown["created_at"].endswith("Z")
    assert _call(world, "GET", _members(world) + "/projP",
                 PENDING).json["status"] == "pending"
    assert _call(world, "GET", _members(world) + "/projR",
                 ADMIN).json["status"] == "rejected"
    # another member's row, an unknown member, a stranger, not shared
    for token, member in ((PENDING, "projAcc"), (OWNER, "projB")):
        resp = _call(world, "GET", _members(world) + f"/{member}", token)
        assert resp.status_int == 404
        assert _message(resp) == (f"{member} not found in the member list "
                                  f"of the image {image_id}.")
    resp = _call(world, "GET", _members(world) + "/projB", STRANGER)
    assert resp.status_int == 404
    assert _message(resp) == f"Image {image_id} not found."
    resp = _call(world, "GET", _members(world, "public") + "/projP", OWNER)
    assert resp.status_int == 404
    assert _message(resp) == "Only shared images have members."


def test_owner_and_admin_add_members(world):
    image_id = world.ids["shared"]
    resp = _call(world, "POST", _members(world), OWNER, {"member": "projB"})
    assert resp.status_int == 200, resp.text
    assert (resp.json["member_id"], resp.json["status"]) == (
        "projB", "pending")
    # now projB may show and boot it, but it lists only once accepted
    assert world.h.request("GET", f"/image/v2/images/{image_id}",
                           token=STRANGER).status_int == 200
    assert world.boot(STRANGER, image_id).status_int == 202
    assert "shared" not in world.listed(STRANGER)
    dup = _call(world, "POST", _members(world), OWNER, {"member": "projB"})
    assert dup.status_int == 409
    assert _message(dup) == f"Member projB is duplicated for image {image_id}"
    resp = _call(world, "POST", _members(world), ADMIN, {"member": "projC"})
    assert resp.status_int == 200
    assert set(_statuses(_call(world, "GET", _members(world), OWNER))) == {
        "projP", "projAcc", "projR", "projB", "projC"}


def test_add_member_refusals(world):
    image_id = world.ids["shared"]
    resp = _call(world, "POST", _members(world), ACCEPTED,
                 {"member": "projB"})
    assert resp.status_int == 403
    assert _message(resp) == \
        "You are not authorized to complete add_member action."
    resp = _call(world, "POST", _members(world), STRANGER,
                 {"member": "projB"})
    assert resp.status_int == 404
    assert _message(resp) == f"Image {image_id} not found."
    for vis in ("private", "public", "community"):
        resp = _call(world, "POST", _members(world, vis), OWNER,
                     {"member": "projB"})
        assert resp.status_int == 403, vis
        assert _message(resp) == ("Not allowed to create members for image "
                                  f"{world.ids[vis]}.")
    # projB got nowhere
    assert world.listed(STRANGER, "?member_status=all") == {"public",
                                                            "cirros"}
    for vis in ("private", "shared"):
        assert world.boot(STRANGER, world.ids[vis]).status_int == 400


@pytest.mark.parametrize("raw,message", [
    (b"", "Body expected in request."),
    (b"{", "Malformed JSON in request body."),
    (b"{}", "Member to be added not specified"),
    (b'{"member": ""}', "Member can't be empty"),
    (b'["projB"]', 'Expected a member in the form: {"member": "image_id"}'),
])
def test_add_member_bad_bodies(world, raw, message):
    resp = _call(world, "POST", _members(world), OWNER, raw=raw)
    assert resp.status_int == 400
    assert _message(resp) == message


def test_member_quota(tmp_path):
    world = World(tmp_path, api__image_member_quota=3)
    resp = _call(world, "POST", _members(world), OWNER, {"member": "projB"})
    assert resp.status_int == 413
    assert _message(resp) == (
        f"Image member limit exceeded for image {world.ids['shared']}: The "
        "limit has been exceeded on the number of allowed image members "
        "for this image. Attempted: 4, Maximum: 3:")


def test_member_sets_its_own_status(world):
    base = _members(world)
    resp = _call(world, "PUT", base + "/projP", PENDING,
                 {"status": "accepted"})
    assert resp.status_int == 200 and resp.json["status"] == "accepted"
    assert "shared" in world.listed(PENDING)
    resp = _call(world, "PUT", base + "/projAcc", ACCEPTED,
                 {"status": "rejected"})
    assert resp.json["status"] == "rejected"
    assert "shared" not in world.listed(ACCEPTED)
    # rejected still shows and boots by id, as in Glance
    assert world.boot(ACCEPTED, world.ids["shared"]).status_int == 202
    assert _call(world, "PUT", base + "/projR", ADMIN,
                 {"status": "pending"}).json["status"] == "pending"


def test_member_status_refusals(world):
    base, image_id = _members(world), world.ids["shared"]
    resp = _call(world, "PUT", base + "/projP", OWNER,
                 {"status": "accepted"})
    assert resp.status_int == 403
    assert _message(resp) == \
        "You are not authorized to complete modify_member action."
    resp = _call(world, "PUT", base + "/projP", ACCEPTED,
                 {"status": "accepted"})
    assert resp.status_int == 404
    assert _message(resp) == (f"projP not found in the member list of the "
                              f"image {image_id}.")
    resp = _call(world, "PUT", base + "/projB", STRANGER,
                 {"status": "accepted"})
    assert resp.status_int == 404
    assert _message(resp) == f"Image {image_id} not found."
    resp = _call(world, "PUT", base + "/projP", PENDING, {"status": "yes"})
    assert resp.status_int == 400
    assert _message(resp) == ('Incorrect request: Status must be "pending",'
                              ' "accepted" or "rejected".')
    resp = _call(world, "PUT", base + "/projP", PENDING, {"state": "x"})
    assert resp.status_int == 400
    assert _message(resp) == "Status not specified"
    assert _statuses(_call(world, "GET", base, OWNER)) == ALL
    resp = _call(world, "PUT", _members(world, "public") + "/projP", OWNER,
                 {"status": "accepted"})
    assert resp.status_int == 403
    assert _message(resp) == ("Not allowed to update members for image "
                              f"{world.ids['public']}.")


def test_member_removal(world):
    base, image_id = _members(world), world.ids["shared"]
    resp = _call(world, "DELETE", base + "/projP", PENDING)
    assert resp.status_int == 403
    assert _message(resp) == \
        "You are not authorized to complete delete_member action."
    resp = _call(world, "DELETE", base + "/projP", ACCEPTED)
    assert resp.status_int == 404
    resp = _call(world, "DELETE", base + "/projP", STRANGER)
    assert resp.status_int == 404
    assert _message(resp) == f"Image {image_id} not found."
    resp = _call(world, "DELETE", _members(world, "public") + "/projP",
                 OWNER)
    assert resp.status_int == 403
    assert _message(resp) == ("Not allowed to delete members for image "
                              f"{world.ids['public']}.")
    resp = _call(world, "DELETE", base + "/projP", OWNER)
    assert resp.status_int == 204 and resp.body == b""
    # projP lost the image
    assert world.h.request("GET", f"/image/v2/images/{image_id}",
                           token=PENDING).status_int == 404
    assert world.boot(PENDING, image_id).status_int == 400
    assert _call(world, "DELETE", base + "/projAcc", ADMIN).status_int == 204
    assert _call(world, "DELETE", base + "/projAcc", OWNER).status_int == 404
    assert _statuses(_call(world, "GET", base, OWNER)) == {
        "projR": "rejected"}


def test_members_count_only_while_shared(world):
    """Making a shared image private cuts its members off (their rows stay,
    as in Glance); sharing it again lets them back."""
    image_id = world.ids["shared"]
    patch = {"Content-Type": "application/openstack-images-v2.1-json-patch",
             "Accept": "application/json"}

    def visibility(value: str) -> None:
        resp = world.h.request(
            "PATCH", f"/image/v2/images/{image_id}", token=OWNER,
            raw=f'[{{"op": "replace", "path": "/visibility", '
                f'"value": "{value}"}}]'.encode(), headers=patch)
        assert resp.status_int == 200, resp.text

    visibility("private")
    for token in (PENDING, ACCEPTED, REJECTED):
        assert world.h.request("GET", f"/image/v2/images/{image_id}",
                               token=token).status_int == 404
        assert world.boot(token, image_id).status_int == 400
    assert "shared" not in world.listed(ACCEPTED)
    visibility("shared")
    assert "shared" in world.listed(ACCEPTED)
    assert world.boot(PENDING, image_id).status_int == 202
