"""uid/gid ranges in the database: disjoint blocks, never host id 0,
allocation races between threads, release exactly once."""

from __future__ import annotations

import threading
import uuid as uuid_mod

import pytest

from pyct_driver import exception, states
from pyct_driver.db import idranges
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db.engine import Database


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/idranges.sqlite")
    models.Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _uuid() -> str:
    return str(uuid_mod.uuid4())


def test_first_range_starts_at_base_and_never_maps_host_root(db):
    start, size = idranges.allocate(db, _uuid())
    assert (start, size) == (idranges.DEFAULT_BASE, 65536)
    assert start > 0 and start % 65536 == 0
    assert start + size - 1 < (1 << 32) - 1


def test_allocate_is_idempotent_and_get_returns_it(db):
    uuid = _uuid()
    first = idranges.allocate(db, uuid)
    assert idranges.allocate(db, uuid) == first
    assert idranges.get(db, uuid) == first
    assert idranges.get(db, _uuid()) is None


def test_released_block_is_reused_first(db):
    a, b, c = _uuid(), _uuid(), _uuid()
    ra, rb, rc = (idranges.allocate(db, u) for u in (a, b, c))
    assert rb[0] == ra[0] + 65536 and rc[0] == rb[0] + 65536
    assert idranges.release(db, b)
    assert not idranges.release(db, b)
    assert idranges.allocate(db, _uuid()) == rb


def test_configurable_base_and_bad_base(db):
    assert idranges.allocate(db, _uuid(), base=65536 * 7)[0] == 65536 * 7
    for bad in (0, -65536, 65536 + 1):
        with pytest.raises(exception.InvalidInput):
            idranges.allocate(db, _uuid(), base=bad)


def test_exhaustion_is_an_error_not_an_overflow(db):
    last = ((1 << 32) - 1) // 65536 * 65536 - 65536
    assert idranges.allocate(db, _uuid(), base=last)[0] == last
    with pytest.raises(exception.VirtError):
        idranges.allocate(db, _uuid(), base=last)


def test_ten_threads_racing_get_disjoint_ranges(db):
    uuids = [_uuid() for _ in range(10)]
    results: dict[str, tuple[int, int]] = {}
    errors: list[BaseException] = []
    barrier = threading.Barrier(len(uuids))

    def run(uuid: str) -> None:
        try:
            barrier.wait()
            results[uuid] = idranges.allocate(db, uuid)
        except BaseException as err:  # noqa: B902 - reported below
            errors.append(err)
    threads = [threading.Thread(target=run, args=(u,)) for u in uuids]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors, errors
    starts = sorted(start for start, _ in results.values())
    assert len(set(starts)) == 10
    assert all(b - a >= 65536 for a, b in zip(starts, starts[1:]))
    assert all(s > 0 for s in starts)
    for uuid in uuids:
        assert idranges.get(db, uuid) == results[uuid]


def test_same_instance_racing_gets_one_range(db):
    uuid = _uuid()
    got: list[tuple[int, int]] = []
    barrier = threading.Barrier(10)

    def run() -> None:
        barrier.wait()
        got.append(idranges.allocate(db, uuid))
    threads = [threading.Thread(target=run) for _ in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(got) == 10 and len(set(got)) == 1


def test_soft_delete_releases_the_range_exactly_once(db):
    uuid = _uuid()
    db_instances.create_many(db, [{
        "uuid": uuid, "name": "pyct-x", "hostname": "x", "project_id": "p",
        "user_id": "u", "image_ref": "img", "flavor_id": "f",
        "flavor": {"vcpus": 1, "memory_mb": 64, "root_gb": 0},
        "vm_state": states.ACTIVE, "power_state": states.RUNNING,
        "metadata": {}, "reservation_id": "r", "launch_index": 0}])
    taken = idranges.allocate(db, uuid)
    db_instances.soft_delete(db, uuid)
    assert idranges.get(db, uuid) is None
    assert not idranges.release(db, uuid)
    assert idranges.allocate(db, _uuid()) == taken


def test_instance_spec_takes_privilege_only_from_the_flavor(db):
    from pyct_driver.compute.specs import instance_spec
    base_row = {"uuid": _uuid(), "name": "n", "hostname": "h",
                "image_ref": "img", "project_id": "p",
                "metadata": {"pyct:privileged": "true"},
                "flavor": {"vcpus": 1, "memory_mb": 64, "root_gb": 0,
                           "extra_specs": {}}}
    spec = instance_spec(db, base_row)
    assert not spec.privileged and spec.id_range == idranges.get(
        db, base_row["uuid"])
    priv = dict(base_row, uuid=_uuid(), flavor=dict(
        base_row["flavor"], extra_specs={"pyct:privileged": "true"}))
    spec = instance_spec(db, priv)
    assert spec.privileged and spec.id_range is None
    assert idranges.get(db, priv["uuid"]) is None
