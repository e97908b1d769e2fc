"""os-simple-tenant-usage, os-migrations and the admin-only
OS-EXT-SRV-ATTR server fields through the WSGI app."""

from __future__ import annotations

import datetime

import pytest

from pyct_driver.api import microversion
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db.models_hosts import Migration
from tests.unit.test_api_app import Harness
from tests.unit.test_api_servers import ADMIN_21, ADMIN_23

T0 = datetime.datetime(2026, 1, 1, 0, 0, 0)
SERVER_USAGE = {"hours", "flavor", "instance_id", "name", "tenant_id",
                "memory_mb", "local_gb", "vcpus", "started_at", "ended_at",
                "state", "uptime"}
TOTALS = {"tenant_id", "total_local_gb_usage", "total_vcpus_usage",
          "total_memory_mb_usage", "total_hours", "start", "stop"}
WINDOW = "start=2026-01-01T00:00:00&end=2026-01-02T00:00:00"


@pytest.fixture(autouse=True)
def _all_versions(monkeypatch):
    monkeypatch.setattr(microversion, "MAX_VERSION", (2, 96))


def _billed() -> tuple[Harness, list[str]]:
    """p1: a 1 vCPU/512 MiB/1 GiB server up 10 h of the window and one
    deleted after 2 h; p2: one launched 6 h before the window ends."""
    h = Harness()
    h.add_host("node1")
    spans = [("alice:p1", 0, None), ("alice:p1", 4, 6),
             ("bob:p2", 18, None)]
    ids = []
    for i, (token, start, end) in enumerate(spans):
        sid = h.boot(name=f"s{i}", token=token)["id"]
        values = {"launched_at": T0 + datetime.timedelta(hours=start),
                  "vm_state": "active", "task_state": None}
        db_instances.update(h.db, sid, values)
        if end is not None:
            db_instances.soft_delete(h.db, sid)
            with h.db.session() as session:
                row = session.query(models.Instance).filter_by(
                    uuid=sid).one()
                row.terminated_at = T0 + datetime.timedelta(hours=end)
        ids.append(sid)
    # and one that never launched: billed nothing, not listed
    h.boot(name="never")
    return h, ids


def test_admin_lists_every_project():
    h, _ = _billed()
    resp = h.admin("GET", f"/v2.1/os-simple-tenant-usage?{WINDOW}")
    assert resp.status_int == 200
    usages = {u["tenant_id"]: u for u in resp.json["tenant_usages"]}
    assert set(usages) == {"p1", "p2"}
    p1 = usages["p1"]
    assert set(p1) == TOTALS
    assert (p1["total_hours"], p1["total_vcpus_usage"],
            p1["total_memory_mb_usage"], p1["total_local_gb_usage"]) == (
        24 + 2, 26, 26 * 512, 26)
    assert (p1["start"], p1["stop"]) == ("2026-01-01T00:00:00.000000",
                                         "2026-01-02T00:00:00.000000")
    assert usages["p2"]["total_hours"] == 6


def test_detailed_lists_servers():
    h, ids = _billed()
    usages = h.admin("GET", f"/v2.1/os-simple-tenant-usage?{WINDOW}"
                     "&detailed=1").json["tenant_usages"]
    p1 = next(u for u in usages if u["tenant_id"] == "p1")
    assert set(p1) == TOTALS | {"server_usages"}
    servers = {s["instance_id"]: s for s in p1["server_usages"]}
    assert set(servers) == set(ids[:2])
    gone = servers[ids[1]]
    assert set(gone) == SERVER_USAGE
    assert (gone["state"], gone["hours"], gone["flavor"], gone["vcpus"],
            gone["memory_mb"], gone["local_gb"], gone["uptime"],
            gone["ended_at"]) == ("terminated", 2.0, "m1.small", 1, 512, 1,
                                  7200, "2026-01-01T06:00:00.000000")
    assert servers[ids[0]]["state"] == "active"
    assert servers[ids[0]]["ended_at"] is None


def test_project_sees_its_own_usage_only():
    h, ids = _billed()
    resp = h.request("GET", f"/v2.1/os-simple-tenant-usage/p1?{WINDOW}")
    assert resp.status_int == 200
    usage = resp.json["tenant_usage"]
    assert usage["total_hours"] == 26
    assert {s["instance_id"] for s in usage["server_usages"]} == set(
        ids[:2])
    assert h.request("GET", f"/v2.1/os-simple-tenant-usage/p2?{WINDOW}"
                     ).status_int == 403
    assert h.request("GET", f"/v2.1/os-simple-tenant-usage?{WINDOW}"
                     ).status_int == 403
    empty = h.admin("GET", f"/v2.1/os-simple-tenant-usage/p9?{WINDOW}")
    assert empty.json == {"tenant_usage": {}}


def test_paging_from_240():
    h, ids = _billed()
    resp = h.admin("GET", f"/v2.1/os-simple-tenant-usage?{WINDOW}"
                   "&detailed=1&limit=1", version="2.40")
    body = resp.json
    assert [s["instance_id"] for u in body["tenant_usages"]
            for s in u["server_usages"]] == [ids[0]]
    link = body["tenant_usages_links"][0]
    assert link["rel"] == "next"
    assert f"marker={ids[0]}" in link["href"] and "limit=1" in link["href"]
    page2 = h.admin("GET", f"/v2.1/os-simple-tenant-usage?{WINDOW}"
                    f"&detailed=1&limit=1&marker={ids[0]}",
                    version="2.40").json
    assert [s["instance_id"] for u in page2["tenant_usages"]
            for s in u["server_usages"]] == [ids[1]]
    # before 2.40 limit is not a parameter
    old = h.admin("GET", f"/v2.1/os-simple-tenant-usage?{WINDOW}&limit=1"
                  ).json
    assert len(old["tenant_usages"]) == 2 and len(old) == 1


@pytest.mark.parametrize("query,version,message", [
    ("start=yesterday", "2.1", "Invalid datetime string"),
    ("start=2026-01-02T00:00:00&end=2026-01-01T00:00:00", "2.1",
     "Invalid start time. The start time cannot occur after the end "
     "time."),
    (WINDOW + "&marker=nope", "2.40", "Marker nope could not be found."),
    (WINDOW + "&limit=-2", "2.40", "limit"),
    (WINDOW + "&frob=1", "2.75", "frob")])
def test_bad_queries(query, version, message):
    h, _ = _billed()
    resp = h.admin("GET", f"/v2.1/os-simple-tenant-usage?{query}",
                   version=version)
    assert resp.status_int == 400
    assert message in resp.json["badRequest"]["message"]


def _migration(h, **values) -> None:
    with h.db.session() as session:
        session.add(Migration(**{
            "uuid": "3f9c6d7e-0000-4000-8000-000000000001",
            "instance_uuid": "3f9c6d7e-0000-4000-8000-0000000000aa",
            "source_compute": "node1", "dest_compute": "node2",
            "status": "finished", "migration_type": "migration",
            "hidden": False, "user_id": "alice", "project_id": "p1",
            **values}))


@pytest.mark.parametrize("version,extra", [
    ("2.1", set()), ("2.23", {"migration_type"}),
    ("2.59", {"migration_type", "uuid"}),
    ("2.80", {"migration_type", "uuid", "user_id", "project_id"})])
def test_migrations_bodies_and_filters(version, extra):
    h = Harness()
    assert h.admin("GET", "/v2.1/os-migrations", version=version).json == {
        "migrations": []}
    _migration(h)
    rows = h.admin("GET", "/v2.1/os-migrations",
                   version=version).json["migrations"]
    base = {"id", "source_node", "dest_node", "source_compute",
            "dest_compute", "dest_host", "status", "instance_uuid",
            "old_instance_type_id", "new_instance_type_id", "created_at",
            "updated_at"}
    assert [set(r) for r in rows] == [base | extra]
    for query, count in (("host=node2", 1), ("host=node9", 0),
                         ("status=error", 0), ("source_compute=node1", 1)):
        assert len(h.admin("GET", f"/v2.1/os-migrations?{query}",
                           version=version).json["migrations"]) == count


def test_migrations_admin_only_and_bad_paging():
    h = Harness()
    assert h.request("GET", "/v2.1/os-migrations").status_int == 403
    resp = h.admin("GET", "/v2.1/os-migrations?marker=x", version="2.59")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == \
        "Marker x could not be found."
    assert h.admin("GET", "/v2.1/os-migrations?frob=1",
                   version="2.58").status_int == 200
    assert h.admin("GET", "/v2.1/os-migrations?frob=1",
                   version="2.59").status_int == 400
    assert h.admin("GET", "/v2.1/os-migrations?user_id=u",
                   version="2.79").status_int == 400
    resp = h.admin("GET", "/v2.1/os-migrations?changes-since=2026-01-02"
                   "&changes-before=2026-01-01", version="2.66")
    assert resp.status_int == 400
    _migration(h)
    assert h.admin("GET", "/v2.1/os-migrations?changes-since=2030-01-01",
                   version="2.59").json == {"migrations": []}


@pytest.mark.parametrize("version,keys", [("2.1", ADMIN_21),
                                          ("2.3", ADMIN_21 | ADMIN_23),
                                          ("2.96", ADMIN_21 | ADMIN_23)])
def test_extended_server_attributes_for_admins_only(version, keys):
    h = Harness()
    h.add_host("node1")
    sid = h.boot(user_data="aGk=")["id"]
    shown = h.admin("GET", f"/v2.1/servers/{sid}",
                    version=version).json["server"]
    assert keys <= set(shown)
    assert (shown["OS-EXT-SRV-ATTR:host"],
            shown["OS-EXT-SRV-ATTR:hypervisor_hostname"]) == ("node1",
                                                              "node1")
    assert shown["OS-EXT-SRV-ATTR:instance_name"].startswith("instance-")
    if version != "2.1":
        assert shown["OS-EXT-SRV-ATTR:user_data"] == "aGk="
        assert shown["OS-EXT-SRV-ATTR:launch_index"] == 0
        assert shown["OS-EXT-SRV-ATTR:hostname"] == "vm"
    listed = h.admin("GET", "/v2.1/servers/detail?all_tenants=1",
                     version=version).json["servers"]
    assert keys <= set(listed[0])
    mine = h.request("GET", f"/v2.1/servers/{sid}",
                     version=version).json["server"]
    # from 2.90 every caller sees the hostname, the rest stays the admins'
    assert not any(k.startswith("OS-EXT-SRV-ATTR:") for k in mine
                   if k != "OS-EXT-SRV-ATTR:hostname")
    assert ("OS-EXT-SRV-ATTR:hostname" in mine) == (version == "2.96")
