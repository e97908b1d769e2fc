"""Serializable sessions on SQLite: nobody writes between their read and
their write, not even another process (here: a second handle on the same
file, which shares no in-process lock with the first)."""

from __future__ import annotations

import threading

import sqlalchemy as sa

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
