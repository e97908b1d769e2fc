"""Sessions of the database handle.

Serializable sessions on SQLite: nobody writes between their read and
their write, not even another process (here: a second handle on the same
file, which shares no in-process lock with the first). ``transaction()``:
the sessions opened inside join it, one COMMIT at its end, nothing kept
if it fails; a serializable session is refused inside it."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db import networks as nets
from pyct_driver.db.engine import Database


def test_serializable_sqlite_session_keeps_other_writers_out(tmp_path):
    url = f"sqlite:///{tmp_path}/one.sqlite"
    mine, other = Database(url), Database(url)
    models.Base.metadata.create_all(mine.engine)
    wrote = threading.Event()

    def write() -> None:
        nets.create_network(other, "p2", "theirs", nets.IpamSettings(), list)
        wrote.set()

    writer = threading.Thread(target=write)
    try:
        with mine.session(serializable=True) as session:
            assert session.scalar(sa.select(sa.func.count()).select_from(
                models.Network)) == 0
            writer.start()
            # what we read stays true: their write waits for our commit
            assert not wrote.wait(1.0)
            session.add(models.Network(
                id="00000000-0000-4000-8000-000000000001", name="mine",
                project_id="p1", cidr="10.241.0.0/24", gateway="10.241.0.1"))
        writer.join(30)
        assert wrote.is_set()
        assert [(n["name"], n["cidr"]) for n in nets.list_networks(mine)] == [
            ("mine", "10.241.0.0/24"), ("theirs", "10.241.1.0/24")]
    finally:
        if writer.is_alive():
            writer.join(30)
        mine.dispose()
        other.dispose()


def _networks(db: Database) -> list[str]:
    with db.session() as session:
        return sorted(session.scalars(sa.select(models.Network.name)))


def _add_network(db: Database, name: str, octet: int) -> None:
    with db.session() as session:
        session.add(models.Network(
            id=f"00000000-0000-4000-8000-{octet:012d}", name=name,
            project_id="p1", cidr=f"10.241.{octet}.0/24",
            gateway=f"10.241.{octet}.1"))


def test_sessions_inside_a_transaction_join_it(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/joined.sqlite")
    models.Base.metadata.create_all(db.engine)
    commits = []
    sa.event.listen(db.engine, "commit", lambda _conn: commits.append(1))
    with db.transaction() as outer:
        _add_network(db, "a", 1)
        with db.session() as inner, db.transaction() as nested:
            assert inner is outer and nested is outer
        _add_network(db, "b", 2)
        assert commits == []  # nothing committed before the end
    assert commits == [1] and _networks(db) == ["a", "b"]
    # outside a transaction each session is its own again
    _add_network(db, "c", 3)
    assert len(commits) == 3


def test_a_failing_transaction_keeps_none_of_its_sessions_writes(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/rolled.sqlite")
    models.Base.metadata.create_all(db.engine)
    with pytest.raises(RuntimeError):
        with db.transaction():
            _add_network(db, "a", 1)
            raise RuntimeError("later step failed")
    assert _networks(db) == []
    # and the thread is free of it: the next session commits on its own
    _add_network(db, "b", 2)
    assert _networks(db) == ["b"]


def test_a_serializable_session_is_refused_inside_a_transaction(tmp_path):
    db = Database(f"sqlite:///{tmp_path}/own.sqlite")
    models.Base.metadata.create_all(db.engine)
    started = time.monotonic()
    with pytest.raises(exception.DBError, match="serializable"):
        with db.transaction():
            _add_network(db, "a", 1)  # the outer one holds the write lock
            with db.session(serializable=True):
                pass
    # refused at once, not after SQLite's 30 s busy timeout
    assert time.monotonic() - started < 5
    assert _networks(db) == []
    # outside a transaction it is its own, as before
    with db.session(serializable=True) as own:
        own.add(models.Network(
            id="00000000-0000-4000-8000-000000000009", name="b",
            project_id="p1", cidr="10.241.9.0/24", gateway="10.241.9.1"))
    assert _networks(db) == ["b"]
