"""The operator views' queries on the real PostgreSQL and MariaDB:
aggregates and zones, a service delete guarded by the host's instances,
the usage window, the migrations list; duplicates answer as conflicts."""

from __future__ import annotations

import datetime

import pytest

from pyct_driver import exception
from pyct_driver.db import aggregates, instance_moves, migration, services
from pyct_driver.db import instances as db_instances
from pyct_driver.db import usage
from pyct_driver.db.engine import Database
from tests import dbfixtures

BACKENDS = {"postgresql": dbfixtures.make_postgres_url,
            "mariadb": dbfixtures.make_mariadb_url}
T0 = datetime.datetime(2026, 1, 1)


@pytest.fixture(params=sorted(BACKENDS))
def db(request):
    with BACKENDS[request.param]() as url:
        migration.upgrade(url)
        database = Database(url)
        try:
            yield database
        finally:
            database.dispose()


def _instance(db, host, launched, terminated=None, name="vm"):
    row = db_instances.create_many(db, [{
        "uuid": f"00000000-0000-4000-8000-{len(name):04d}{launched:08d}",
        "name": name, "hostname": name, "project_id": "p1",
        "user_id": "u", "host": host, "image_ref": "i", "flavor_id": "1",
        "flavor": {"name": "m1", "vcpus": 1, "memory_mb": 64, "root_gb": 1,
                   "ephemeral_gb": 0}, "vm_state": "active",
        "reservation_id": "r", "metadata": {}}])[0]
    return db_instances.update(db, row["uuid"], {
        "launched_at": T0 + datetime.timedelta(hours=launched),
        "terminated_at": terminated})


def test_operator_queries(db):
    for host in ("h1", "h2"):
        services.heartbeat(db, host, "pyct-compute", "t")
        services.compute_node_report(db, host, {
            "vcpus": 1, "memory_mb": 1, "local_gb": 1,
            "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
            "disk_allocation_ratio": 1.0})
    agg = aggregates.create(db, "a1", "az1")
    with pytest.raises(exception.Duplicate):
        aggregates.create(db, "a1", None)
    aggregates.add_host(db, agg["id"], "h1")
    with pytest.raises(exception.Conflict):
        aggregates.add_host(db, agg["id"], "h1")
    agg = aggregates.update(db, agg["id"], metadata={"ssd": "1", "x": None})
    assert agg["metadata"] == {"availability_zone": "az1", "ssd": "1"}
    assert aggregates.host_zones(db) == {"h1": {agg["id"]: "az1"}}

    inst = _instance(db, "h1", 1)
    svc = next(s for s in services.service_list(db) if s["host"] == "h1")
    with pytest.raises(exception.HostHasInstances):
        services.service_delete(db, svc["uuid"])
    db_instances.soft_delete(db, inst["uuid"])
    services.service_delete(db, svc["uuid"])
    assert [s["host"] for s in services.service_list(db)] == ["h2"]
    assert aggregates.get(db, agg["id"])["hosts"] == []
    aggregates.delete(db, agg["id"])

    _instance(db, "h2", 2, name="later")
    _instance(db, "h2", 30, name="after")
    rows = usage.active_in_window(db, T0, T0 + datetime.timedelta(days=1))
    assert [r["name"] for r in rows] == ["vm", "later"]
    assert [r["name"] for r in usage.active_in_window(
        db, T0, T0 + datetime.timedelta(days=1), "p1", limit=1,
        marker=rows[0]["uuid"])] == ["later"]
    assert instance_moves.list_(db, {"status": "done"}, host="h2",
                                limit=5) == []
