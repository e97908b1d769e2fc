"""A database error on the production backends (PostgreSQL, MariaDB) is a
500 whose body carries no driver text: the table the API reads is renamed
away under it, so the real server answers a real error (PostgreSQL's
``UndefinedTable``, MariaDB's 1146), which goes to the log with the request
id while the client reads the generic message."""

from __future__ import annotations

import logging

import pytest

from pyct_driver.api import faults
from pyct_driver.db import migration
from tests.integration.conftest import BACKENDS
from tests.unit.test_api_app import Harness
from tests.unit.test_api_faults import _assert_hidden

# each backend's own words for the missing table, as the log shows them
_LOGGED = {"postgresql": 'relation "flavors" does not exist',
           "mariadb": "flavors' doesn't exist"}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_missing_table_is_a_generic_500(backend, caplog):
    with BACKENDS[backend]() as url:
        migration.upgrade(url)
        h = Harness(db_url=url)
        try:
            with h.db.engine.begin() as conn:
                conn.exec_driver_sql(
                    "ALTER TABLE flavors RENAME TO flavors_gone")
            with caplog.at_level(logging.ERROR, logger=faults.__name__):
                resp = h.request("GET", "/v2.1/flavors/detail")
            _assert_hidden(resp, "flavors",
                           resp.json["computeFault"]["message"], caplog)
            assert _LOGGED[backend] in caplog.text
        finally:
            h.db.dispose()
