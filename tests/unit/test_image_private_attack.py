"""The issue's attack: an image imported ``visibility=private
owner=projA`` was listed to projB and booted by it.

Only what existed before the fix is used here (``register_image`` with
Glance's fields as properties, the Harness), so this test runs, and
fails, on the code as it was. Now projB gets what it gets for an id that
does not exist, everywhere, and a refused boot leaves nothing behind.
"""

from __future__ import annotations

from pyct_driver.api import images
from pyct_driver.db import models
from tests.unit.test_api_app import Harness

JSON = {"Accept": "application/json"}


def _count(h: Harness, model) -> int:
    with h.db.session() as session:
        return len(session.query(model).all())


def test_private_image_is_invisible_to_another_project(tmp_path):
    # a pool no other test on this shared host routes (the owner's boot
    # below creates the project's network from it)
    h = Harness(network__pool_cidr="10.213.64.0/20")
    h.add_host()
    path = tmp_path / "secret.img"
    path.write_bytes(b"projA's secret image\n" * 50)
    image_id = images.register_image(
        h.db, "secret", str(path),
        {"visibility": "private", "owner": "projA"})["id"]
    projb = "bob:projB"

    for query in ("", "?visibility=all", "?visibility=private",
                  "?owner=projA", f"?id={image_id}", "?name=secret"):
        resp = h.request("GET", "/image/v2/images" + query, token=projb)
        assert resp.status_int == 200, resp.text
        assert image_id not in {i["id"] for i in resp.json["images"]}, query
    for path_ in (f"/image/v2/images/{image_id}",
                  f"/image/v2/images/{image_id}/file"):
        resp = h.request("GET", path_, token=projb, headers=JSON)
        assert resp.status_int == 404, (path_, resp.text)
        assert resp.json["message"].startswith(
            f"No image found with ID {image_id}<br />")
        assert b"secret image" not in resp.body
    resp = h.request("POST", "/v2.1/servers", {"server": {
        "name": "steal", "imageRef": image_id, "flavorRef": "1",
        "networks": "auto"}}, token=projb, version="2.37")
    assert resp.status_int == 400, resp.text
    assert resp.json == {"badRequest": {
        "code": 400, "message": "Can not find requested image"}}
    assert (_count(h, models.Instance), _count(h, models.Network),
            _count(h, models.Port)) == (0, 0, 0)
    assert h.compute.calls == []

    # the owner keeps everything; its boot makes the rows checked above
    listed = h.request("GET", "/image/v2/images", token="alice:projA")
    assert image_id in {i["id"] for i in listed.json["images"]}
    data = h.request("GET", f"/image/v2/images/{image_id}/file",
                     token="alice:projA")
    assert data.status_int == 200 and data.body == path.read_bytes()
    h.boot(imageRef=image_id, token="alice:projA", networks="auto")
    assert (_count(h, models.Instance), _count(h, models.Network),
            _count(h, models.Port)) == (1, 1, 1)
