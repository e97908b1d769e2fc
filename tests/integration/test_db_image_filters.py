"""Glance's image list filters and the upload's status swaps on the real
PostgreSQL and MariaDB (``db.image_query``): tags, a custom property
(a JSON column), os_hidden, sizes, times, several sort keys with keyset
paging, and a compare-and-swap that only one of two racers wins."""

from __future__ import annotations

import datetime
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.db import image_query
from pyct_driver.db.image_access import Viewer
from tests.integration.test_db_backends import db, url  # noqa: F401

OWNER = Viewer("projA")


def _seed(db) -> None:
    base = datetime.datetime(2026, 1, 1)
    for n, (name, size, tags, hidden, distro) in enumerate((
            ("alpha", 10, ["web", "db"], False, "debian"),
            ("beta", 20, ["web"], False, "alpine"),
            ("gamma", 30, [], True, "debian"),
            ("delta", None, ["db"], False, None))):
        image_query.image_create(db, {
            "id": str(uuid.uuid4()), "name": name, "status": "active",
            "visibility": "private", "owner": "projA", "size": size,
            "os_hidden": hidden, "disk_format": "raw",
            "container_format": "bare",
            "created_at": base + datetime.timedelta(days=n),
            "properties": {"os_distro": distro} if distro else {}}, tags)


def _names(db, filters: dict, sort=(("created_at", "desc"),),
           limit: int = 25, marker: str | None = None) -> list[str]:
    return [r["name"] for r in image_query.image_list(
        db, filters, OWNER, list(sort), limit, marker=marker)]


@pytest.mark.parametrize("filters,expect", [
    ({}, ["delta", "beta", "alpha"]),
    ({"os_hidden": True}, ["gamma"]),
    ({"tags": ["web", "db"]}, ["alpha"]),
    ({"properties": {"os_distro": "debian"}}, ["alpha"]),
    ({"size_min": 15}, ["beta"]),
    ({"created_at": [("gte", datetime.datetime(2026, 1, 2))]},
     ["delta", "beta"]),
    ({"name": ["alpha", "delta"]}, ["delta", "alpha"]),
])
def test_filters(db, filters, expect):
    _seed(db)
    assert _names(db, filters) == expect


def test_sorted_pages(db):
    _seed(db)
    order = (("size", "asc"), ("name", "desc"))
    rows = image_query.image_list(db, {}, OWNER, list(order), 2)
    assert [r["name"] for r in rows] == ["delta", "alpha"]
    assert rows[1]["tags"] == ["db", "web"]
    assert _names(db, {}, order, 2, rows[-1]["id"]) == ["beta"]


def test_status_swap_has_one_winner(db):
    image = image_query.image_create(db, {
        "id": str(uuid.uuid4()), "name": "q", "status": "queued",
        "visibility": "private", "owner": "projA", "properties": {}}, [])
    image_query.set_status(db, image["id"], ("queued",),
                           {"status": "saving"})
    with pytest.raises(exception.Conflict):
        image_query.set_status(db, image["id"], ("queued",),
                               {"status": "saving"})
    image_query.image_delete(db, image["id"])
    with pytest.raises(exception.ImageNotFound):
        image_query.set_status(db, image["id"], ("saving",),
                               {"status": "active"})
