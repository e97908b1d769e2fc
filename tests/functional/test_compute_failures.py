"""Failures in the compute manager leave a trace: a log line naming the
instance and, where the instance's state changes, a fault row. Driven
directly on a manager with the fake driver and a SQLite database (no bus
needed: the endpoints are plain methods)."""

from __future__ import annotations

import logging

import pytest

from pyct_driver import context, exception, states
from pyct_driver.compute import recovery
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.db import actions, instances
from pyct_driver.virt.fake import FakeDriver
from tests.functional import compute_fixtures as fx


@pytest.fixture
def manager(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    yield ComputeManager(db, FakeDriver(conf), "host-f",
                         shutdown_timeout=1)


def _ctxt():
    return context.RequestContext("u", "p1", ["member"])


def _fault(manager, uuid) -> str:
    return actions.fault_latest(manager.db, [uuid])[uuid]["message"]


def _fail(manager, monkeypatch, method: str, reason: str) -> None:
    """Make the driver's ``method`` raise a VirtError with ``reason``."""
    def refuse(*_args):
        raise exception.VirtError(reason=reason)
    monkeypatch.setattr(manager.driver, method, refuse)


def _built(manager, tmp_path, task_state: str) -> dict:
    """An ACTIVE instance the API just moved into ``task_state``."""
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-f")
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    return instances.update(manager.db, inst["uuid"],
                            {"task_state": task_state})


def _logged(caplog, *words) -> bool:
    return any(all(w in r.getMessage() for w in words)
               for r in caplog.records if r.levelno >= logging.WARNING)


def _left(manager, caplog, uuid: str, vm_state: str, fault: str,
          *logged: str) -> None:
    """The instance settled in ``vm_state`` with ``fault`` kept, and a
    warning names it with ``logged``."""
    row = instances.get(manager.db, uuid)
    assert (row["vm_state"], row["task_state"]) == (vm_state, None)
    assert fault in _fault(manager, uuid)
    assert _logged(caplog, uuid, *logged)


def test_build_failing_before_the_driver_is_logged_with_a_fault(
        manager, tmp_path, monkeypatch, caplog):
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-f")

    def no_spec(_instance, _image):
        raise exception.DBError(reason="id ranges exhausted")
    # the spec (and its id range) is made before the driver is called
    # (and before the block that used to log and record faults)
    monkeypatch.setattr(manager, "build_spec", no_spec)
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    # a database error's own text is for the log: the fault names the class
    _left(manager, caplog, inst["uuid"], states.ERROR, "DBError",
          "build of", "id ranges exhausted")
    assert "id ranges exhausted" not in _fault(manager, inst["uuid"])


def test_failed_cleanup_of_a_failed_build_is_logged(manager, tmp_path,
                                                    monkeypatch, caplog):
    flavor, image = fx.seed_catalog(manager.db, tmp_path,
                                    {"fake_fail": "spawn"})
    inst = fx.new_instance(manager.db, flavor, image, "host-f")
    _fail(manager, monkeypatch, "destroy", "guest cgroup busy")
    manager.build_and_run_instance(_ctxt(), inst["uuid"])
    assert "injected spawn failure" in _fault(manager, inst["uuid"])
    assert _logged(caplog, "cleaning up the failed build of",
                   inst["uuid"], "guest cgroup busy")


def test_failed_delete_is_logged_and_leaves_error(manager, tmp_path,
                                                  monkeypatch, caplog):
    inst = _built(manager, tmp_path, states.DELETING)
    _fail(manager, monkeypatch, "destroy", "rootfs still mounted")
    manager.terminate_instance(_ctxt(), inst["uuid"])
    _left(manager, caplog, inst["uuid"], states.ERROR,
          "rootfs still mounted", "delete of", "rootfs still mounted")


def test_interrupted_build_whose_cleanup_fails_is_logged(
        manager, tmp_path, monkeypatch, caplog):
    flavor, image = fx.seed_catalog(manager.db, tmp_path)
    inst = fx.new_instance(manager.db, flavor, image, "host-f")
    instances.update(manager.db, inst["uuid"],
                     {"task_state": states.SPAWNING})
    _fail(manager, monkeypatch, "destroy", "launcher gone")
    recovery.recover_host(manager)
    _left(manager, caplog, inst["uuid"], states.ERROR, "interrupted",
          "cleaning up the interrupted build of", "launcher gone")


def test_failed_pause_is_logged_with_a_fault(manager, tmp_path,
                                             monkeypatch, caplog):
    inst = _built(manager, tmp_path, states.PAUSING)
    _fail(manager, monkeypatch, "pause", "freezer refused")
    manager.pause_instance(_ctxt(), inst["uuid"])
    # a failed pause leaves the server as it was, with the fault kept
    _left(manager, caplog, inst["uuid"], states.ACTIVE, "freezer refused",
          "compute_pause_instance", "freezer refused")
