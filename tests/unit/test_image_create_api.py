"""``POST /v2/images``, ``DELETE`` and deactivate/reactivate: Glance's
answers for good and bad bodies, protected images, images in use, and a
refusal never changing the catalogue."""

from __future__ import annotations

import json
import os

import pytest

from pyct_driver.db import models
from tests.unit.image_fixtures import (ADMIN, MEMBER, OTHER, READER,
                                       StoreHarness, tarball)
from tests.unit.test_policy_personas import snapshot


@pytest.fixture
def h() -> StoreHarness:
    return StoreHarness()


def test_create_records_a_queued_image_as_glance(h):
    resp = h.request("POST", "/image/v2/images", {
        "name": "rootfs", "disk_format": "raw", "container_format": "bare",
        "min_disk": 1, "min_ram": 64, "tags": ["a", "b", "a"],
        "protected": True, "os_distro": "busybox",
        "id": "8c9c1c34-29a5-4f1e-9a5c-3e0b5b0f0a11"})
    assert resp.status_int == 201, resp.text
    body = resp.json
    assert resp.headers["Location"].endswith(
        "/image/v2/images/8c9c1c34-29a5-4f1e-9a5c-3e0b5b0f0a11")
    assert body["status"] == "queued" and body["visibility"] == "shared"
    assert body["owner"] == "p1" and body["protected"] is True
    assert body["tags"] == ["a", "b"] and body["os_distro"] == "busybox"
    assert (body["min_disk"], body["min_ram"]) == (1, 64)
    assert body["size"] is None and body["checksum"] is None
    assert body["os_hidden"] is False
    again = h.request("POST", "/image/v2/images",
                      {"id": body["id"], "name": "x"})
    assert again.status_int == 409, again.text


@pytest.mark.parametrize("body,status,words", [
    ({"disk_format": "qcow2"}, 400, "accepted: raw"),
    ({"disk_format": "iso"}, 400, "not disk images"),
    ({"container_format": "ova"}, 400, "accepted: bare, docker"),
    ({"status": "active"}, 403, "read-only"),
    ({"size": 5}, 403, "read-only"),
    ({"os_hash_value": "x"}, 403, "read-only"),
    ({"location": "file:///etc/shadow"}, 403, "reserved"),
    ({"os_glance_import_task": "x"}, 403, "reserved"),
    ({"custom": 5}, 400, "does not match schema"),
    ({"min_ram": -1}, 400, "does not match schema"),
    ({"min_disk": "big"}, 400, "does not match schema"),
    ({"min_disk": 2 ** 31}, 400, "does not match schema"),
    ({"protected": "yes"}, 400, "does not match schema"),
    ({"visibility": "everyone"}, 400, "does not match schema"),
    ({"id": "not-a-uuid"}, 400, "does not match schema"),
    ({"tags": "a"}, 400, "does not match schema"),
    ({"name": "n" * 256}, 400, "does not match schema"),
    ({"visibility": "public"}, 403, "publicize_image"),
    ({"owner": "p2"}, 403, "owned by 'p2'"),
])
def test_bad_bodies_change_nothing(h, body, status, words):
    before = snapshot(h)
    resp = h.request("POST", "/image/v2/images", {"name": "x", **body})
    assert resp.status_int == status, resp.text
    assert words in resp.text
    assert snapshot(h) == before


@pytest.mark.parametrize("raw", [b"[]", b"{not json", b'"name"'])
def test_malformed_bodies_are_400(h, raw):
    before = snapshot(h)
    resp = h.request("POST", "/image/v2/images", raw=raw)
    assert resp.status_int == 400, resp.text
    assert snapshot(h) == before


def test_reader_cannot_create_admin_may_publish(h):
    assert h.request("POST", "/image/v2/images", {"name": "x"},
                     token=READER).status_int == 403
    resp = h.request("POST", "/image/v2/images",
                     {"name": "pub", "visibility": "public", "owner": "p9"},
                     token=ADMIN)
    assert resp.status_int == 201, resp.text
    assert resp.json["owner"] == "p9"


def _count(h) -> int:
    with h.db.session() as session:
        return session.query(models.Image).count()


def test_delete_removes_image_file_and_layers(h):
    image = h.create()
    assert h.upload(image["id"], tarball()).status_int == 204
    assert h.layers() and h.leftovers() == [image["id"]]
    path = f"/image/v2/images/{image['id']}"
    assert h.request("DELETE", path, token=OTHER).status_int == 404
    assert h.request("DELETE", path, token=READER).status_int == 403
    resp = h.request("DELETE", path)
    assert resp.status_int == 204, resp.text
    assert h.request("GET", path).status_int == 404
    assert h.leftovers() == [] and h.layers() == []
    assert h.request("DELETE", path).status_int == 404


def test_delete_while_a_server_holds_the_layers_frees_them_after(h):
    """Glance and Nova: the delete succeeds, the server keeps its root;
    the layers go when the last server using them goes."""
    image = h.create()
    assert h.upload(image["id"], tarball()).status_int == 204
    h.store.acquire("server-1", image["id"])
    assert h.request("DELETE",
                     f"/image/v2/images/{image['id']}").status_int == 204
    assert len(h.layers()) == 1 and not h.store.has_image(image["id"])
    h.store.release("server-1")
    assert h.layers() == []


def test_protected_image_cannot_be_deleted(h):
    image = h.create(protected=True)
    before = _count(h)
    resp = h.request("DELETE", f"/image/v2/images/{image['id']}")
    assert resp.status_int == 403 and "protected" in resp.text
    assert _count(h) == before


def test_delete_never_touches_a_file_outside_the_image_dir(h, tmp_path):
    outside = tmp_path / "operator.tar"
    outside.write_bytes(b"keep")
    from pyct_driver.api import images
    image = images.register_image(h.db, "op", str(outside),
                                  {"owner": "p1"})
    assert h.request("DELETE",
                     f"/image/v2/images/{image['id']}").status_int == 204
    assert outside.read_bytes() == b"keep"


def test_deactivate_forbids_download_and_boot(h):
    image = h.create(visibility="community")
    assert h.upload(image["id"], tarball()).status_int == 204
    base = f"/image/v2/images/{image['id']}"
    assert h.request("POST", base + "/actions/deactivate",
                     token=OTHER).status_int == 403
    assert h.request("POST", base + "/actions/deactivate",
                     token=READER).status_int == 403
    assert h.request("POST", base + "/actions/deactivate").status_int == 204
    assert h.show(image["id"])["status"] == "deactivated"
    resp = h.request("GET", base + "/file")
    assert resp.status_int == 403 and "deactivated" in resp.text
    assert h.request("GET", base + "/file", token=ADMIN).status_int == 200
    boot = h.request("POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none"}}, version="2.37")
    assert boot.status_int == 400, boot.text
    assert h.request("POST", base + "/actions/reactivate").status_int == 204
    assert h.show(image["id"])["status"] == "active"
    assert h.request("GET", base + "/file").status_int == 200


def test_deactivate_a_queued_image_is_400(h):
    image = h.create()
    base = f"/image/v2/images/{image['id']}"
    for action in ("deactivate", "reactivate"):
        resp = h.request("POST", f"{base}/actions/{action}")
        assert resp.status_int == 400, resp.text
        assert "status 'queued'" in resp.text
    assert h.show(image["id"])["status"] == "queued"


def test_versions_document_stops_at_what_is_implemented(h):
    docs = h.request("GET", "/image/versions", token=None).json["versions"]
    assert [d["id"] for d in docs] == [f"v2.{m}" for m in range(5, -1, -1)]
    assert [d["status"] for d in docs] == ["CURRENT"] + ["SUPPORTED"] * 5
    assert json.dumps(docs).count("/image/v2/") == 6
    assert os.path.isdir(h.state_dir)


def test_patch_protects_hides_and_tags(h):
    """``image set --protected --hidden --tag``: Glance's PATCH of the
    columns pyct now keeps; formats only among the accepted ones."""
    image = h.create()
    path = f"/image/v2/images/{image['id']}"
    patch = {"Content-Type": "application/openstack-images-v2.1-json-patch"}

    def send(*ops):
        return h.request("PATCH", path, raw=json.dumps(list(ops)).encode(),
                         headers=patch)
    resp = send({"op": "replace", "path": "/protected", "value": True},
                {"op": "replace", "path": "/os_hidden", "value": True},
                {"op": "replace", "path": "/tags", "value": ["x", "y"]})
    assert resp.status_int == 200, resp.text
    assert (resp.json["protected"], resp.json["os_hidden"],
            resp.json["tags"]) == (True, True, ["x", "y"])
    assert h.request("DELETE", path).status_int == 403
    resp = send({"op": "replace", "path": "/disk_format", "value": "qcow2"})
    assert resp.status_int == 400 and "accepted: raw" in resp.text
    assert h.show(image["id"])["disk_format"] == "raw"


def test_tags_added_and_removed_one_by_one(h):
    image = h.create(tags=["a"])
    base = f"/image/v2/images/{image['id']}/tags"
    assert h.request("PUT", f"{base}/b").status_int == 204
    assert h.request("PUT", f"{base}/b").status_int == 204   # no change
    assert h.show(image["id"])["tags"] == ["a", "b"]
    assert h.request("PUT", f"{base}/{'t' * 256}").status_int == 400
    assert h.request("PUT", f"{base}/c", token=READER).status_int == 403
    assert h.request("PUT", f"{base}/c", token=OTHER).status_int == 404
    assert h.request("DELETE", f"{base}/a").status_int == 204
    resp = h.request("DELETE", f"{base}/a")
    assert resp.status_int == 404 and "Tag a not found" in resp.text
    assert h.show(image["id"])["tags"] == ["b"]
    for n in range(127):
        assert h.request("PUT", f"{base}/t{n}").status_int == 204
    assert h.request("PUT", f"{base}/one-too-many").status_int == 413
