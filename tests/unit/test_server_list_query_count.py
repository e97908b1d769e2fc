"""A server list page costs a constant number of SQL statements.

With 1,000 servers (ports, faults, tags, locks: ``tests/server_rows``)
``GET /servers/detail`` answers every one of them in the same handful of
statements it needs for ten: one for the instances and one batch for each
related table, never one per row. Checked for a member and for an admin
(whose ``host_status`` reads the compute services once per page), at the
first microversion and the newest, and for ``limit=100`` pages.
``tests/integration/test_server_list_query_count_pg.py`` runs these
again on PostgreSQL.
"""

from __future__ import annotations

import pytest

from tests.server_rows import StatementCounter, insert_servers
from tests.unit.test_api_app import Harness

# instances, ports + their networks, faults, tags, locks, services
MAX_STATEMENTS = 8
CASES = [("demo:demo", "2.1", "/v2.1/servers/detail"),
         ("demo:demo", "2.96", "/v2.1/servers/detail"),
         ("admin:admin", "2.96", "/v2.1/servers/detail?all_tenants=1"),
         ("demo:demo", "2.96", "/v2.1/servers?limit=100"),
         ("demo:demo", "2.96", "/v2.1/servers/detail?limit=100")]


def build(h: Harness) -> Harness:
    """Ten servers, then 990 more, counting each case's statements
    after each."""
    h.add_host("bench-host")
    h.counts = {}
    insert_servers(h.db, 10, h.image["id"])
    h.counts[10] = {case: _count(h, *case) for case in CASES}
    insert_servers(h.db, 990, h.image["id"])
    h.counts[1000] = {case: _count(h, *case) for case in CASES}
    return h


def _count(h: Harness, token: str, version: str, path: str) -> int:
    with StatementCounter(h.db.engine) as counter:
        resp = h.request("GET", path, token=token, version=version)
    assert resp.status_int == 200, resp.text
    expected = 100 if "limit=100" in path else None
    if expected is not None:
        assert len(resp.json["servers"]) in (10, expected)
    return counter.count


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('scale') / 'pyct.sqlite'}"
    h = Harness(db_url=url)
    try:
        yield build(h)
    finally:
        h.db.engine.dispose()


@pytest.mark.parametrize("case", CASES, ids=lambda c: f"{c[1]}-{c[2]}")
def test_statements_do_not_grow_with_the_page(world, case):
    assert world.counts[1000][case] == world.counts[10][case], \
        world.counts
    assert world.counts[1000][case] <= MAX_STATEMENTS, world.counts


def test_the_full_page_is_answered(world):
    resp = world.request("GET", "/v2.1/servers/detail", token="demo:demo",
                         version="2.96")
    servers = resp.json["servers"]
    assert len(servers) == 1000
    errors = [s for s in servers if s["status"] == "ERROR"]
    assert len(errors) == 100 and all(
        s["fault"]["message"] == "NoValidHost" for s in errors)
    assert all(len(s["addresses"]) == 1 for s in servers)
    assert sum(s["tags"] == ["scale", "web"] for s in servers) == 200
    assert sum(s["locked_reason"] == "scale" for s in servers) == 144
