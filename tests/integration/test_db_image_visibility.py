"""Glance's visibility queries on the real PostgreSQL and MariaDB.

The SQL of ``image_access.list_clause`` (a member sub-select, literal
true/false branches) and the scoped member queries run on each backend
with the catalogue of the unit tests: projA's private, shared, community
and public images, members pending/accepted/rejected.
"""

from __future__ import annotations

import uuid

import pytest

from pyct_driver import exception
from pyct_driver.db import catalog, image_access, image_members
from pyct_driver.db.image_access import Viewer
from tests.integration.test_db_backends import db, url  # noqa: F401


def _seed(db) -> dict[str, str]:
    ids = {}
    for vis in ("private", "shared", "community", "public"):
        ids[vis] = catalog.image_create(db, {
            "id": str(uuid.uuid4()), "name": vis, "status": "active",
            "visibility": vis, "owner": "projA", "properties": {}})["id"]
    for project, status in (("projP", "pending"), ("projAcc", "accepted"),
                            ("projR", "rejected")):
        image_members.member_create(db, ids["shared"], project, 128)
        image_members.member_set_status(db, ids["shared"], project, status)
    return ids


@pytest.mark.parametrize("viewer,status,vis,expected", [
    (Viewer("projA"), "accepted", None,
     {"private", "shared", "community", "public"}),
    (Viewer("projB"), "accepted", None, {"public"}),
    (Viewer("projB"), "all", "all", {"public", "community"}),
    (Viewer("projP"), "accepted", None, {"public"}),
    (Viewer("projP"), "pending", "shared", {"shared"}),
    (Viewer("projAcc"), "accepted", None, {"shared", "public"}),
    (Viewer("projR"), "all", None, {"shared", "public"}),
    (Viewer("adminproj", is_admin=True), "accepted", None,
     {"private", "shared", "public"}),
    (Viewer("adminproj", is_admin=True), "accepted", "community",
     {"community"}),
])
def test_list_clause(db, viewer, status, vis, expected):
    _seed(db)
    rows = catalog.image_list(db, {"visibility": vis}, viewer=viewer,
                              member_status=status)
    assert {r["name"] for r in rows} == expected


def test_show_and_members_scoping(db):
    ids = _seed(db)
    for project in ("projA", "projP", "projAcc", "projR"):
        assert image_access.image_get_visible(
            db, ids["shared"], Viewer(project))["name"] == "shared"
    for vis in ("private", "shared"):
        with pytest.raises(exception.ImageNotFound):
            image_access.image_get_visible(db, ids[vis], Viewer("projB"))
    shared = catalog.image_get(db, ids["shared"])
    assert {m["member_id"] for m in image_members.member_list(
        db, shared, Viewer("projA"))} == {"projP", "projAcc", "projR"}
    assert [m["member_id"] for m in image_members.member_list(
        db, shared, Viewer("projP"))] == ["projP"]
    with pytest.raises(exception.Duplicate):
        image_members.member_create(db, ids["shared"], "projP", 128)
    with pytest.raises(exception.TooLarge):
        image_members.member_create(db, ids["shared"], "projZ", 3)
