"""One-time console tokens on the real PostgreSQL and MariaDB: a token is
good once even when many proxies race to use it, and expires."""

from __future__ import annotations

import threading
import time

import pytest
import sqlalchemy as sa

from pyct_driver.db import console_tokens, migration, models
from pyct_driver.db.engine import Database
from tests import dbfixtures

BACKENDS = {"postgresql": dbfixtures.make_postgres_url,
            "mariadb": dbfixtures.make_mariadb_url}


@pytest.fixture(params=sorted(BACKENDS))
def db(request):
    with BACKENDS[request.param]() as url:
        migration.upgrade(url)
        database = Database(url, max_pool_size=12)
        yield database
        database.dispose()


def test_a_token_is_consumed_once_under_a_race(db):
    token = console_tokens.authorize(db, "u1", "serial", "127.0.0.1", 10000,
                                     "key", "ws://127.0.0.1:6083/", 600)
    won: list = []
    gate = threading.Barrier(8)

    def use():
        gate.wait()
        won.append(console_tokens.consume(db, token))
    threads = [threading.Thread(target=use) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    good = [w for w in won if w is not None]
    assert len(won) == 8 and len(good) == 1, won
    assert good[0].internal_access_path == "key" and good[0].port == 10000
    assert 590 <= good[0].expires - time.time() <= 600


def test_expired_tokens_are_refused_and_purged(db):
    old = console_tokens.authorize(db, "u1", "serial", "h", 1, "k",
                                   "ws://x/", 600)
    with db.session() as session:
        session.execute(sa.update(models.console_models.ConsoleAuthToken)
                        .values(expires=int(time.time()) - 1))
    assert console_tokens.consume(db, old) is None
    console_tokens.authorize(db, "u2", "serial", "h", 1, "k", "ws://x/", 600)
    with db.session() as session:
        uuids = session.scalars(sa.select(
            models.console_models.ConsoleAuthToken.instance_uuid)).all()
    assert uuids == ["u2"]
