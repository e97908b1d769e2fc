"""Glance's image visibility enforced on list, show, download and boot.

One catalogue for every test: project ``projA`` owns a private, a shared,
a community and a public image; the shared one has members ``projP``
(pending), ``projAcc`` (accepted) and ``projR`` (rejected); ``projB`` is
a stranger and ``admin`` (project ``adminproj``) an admin. Each caller ×
image × operation is checked against Glance's model (the issue's attack
itself is in test_image_private_attack.py).
"""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from pyct_driver import exception
from pyct_driver.api import images
from pyct_driver.db import catalog, image_access, image_members, models
from pyct_driver.db.engine import Database
from tests.unit.test_api_app import Harness

JSON = {"Accept": "application/json"}
OWNER, STRANGER = "u:projA", "u:projB"
PENDING, ACCEPTED, REJECTED = "u:projP", "u:projAcc", "u:projR"
ADMIN = "admin:adminproj"
CALLERS = {"owner": OWNER, "stranger": STRANGER, "pending": PENDING,
           "accepted": ACCEPTED, "rejected": REJECTED, "admin": ADMIN}

# who may show, download and boot each image (any member status counts)
SEES = {
    "private": {"owner", "admin"},
    "shared": {"owner", "admin", "pending", "accepted", "rejected"},
    "community": set(CALLERS),
    "public": set(CALLERS),
}
# the default list: community only for its owner, shared only to accepted
LISTS = {
    "owner": {"private", "shared", "community", "public", "cirros"},
    "stranger": {"public", "cirros"},
    "pending": {"public", "cirros"},
    "accepted": {"shared", "public", "cirros"},
    "rejected": {"public", "cirros"},
    "admin": {"private", "shared", "public", "cirros"},
}


class World:
    def __init__(self, tmp_path, **conf) -> None:
        self.h = Harness(**conf)
        self.h.add_host()
        self.ids: dict[str, str] = {}
        self.data: dict[str, bytes] = {}
        for vis in ("private", "shared", "community", "public"):
            path = tmp_path / f"{vis}.img"
            self.data[vis] = f"{vis} image bytes\n".encode() * 100
            path.write_bytes(self.data[vis])
            self.ids[vis] = images.register_image(
                self.h.db, vis, str(path),
                {"visibility": vis, "owner": "projA"})["id"]
        self.ids["cirros"] = self.h.image["id"]
        for project, status in (("projP", "pending"),
                                ("projAcc", "accepted"),
                                ("projR", "rejected")):
            image_members.member_create(self.h.db, self.ids["shared"],
                                        project, 128)
            image_members.member_set_status(self.h.db, self.ids["shared"],
                                            project, status)

    def listed(self, token: str, query: str = "") -> set[str]:
        resp = self.h.request("GET", "/image/v2/images" + query,
                              token=token, headers=JSON)
        assert resp.status_int == 200, resp.text
        by_id = {v: k for k, v in self.ids.items()}
        return {by_id[i["id"]] for i in resp.json["images"]}

    def boot(self, token: str, image_id: str):
        return self.h.request("POST", "/v2.1/servers", {"server": {
            "name": "vm", "imageRef": image_id, "flavorRef": "1",
            "networks": "none"}}, token=token, version="2.37")

    def rows(self, model) -> int:
        with self.h.db.session() as session:
            return len(session.query(model).all())


@pytest.fixture
def world(tmp_path) -> World:
    return World(tmp_path)


def _assert_glance_404(resp, image_id: str, data: bytes = b"") -> None:
    assert resp.status_int == 404, resp.text
    assert resp.json == {
        "message": f"No image found with ID {image_id}<br /><br />\n\n\n",
        "code": "404 Not Found", "title": "Not Found"}
    if data:
        assert data[:20] not in resp.body


@pytest.mark.parametrize("caller", sorted(CALLERS))
def test_default_list(world, caller):
    assert world.listed(CALLERS[caller]) == LISTS[caller]


@pytest.mark.parametrize("caller", sorted(CALLERS))
@pytest.mark.parametrize("vis", sorted(SEES))
def test_show_download_boot(world, caller, vis):
    token, image_id = CALLERS[caller], world.ids[vis]
    show = world.h.request("GET", f"/image/v2/images/{image_id}",
                           token=token, headers=JSON)
    data = world.h.request("GET", f"/image/v2/images/{image_id}/file",
                           token=token, headers=JSON)
    boot = world.boot(token, image_id)
    if caller in SEES[vis]:
        assert show.status_int == 200, show.text
        assert (show.json["visibility"], show.json["owner"]) == (
            vis, "projA")
        assert data.status_int == 200, data.text
        assert data.content_type == "application/octet-stream"
        assert data.body == world.data[vis]
        assert data.headers["Content-MD5"] == show.json["checksum"]
        assert boot.status_int == 202, boot.text
    else:
        _assert_glance_404(show, image_id)
        _assert_glance_404(data, image_id, world.data[vis])
        assert boot.status_int == 400
        assert boot.json["badRequest"]["message"] == \
            "Can not find requested image"
        assert world.rows(models.Instance) == 0


@pytest.mark.parametrize("caller,query,expected", [
    # community images only when asked for (or the owner's own)
    ("stranger", "?visibility=community", {"community"}),
    ("admin", "?visibility=community", {"community"}),
    ("stranger", "?visibility=all", {"public", "cirros", "community"}),
    ("admin", "?visibility=all", {"private", "shared", "community",
                                  "public", "cirros"}),
    ("owner", "?visibility=private", {"private"}),
    ("stranger", "?visibility=private", set()),
    ("admin", "?visibility=private", {"private"}),
    ("owner", "?visibility=shared", {"shared"}),
    ("stranger", "?visibility=shared", set()),
    ("admin", "?visibility=shared", {"shared"}),
    # member_status picks which memberships list the shared image
    ("accepted", "?visibility=shared", {"shared"}),
    ("pending", "?visibility=shared", set()),
    ("pending", "?member_status=pending", {"public", "cirros", "shared"}),
    ("pending", "?member_status=all", {"public", "cirros", "shared"}),
    ("pending", "?member_status=accepted", {"public", "cirros"}),
    ("rejected", "?member_status=rejected", {"public", "cirros",
                                             "shared"}),
    ("accepted", "?member_status=pending", {"public", "cirros"}),
    ("stranger", "?member_status=all", {"public", "cirros"}),
    # admins see every member status without asking
    ("admin", "?member_status=pending", {"private", "shared", "public",
                                         "cirros"}),
    # owner filter on top of visibility
    ("stranger", "?owner=projA", {"public"}),
    ("stranger", "?owner=projA&visibility=community", {"community"}),
    ("owner", "?owner=projA", {"private", "shared", "community",
                               "public"}),
])
def test_list_filters(world, caller, query, expected):
    assert world.listed(CALLERS[caller], query) == expected


@pytest.mark.parametrize("query,message", [
    ("?visibility=secret", "Invalid visibility value: secret"),
    ("?member_status=maybe", "Invalid status: maybe"),
])
def test_list_bad_filters_are_glance_400s(world, query, message):
    resp = world.h.request("GET", "/image/v2/images" + query,
                           token=STRANGER, headers=JSON)
    assert resp.status_int == 400
    assert resp.json["message"].startswith(message + "<br />")


def test_marker_of_an_invisible_image_is_unknown(world):
    """Paging from an image one may not see answers exactly as from a
    missing id, so it tells nothing about it."""
    for marker in (world.ids["private"], "no-such-image"):
        resp = world.h.request("GET", f"/image/v2/images?marker={marker}",
                               token=STRANGER, headers=JSON)
        assert resp.status_int == 400
        assert resp.json["message"].startswith(
            f"No image found with ID {marker}<br />")
    page = world.h.request("GET", f"/image/v2/images?marker="
                           f"{world.ids['private']}", token=OWNER)
    assert page.status_int == 200


def test_download_without_data_is_204(world):
    resp = world.h.request("GET", f"/image/v2/images/{world.ids['cirros']}"
                           "/file", token=STRANGER)
    assert resp.status_int == 204 and resp.body == b""


def test_boot_by_block_device_mapping_is_gated_too(world):
    resp = world.h.request("POST", "/v2.1/servers", {"server": {
        "name": "vm", "flavorRef": "1", "networks": "none",
        "block_device_mapping_v2": [{
            "uuid": world.ids["private"], "source_type": "image",
            "destination_type": "local", "boot_index": 0}]}},
        token=STRANGER, version="2.37")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == \
        "Can not find requested image"
    assert world.rows(models.Instance) == 0


def test_project_image_helper_is_private_to_its_project(world):
    """What the snapshot path will call: the image belongs to the project
    and is private unless asked otherwise; the owner cannot be forged."""
    db = world.h.db
    snap = catalog.image_create_for_project(
        db, "projB", "snap", {"owner": "projA", "location": "/nonexistent"})
    assert (snap["owner"], snap["visibility"], snap["status"]) == (
        "projB", "private", "queued")
    assert "snap" not in {i["name"] for i in catalog.image_list(
        db, viewer=image_access.Viewer("projA"))}
    assert "snap" in {i["name"] for i in catalog.image_list(
        db, viewer=image_access.Viewer("projB"))}
    resp = world.h.request("GET", f"/image/v2/images/{snap['id']}",
                           token=OWNER)
    assert resp.status_int == 404
    shown = world.h.request("GET", f"/image/v2/images/{snap['id']}",
                            token=STRANGER).json
    assert (shown["owner"], shown["visibility"]) == ("projB", "private")
    # not bootable while queued, even by its own project
    resp = world.boot(STRANGER, snap["id"])
    assert resp.status_int == 400
    active = catalog.image_create_for_project(
        db, "projB", "snap2", {"status": "active"})
    assert world.boot(STRANGER, active["id"]).status_int == 202
    assert world.boot(OWNER, active["id"]).status_int == 400
    shared = catalog.image_create_for_project(db, "projB", "s",
                                              {"visibility": "shared"})
    assert shared["visibility"] == "shared"
    with pytest.raises(exception.InvalidInput):
        catalog.image_create_for_project(db, "projB", "x",
                                         {"visibility": "everyone"})


def test_register_image_refuses_unknown_visibility(world):
    with pytest.raises(exception.InvalidInput):
        images.register_image(world.h.db, "bad", "/nonexistent",
                              {"visibility": "everyone"})


def test_manage_import_sets_visibility_and_owner(tmp_path):
    """``pyct-manage image import --visibility/--owner`` (fake driver,
    SQLite); the default stays public without an owner, and a bad
    visibility leaves nothing registered or stored."""
    state = tmp_path / "state"
    conf = tmp_path / "pyct.conf"
    conf.write_text(f"[DEFAULT]\nstate_path = {state}\nvirt_driver = fake\n"
                    f"[database]\nconnection = sqlite:///{state}/db.sqlite\n")
    blob = tmp_path / "img.bin"
    blob.write_bytes(b"image\n" * 10)
    base = [os.path.join(os.path.dirname(sys.executable), "pyct-manage"),
            "--config-file", str(conf)]

    def manage(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run(base + list(args), capture_output=True,
                              text=True, timeout=120)

    assert manage("db", "sync").returncode == 0
    ids = {}
    for name, extra in (("pub", ()),
                        ("priv", ("--visibility", "private",
                                  "--owner", "projA")),
                        ("shr", ("--visibility", "shared",
                                 "--owner", "projA"))):
        res = manage("image", "import", name, str(blob), *extra)
        assert res.returncode == 0, res.stderr
        ids[name] = res.stdout.strip()
    res = manage("image", "import", "bad", str(blob),
                 "--property", "visibility=everyone")
    assert res.returncode == 1
    assert "visibility 'everyone' is not one of" in res.stderr
    assert manage("image", "import", "bad", str(blob), "--visibility",
                  "everyone").returncode == 2
    listed = {line.split("\t")[1]: line.split("\t")[4:]
              for line in manage("image", "list").stdout.splitlines()}
    assert listed == {"pub": ["public", "-"], "priv": ["private", "projA"],
                      "shr": ["shared", "projA"]}
    assert sorted(os.listdir(state / "images")) == sorted(ids.values())
    db = Database(f"sqlite:///{state}/db.sqlite")
    try:
        shown = image_access.image_get_visible(
            db, ids["priv"], image_access.Viewer("projA"))
        assert (shown["visibility"], shown["owner"]) == ("private", "projA")
        with pytest.raises(exception.ImageNotFound):
            image_access.image_get_visible(db, ids["priv"],
                                           image_access.Viewer("projB"))
    finally:
        db.dispose()
