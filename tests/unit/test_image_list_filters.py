"""Glance's image list filters, sorting and paging on ``GET /v2/images``
(``api.image_list``): each filter narrows as Glance's does, bad values
are 400s, hidden images stay out unless asked for."""

from __future__ import annotations

import datetime
import urllib.parse

import pytest

from pyct_driver.db import catalog
from tests.unit.image_fixtures import ADMIN, StoreHarness


@pytest.fixture
def h() -> StoreHarness:
    h = StoreHarness()
    # cirros (the harness's, public, no owner) plus four of project p1
    specs = [("alpha", 10, "raw", "bare", ["web", "db"], False, "debian"),
             ("beta", 20, "raw", "docker", ["web"], False, "alpine"),
             ("gamma", 30, "raw", "bare", [], True, "debian"),
             ("delta", None, "raw", "bare", ["db"], False, None)]
    base = datetime.datetime(2026, 1, 1)
    for n, (name, size, disk, container, tags, hidden, distro) in \
            enumerate(specs):
        body = {"name": name, "disk_format": disk,
                "container_format": container, "tags": tags,
                "os_hidden": hidden, "visibility": "private"}
        if distro:
            body["os_distro"] = distro
        image = h.create(**body)
        values = {"created_at": base + datetime.timedelta(days=n),
                  "updated_at": base + datetime.timedelta(days=n)}
        if size is not None:
            values.update(size=size, status="active")
        catalog.image_update(h.db, image["id"], values)
    return h


def names(h, query: str = "", token: str = "alice:p1") -> list[str]:
    resp = h.request("GET", "/image/v2/images" + query, token=token)
    assert resp.status_int == 200, resp.text
    return [i["name"] for i in resp.json["images"]]


@pytest.mark.parametrize("query,expect", [
    ("", ["cirros", "delta", "beta", "alpha"]),   # newest first
    ("?os_hidden=true", ["gamma"]),
    ("?os_hidden=false&name=alpha", ["alpha"]),
    ("?name=in:alpha,beta", ["beta", "alpha"]),
    ("?tag=web", ["beta", "alpha"]),
    ("?tag=web&tag=db", ["alpha"]),
    ("?tag=nope", []),
    ("?status=queued", ["delta"]),
    ("?status=ACTIVE&owner=p1", ["beta", "alpha"]),
    ("?container_format=docker", ["beta"]),
    ("?container_format=in:bare,docker&disk_format=raw&owner=p1",
     ["delta", "beta", "alpha"]),
    ("?size_min=15", ["beta"]),
    ("?size_max=15&owner=p1", ["alpha"]),
    ("?size_min=10&size_max=20", ["beta", "alpha"]),
    ("?os_distro=debian", ["alpha"]),
    ("?created_at=gte:2026-01-02T00:00:00Z&owner=p1", ["delta", "beta"]),
    ("?created_at=lt:2026-01-02T00:00:00Z&owner=p1", ["alpha"]),
    ("?updated_at=eq:2026-01-04T00:00:00Z", ["delta"]),
    ("?visibility=private", ["delta", "beta", "alpha"]),
    ("?visibility=public", ["cirros"]),
    ("?sort_key=name&sort_dir=asc", ["alpha", "beta", "cirros", "delta"]),
    ("?sort=name:desc", ["delta", "cirros", "beta", "alpha"]),
    # no size sorts first; a key without direction is descending
    ("?sort=size:asc,name", ["delta", "cirros", "alpha", "beta"]),
    ("?sort_key=status&sort_key=name&sort_dir=asc&sort_dir=desc",
     ["cirros", "beta", "alpha", "delta"]),
])
def test_filters_and_sorting(h, query, expect):
    assert names(h, query) == expect


def test_other_project_sees_only_public(h):
    assert names(h, token="bob:p2") == ["cirros"]
    assert names(h, "?tag=web", token="bob:p2") == []


@pytest.mark.parametrize("query,words", [
    ("?sort_key=owner", "Invalid sort key"),
    ("?sort_dir=sideways", "Invalid sort direction"),
    ("?sort=name&sort_key=name", "cannot be combined"),
    ("?sort=bogus:asc", "Invalid sort key"),
    ("?sort_key=name&sort_key=size&sort_dir=asc&sort_dir=asc&sort_dir=asc",
     "does not match"),
    ("?limit=-1", "must be positive"),
    ("?limit=ten", "must be an integer"),
    ("?size_min=big", "non-numeric"),
    ("?os_hidden=maybe", "true or false"),
    ("?created_at=gt:yesterday", "Invalid created_at"),
    ("?visibility=everyone", "Invalid visibility"),
    ("?member_status=maybe", "Invalid status"),
    ("?marker=no-such-image", "No image found"),
])
def test_bad_values_are_400(h, query, words):
    resp = h.request("GET", "/image/v2/images" + query)
    assert resp.status_int == 400, resp.text
    assert words in resp.text


def test_pages_follow_encoded_next_links(h):
    seen, query = [], "?limit=2&sort=name:asc&tag=web&owner=p1"
    pages = 0
    while query:
        resp = h.request("GET", "/image/v2/images" + query)
        assert resp.status_int == 200, resp.text
        seen += [i["name"] for i in resp.json["images"]]
        nxt = resp.json.get("next")
        query = nxt[len("/v2/images"):] if nxt else ""
        if nxt:
            params = urllib.parse.parse_qs(nxt.split("?", 1)[1])
            assert params["tag"] == ["web"] and params["sort"] == [
                "name:asc"]
        pages += 1
    assert seen == ["alpha", "beta"] and pages == 2


def test_limit_is_capped_and_admin_sees_all_owners(h):
    assert len(names(h, "?limit=5000", token=ADMIN)) == 4
    assert names(h, "?limit=0") == []
