"""Reads that don't write (issue 13): translating a row into a driver spec
changes nothing in the database (the build allocates the id range), a
build reads its image row once, and ``get_info`` on a guest that ran
``reboot`` only reports it: the power-state sync reboots it, with a
"reboot" action in the server's events. Driven directly on a manager with
the fake driver and SQLite; statements are counted with a SQLAlchemy
event listener on the manager's engine."""

from __future__ import annotations

import contextlib
import logging
import re

import pytest
import sqlalchemy as sa

from pyct_driver import context, states
from pyct_driver.compute import recovery
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.compute.specs import instance_spec
from pyct_driver.db import actions, catalog, idranges, instances, models
from pyct_driver.virt.fake import FakeDriver
from tests.functional import compute_fixtures as fx

_WRITE = re.compile(r"^\s*(INSERT|UPDATE|DELETE)\b", re.I)
_IMAGE_ROW = re.compile(r"\bFROM images\b.*\bimages\.id = ", re.I | re.S)


@pytest.fixture
def manager(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    yield ComputeManager(db, FakeDriver(conf), "host-r", shutdown_timeout=1)


@contextlib.contextmanager
def _statements(db):
    """Every SQL statement run on ``db`` inside the block."""
    seen: list[str] = []

    def record(_conn, _cursor, statement, *_args):
        seen.append(statement)
    sa.event.listen(db.engine, "before_cursor_execute", record)
    try:
        yield seen
    finally:
        sa.event.remove(db.engine, "before_cursor_execute", record)


def _ctxt():
    return context.RequestContext("u", "p1", ["member"])


def _ranges(db) -> list[tuple]:
    with db.session() as session:
        return [(r.instance_uuid, r.range_start) for r in session.scalars(
            sa.select(models.IdRange))]


def test_instance_spec_only_reads(manager, tmp_path):
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-r")
    with _statements(manager.db) as seen:
        spec = instance_spec(manager.db, inst)
        manager.spec(inst)
    assert seen, "the spec is read from the database"
    assert not [s for s in seen if _WRITE.match(s)], seen
    # never built: no range, and translating did not allocate one
    assert spec.id_range is None
    assert _ranges(manager.db) == []


def test_build_allocates_the_range_every_spec_then_reads(manager, tmp_path):
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-r")
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    row = instances.get(manager.db, inst["uuid"])
    assert row["vm_state"] == states.ACTIVE
    allocated = idranges.get(manager.db, inst["uuid"])
    assert allocated is not None
    before = _ranges(manager.db)
    with _statements(manager.db) as seen:
        assert manager.spec(row).id_range == allocated
        recovery.sync_power_states(manager)
    assert not [s for s in seen if _WRITE.match(s)], seen
    assert _ranges(manager.db) == before


def test_a_privileged_build_gets_no_range(manager, tmp_path):
    _flavor, image = fx.seed_catalog(manager.db, tmp_path)
    flavor = catalog.flavor_create(manager.db, dict(
        flavorid="2", name="m1.priv", vcpus=1, memory_mb=512, root_gb=1),
        extra_specs={"pyct:privileged": "true"})
    inst = fx.new_instance(manager.db, flavor, image, "host-r")
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    assert instances.get(manager.db, inst["uuid"])["vm_state"] == \
        states.ACTIVE
    assert idranges.get(manager.db, inst["uuid"]) is None
    assert _ranges(manager.db) == []


def test_a_build_reads_its_image_row_once(manager, tmp_path):
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-r")
    with _statements(manager.db) as seen:
        manager.build_and_run_instance(_ctxt(), inst["uuid"])
    assert instances.get(manager.db, inst["uuid"])["vm_state"] == \
        states.ACTIVE
    reads = [s for s in seen if _IMAGE_ROW.search(s)]
    assert len(reads) == 1, reads


def test_a_rebuild_reads_its_image_row_once(manager, tmp_path):
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-r")
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    instances.update(manager.db, inst["uuid"],
                     {"task_state": states.REBUILDING})
    with _statements(manager.db) as seen:
        manager.rebuild_instance(_ctxt(), inst["uuid"], states.ACTIVE)
    row = instances.get(manager.db, inst["uuid"])
    assert (row["vm_state"], row["task_state"]) == (states.ACTIVE, None)
    reads = [s for s in seen if _IMAGE_ROW.search(s)]
    assert len(reads) == 1, reads


def _built(manager, tmp_path) -> dict:
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-r")
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    return instances.get(manager.db, inst["uuid"])


def test_get_info_reports_a_guest_reboot_and_restarts_nothing(manager,
                                                              tmp_path):
    row = _built(manager, tmp_path)
    spec = manager.spec(row)
    manager.driver.simulate_guest_reboot(row["uuid"])
    for _ in range(3):
        info = manager.driver.get_info(spec)
        assert info.reboot_requested
        assert info.power_state == states.SHUTDOWN
    assert manager.driver._instances[row["uuid"]]["boots"] == 1


def test_power_sync_reboots_a_guest_that_rebooted_itself(manager, tmp_path,
                                                         caplog):
    caplog.set_level(logging.INFO)
    row = _built(manager, tmp_path)
    uuid = row["uuid"]
    manager.driver.simulate_guest_reboot(uuid)
    assert recovery.sync_power_states(manager) == 1
    entry = manager.driver._instances[uuid]
    assert (entry["boots"], entry["power_state"]) == (2, states.RUNNING)
    assert "hard reboot #2" in entry["console"]
    row = instances.get(manager.db, uuid)
    assert (row["vm_state"], row["task_state"], row["power_state"]) == (
        states.ACTIVE, None, states.RUNNING)
    reboot = [a for a in actions.action_list(manager.db, uuid)
              if a["action"] == "reboot"]
    assert len(reboot) == 1
    events = actions.action_get(manager.db, uuid,
                                reboot[0]["request_id"])["events"]
    assert [(e["event"], e["result"]) for e in events] == [
        ("compute_reboot_instance", "Success")]
    assert any(uuid in r.getMessage() and "rebooted itself" in
               r.getMessage() for r in caplog.records)
    # the next sync finds it running: nothing to do
    assert recovery.sync_power_states(manager) == 0
    assert entry["boots"] == 2


def test_power_sync_leaves_a_powered_off_guest_off(manager, tmp_path):
    """A guest that shut down (not a reboot) is shown SHUTOFF, as before."""
    row = _built(manager, tmp_path)
    manager.driver.simulate_crash(row["uuid"])
    assert recovery.sync_power_states(manager) == 1
    row = instances.get(manager.db, row["uuid"])
    assert (row["vm_state"], row["power_state"]) == (states.STOPPED,
                                                     states.SHUTDOWN)
    assert not [a for a in actions.action_list(manager.db, row["uuid"])
                if a["action"] == "reboot"]


def test_power_sync_does_not_reboot_a_guest_a_request_took(manager,
                                                           tmp_path):
    """The sync moves the server into its reboot with a compare-and-swap
    on the task state: a request that got there first wins."""
    row = _built(manager, tmp_path)
    manager.driver.simulate_guest_reboot(row["uuid"])
    instances.update(manager.db, row["uuid"],
                     {"task_state": states.POWERING_OFF})
    assert recovery._start_guest_reboot(manager, row["uuid"]) == 0
    assert manager.driver._instances[row["uuid"]]["boots"] == 1
