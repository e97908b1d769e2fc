"""Checks run on a migrated database, the same on every backend.

The SQLite unit test and the PostgreSQL/MariaDB integration tests call
these with a URL at the migrations' head, so "works on SQLite" and "works
in production" are proved by the same assertions: no drift between models
and migrations, column types that behave alike (JSON, Boolean, microsecond
DateTime), the soft-delete unique key, and the query modules' behaviour
including the task-state compare-and-swap, the first use of a project's
default network and a service's first reports, each under a real race.
"""

from __future__ import annotations

import datetime
import threading
import uuid as uuidlib
from typing import Callable

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy.dialects import mysql

from pyct_driver import exception, states
from pyct_driver.db import (actions, catalog, instances, migration, models,
                            networks, services)
from pyct_driver.db.engine import Database

EXPECTED_NAMES = {
    "instances": {"uniq_instances0uuid0deleted",
                  "instances_project_id_deleted_idx",
                  "instances_host_deleted_idx"},
    "flavors": {"uniq_flavors0flavorid", "uniq_flavors0name"},
    "flavor_extra_specs": {"uniq_flavor_extra_specs0flavor_id0key",
                           "flavor_extra_specs_flavor_id_fkey"},
    "services": {"uniq_services0host0binary"},
    "compute_nodes": {"uniq_compute_nodes0host"},
    "instance_actions": {"instance_uuid_idx",
                         "instance_actions_request_id_idx"},
    "instance_actions_events": {"instance_actions_events_action_id_fkey"},
    "instance_faults": {"instance_faults_instance_uuid_idx"},
}


def check_at_head_without_drift(url: str) -> None:
    assert migration.current(url) == migration.head() is not None
    engine = sa.create_engine(url, poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            ctx = MigrationContext.configure(conn,
                                             opts={"compare_type": True})
            assert compare_metadata(ctx, models.Base.metadata) == []
            insp = sa.inspect(conn)
            assert set(insp.get_table_names()) == (
                set(models.Base.metadata.tables) | {"alembic_version"})
            for table, names in EXPECTED_NAMES.items():
                found = {c["name"] for c in insp.get_unique_constraints(table)}
                found |= {i["name"] for i in insp.get_indexes(table)}
                found |= {f["name"] for f in insp.get_foreign_keys(table)}
                assert names <= found, (table, names - found)
            _check_column_types(conn, insp)
    finally:
        engine.dispose()


def _check_column_types(conn: sa.engine.Connection, insp) -> None:
    """What alembic's type compare misses on MySQL (JSON, DATETIME fsp)."""
    backend = conn.dialect.name
    json_checks = ""
    if backend == "mysql":
        json_checks = " ".join(conn.exec_driver_sql(
            "SELECT check_clause FROM information_schema.check_constraints"
            " WHERE constraint_schema = DATABASE()").scalars())
        collations = dict(conn.exec_driver_sql(
            "SELECT table_name, table_collation FROM information_schema"
            ".tables WHERE table_schema = DATABASE()").all())
        for table in models.Base.metadata.tables:
            assert collations[table].startswith("utf8mb4_") and (
                collations[table].endswith("_bin")), collations
    for table in models.Base.metadata.sorted_tables:
        reflected = {c["name"]: c["type"] for c in insp.get_columns(
            table.name)}
        for col in table.columns:
            got = reflected[col.name]
            if isinstance(col.type, sa.JSON):
                if backend == "mysql":
                    # MariaDB's JSON is LONGTEXT with a json_valid() check
                    assert isinstance(got, sa.JSON) or (
                        f"json_valid(`{col.name}`)" in json_checks), col
                else:
                    assert isinstance(got, sa.JSON), (col, got)
            elif isinstance(col.type, sa.DateTime):
                assert isinstance(got, sa.DateTime), (col, got)
                assert not getattr(got, "timezone", False), col
                if backend == "mysql":
                    assert isinstance(got, mysql.DATETIME) and got.fsp == 6, (
                        col, got)
            elif isinstance(col.type, sa.Boolean):
                assert isinstance(got, (sa.Boolean, mysql.TINYINT)), col


CAPS = dict(vcpus=2, memory_mb=2048, local_gb=20, cpu_allocation_ratio=16.0,
            ram_allocation_ratio=1.5, disk_allocation_ratio=1.0)


def _instance(**kw) -> dict:
    values = dict(
        uuid=str(uuidlib.uuid4()), name="vm", hostname="vm",
        project_id="p1", user_id="u1", image_ref="img", flavor_id="1",
        flavor={"vcpus": 1, "memory_mb": 64, "root_gb": 1,
                "extra_specs": {"quota:cpu_shares": "512"}},
        vm_state=states.ACTIVE, task_state=None, power_state=states.RUNNING,
        metadata={"k": "v"}, reservation_id="r-1", host="h1")
    values.update(kw)
    return values


def check_types_round_trip(db: Database) -> None:
    stamp = datetime.datetime(2024, 2, 29, 23, 59, 58, 123456)
    doc = {"nested": {"list": [1, 2.5, True, None, "é ✓"]}, "empty": {},
           "big": 2**40}
    [row] = instances.create_many(db, [_instance(
        metadata=doc, networks=[{"port": "x"}], config_drive=True,
        locked=False, launched_at=stamp)])
    got = instances.get(db, row["uuid"])
    assert got["metadata"] == doc and isinstance(got["metadata"], dict)
    assert got["networks"] == [{"port": "x"}]
    assert got["flavor"]["extra_specs"] == {"quota:cpu_shares": "512"}
    assert got["config_drive"] is True and got["locked"] is False
    assert got["launched_at"] == stamp and got["launched_at"].tzinfo is None
    assert got["created_at"] == row["created_at"]  # microseconds kept
    assert got["block_device_mapping"] is None
    instances.soft_delete(db, row["uuid"])


def check_soft_delete_unique_key(db: Database) -> None:
    uuid = str(uuidlib.uuid4())
    first = instances.create_many(db, [_instance(uuid=uuid)])[0]
    with pytest.raises(exception.DBError):
        instances.create_many(db, [_instance(uuid=uuid)])
    gone = instances.soft_delete(db, uuid)
    assert gone["deleted"] == first["id"] and gone["vm_state"] == "deleted"
    with pytest.raises(exception.InstanceNotFound):
        instances.get(db, uuid)
    second = instances.create_many(db, [_instance(uuid=uuid)])[0]
    assert instances.get(db, uuid)["id"] == second["id"]
    instances.soft_delete(db, uuid)  # two deleted rows share the uuid
    assert instances.get(db, uuid, read_deleted=True)["deleted"] != 0
    # all or nothing: the duplicate in the batch rolls back the first row
    a, b = str(uuidlib.uuid4()), str(uuidlib.uuid4())
    with pytest.raises(exception.DBError):
        instances.create_many(db, [_instance(uuid=a), _instance(uuid=b),
                                   _instance(uuid=b)])
    with pytest.raises(exception.InstanceNotFound):
        instances.get(db, a)


def check_flavors(db: Database) -> None:
    f = catalog.flavor_create(
        db, {"flavorid": "42", "name": "m1.tiny", "vcpus": 1,
             "memory_mb": 128, "root_gb": 1, "rxtx_factor": 1.5},
        {"quota:cpu_shares": "2048", "pyct:pids_max": "512"})
    assert f["extra_specs"] == {"quota:cpu_shares": "2048",
                                "pyct:pids_max": "512"}
    assert f["is_public"] is True and f["disabled"] is False
    assert catalog.flavor_get(db, "42")["rxtx_factor"] == 1.5
    with pytest.raises(exception.Duplicate):
        catalog.flavor_create(db, {"flavorid": "43", "name": "m1.tiny",
                                   "vcpus": 1, "memory_mb": 1,
                                   "root_gb": 1})
    catalog.flavor_create(db, {"flavorid": "44", "name": "private",
                               "vcpus": 2, "memory_mb": 256, "root_gb": 2,
                               "is_public": False})
    assert [x["flavorid"] for x in catalog.flavor_list(db)] == ["42"]
    assert [x["flavorid"] for x in catalog.flavor_list(
        db, is_public=None, admin=True, marker="42")] == ["44"]
    catalog.flavor_delete(db, "42")
    with pytest.raises(exception.FlavorNotFound):
        catalog.flavor_get(db, "42")
    with db.session() as session:  # extra specs went with the flavor
        assert session.scalar(sa.select(sa.func.count()).select_from(
            models.FlavorExtraSpec)) == 0


def check_instance_queries(db: Database) -> None:
    project = f"p-{uuidlib.uuid4().hex[:8]}"
    made = []
    for i, name in enumerate(["web-1", "web-2", "db-1", "web-3", "db-2"]):
        made += instances.create_many(db, [_instance(
            name=name, project_id=project, launch_index=i)])
    uuids = [r["uuid"] for r in made]
    # CAS: the winner changes the row, the loser gets a 409
    won = instances.update(db, uuids[0], {"task_state": "rebooting"},
                           expected_task_state=None, action="reboot")
    assert won["task_state"] == "rebooting"
    with pytest.raises(exception.InstanceInvalidState) as lost:
        instances.update(db, uuids[0], {"task_state": "rebooting"},
                         expected_task_state=None, action="reboot")
    assert lost.value.kwargs["state"] == "rebooting"
    with pytest.raises(exception.InstanceInvalidState):
        instances.update(db, uuids[1], {"vm_state": "stopped"},
                         expected_vm_state=("stopped", "error"))
    instances.update(db, uuids[2], {"vm_state": states.STOPPED,
                                    "power_state": states.SHUTDOWN},
                     expected_task_state=(None, "powering-off"))
    instances.soft_delete(db, uuids[4])
    # newest first, deleted rows left out, pages joined by marker
    everything = [r["uuid"] for r in instances.list_(db, project_id=project)]
    assert everything == list(reversed(uuids[:4]))
    page1 = instances.list_(db, project_id=project, limit=2)
    page2 = instances.list_(db, project_id=project, limit=2,
                            marker=page1[-1]["uuid"])
    page3 = instances.list_(db, project_id=project, limit=2,
                            marker=page2[-1]["uuid"])
    assert [r["uuid"] for r in page1 + page2] == everything and page3 == []
    assert [r["name"] for r in instances.list_(
        db, project_id=project, name="^web-[13]$")] == ["web-3", "web-1"]
    assert [r["uuid"] for r in instances.list_(
        db, project_id=project, statuses=["REBOOT"])] == [uuids[0]]
    assert [r["uuid"] for r in instances.list_(
        db, project_id=project, statuses=["SHUTOFF"])] == [uuids[2]]
    assert len(instances.list_(db, project_id=project,
                               include_deleted=True)) == 5
    with pytest.raises(exception.InvalidInput):
        instances.list_(db, project_id=project, marker="no-such-uuid")
    usage = instances.usage_by_host(db)
    assert usage["h1"]["instances"] >= 4


def check_services(db: Database) -> None:
    first = services.heartbeat(db, "node-1", "pyct-compute", "pyct-compute")
    again = services.heartbeat(db, "node-1", "pyct-compute", "pyct-compute")
    assert (first["report_count"], again["report_count"]) == (1, 2)
    assert again["last_seen_up"] >= first["last_seen_up"]
    assert services.is_up(again, down_time_s=60)
    off = services.service_set_disabled(db, "node-1", "pyct-compute", True,
                                        "maintenance")
    assert off["disabled"] is True and off["disabled_reason"] == "maintenance"
    node = services.compute_node_report(db, "node-1", CAPS)
    assert node["vcpus_used"] == 0 and node["ram_allocation_ratio"] == 1.5
    services.compute_node_report(db, "node-1", {"vcpus_used": 1,
                                                "running_vms": 1})
    [node] = services.compute_node_list(db)
    assert (node["vcpus_used"], node["running_vms"], node["vcpus"]) == (
        1, 1, 2)


def check_actions_and_faults(db: Database) -> None:
    uuid = str(uuidlib.uuid4())
    actions.action_start(db, uuid, "reboot", "req-1", "u1", "p1")
    actions.event_start(db, uuid, "req-1", "compute_reboot_instance", "h1")
    actions.event_finish(db, uuid, "req-1", "compute_reboot_instance",
                         "Error", traceback="Traceback ...")
    got = actions.action_get(db, uuid, "req-1")
    assert got["message"] == "Error" and got["finish_time"] is not None
    [event] = got["events"]
    assert (event["event"], event["result"], event["host"]) == (
        "compute_reboot_instance", "Error", "h1")
    actions.action_start(db, uuid, "stop", "req-2", "u1", "p1")
    assert [a["request_id"] for a in actions.action_list(db, uuid)] == [
        "req-2", "req-1"]
    with pytest.raises(exception.ActionNotFound):
        actions.action_get(db, uuid, "req-3")
    actions.fault_create(db, uuid, 500, "first", None, "h1")
    actions.fault_create(db, uuid, 409, "x" * 300, "details", "h1")
    latest = actions.fault_latest(db, [uuid, "other"])
    assert list(latest) == [uuid]
    assert latest[uuid]["code"] == 409 and len(latest[uuid]["message"]) == 255


def check_strings_compare_exactly(db: Database) -> None:
    """Case and trailing spaces matter everywhere, MariaDB included."""
    for i, name in enumerate(["small", "SMALL", "small "]):
        catalog.flavor_create(db, {"flavorid": f"s{i}", "name": name,
                                   "vcpus": 1, "memory_mb": 1,
                                   "root_gb": 1})
    names = {f["name"] for f in catalog.flavor_list(db)}
    assert {"small", "SMALL", "small "} <= names
    for i in range(3):
        catalog.flavor_delete(db, f"s{i}")
    [row] = instances.create_many(db, [_instance(name="Ünïcode ✓ 🚀")])
    with pytest.raises(exception.InstanceNotFound):
        instances.get(db, row["uuid"].upper())
    assert instances.get(db, row["uuid"])["name"] == "Ünïcode ✓ 🚀"
    instances.soft_delete(db, row["uuid"])


def _race(threads: int, call: Callable[[], object]) -> list[object]:
    """Run ``call`` in ``threads`` threads at once; each one's result or
    exception, in thread order."""
    barrier = threading.Barrier(threads)
    outcomes: list[object] = [None] * threads

    def attempt(i: int) -> None:
        barrier.wait()
        try:
            outcomes[i] = call()
        except Exception as err:  # noqa: BLE001 - the caller sorts them
            outcomes[i] = err

    workers = [threading.Thread(target=attempt, args=(i,))
               for i in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join(60)
    return outcomes


def check_cas_race(db: Database, threads: int = 10) -> None:
    """``threads`` requests race one CAS: exactly one wins."""
    [row] = instances.create_many(db, [_instance()])

    def reboot() -> str:
        instances.update(db, row["uuid"], {"task_state": "rebooting"},
                         expected_task_state=None, action="reboot")
        return "won"

    outcomes = _race(threads, reboot)
    assert outcomes.count("won") == 1, outcomes
    losers = [o for o in outcomes if o != "won"]
    assert all(isinstance(o, exception.InstanceInvalidState)
               for o in losers), losers
    assert instances.get(db, row["uuid"])["task_state"] == "rebooting"


def check_default_network_race(db: Database, threads: int = 16,
                               rounds: int = 30) -> None:
    """In each of ``rounds`` new projects, ``threads`` first uses of the
    default network race: one network exists afterwards and every caller
    got its id (one 16-thread race caught the old bug 44-58% of the time)."""
    for _ in range(rounds):
        project = f"p-{uuidlib.uuid4().hex[:8]}"
        outcomes = _race(threads, lambda: networks.get_or_create_default(
            db, project, networks.IpamSettings(), list)["id"])
        defaults = [n for n in networks.list_networks(db, project_id=project)
                    if n["is_default"]]
        assert len(defaults) == 1, (defaults, outcomes)
        assert outcomes == [defaults[0]["id"]] * threads, (defaults,
                                                           outcomes)
        assert defaults[0]["name"] == "private"


def check_first_reports_race(db: Database, threads: int = 6) -> None:
    """A service's first heartbeats and capacity reports race: no error
    leaks, one row each, and every beat is counted."""
    host = f"node-{uuidlib.uuid4().hex[:8]}"
    beats = _race(threads, lambda: services.heartbeat(
        db, host, "pyct-compute", "pyct-compute"))
    assert all(isinstance(b, dict) for b in beats), beats
    [row] = [s for s in services.service_list(db) if s["host"] == host]
    assert row["report_count"] == threads, row
    reports = _race(threads, lambda: services.compute_node_report(
        db, host, CAPS))
    assert all(isinstance(r, dict) for r in reports), reports
    assert [n["vcpus"] for n in services.compute_node_list(db)
            if n["host"] == host] == [2]


def run_all(url: str) -> None:
    """Every check above on one migrated database."""
    check_at_head_without_drift(url)
    db = Database(url, max_pool_size=12)
    try:
        check_types_round_trip(db)
        check_soft_delete_unique_key(db)
        check_flavors(db)
        check_strings_compare_exactly(db)
        check_instance_queries(db)
        check_services(db)
        check_actions_and_faults(db)
        check_cas_race(db)
        check_default_network_race(db)
        check_first_reports_race(db)
    finally:
        db.dispose()
