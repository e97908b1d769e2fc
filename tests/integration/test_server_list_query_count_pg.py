"""The list query-count checks of ``test_server_list_query_count`` again on
PostgreSQL: 1,000 servers, a constant number of statements per page."""

from __future__ import annotations

import pytest

from pyct_driver.db import migration
from tests.dbfixtures import make_postgres_url
from tests.unit.test_api_app import Harness
from tests.unit.test_server_list_query_count import *  # noqa: F401,F403
from tests.unit.test_server_list_query_count import build


@pytest.fixture(scope="module")
def world():
    with make_postgres_url() as url:
        migration.upgrade(url)
        h = Harness(db_url=url)
        try:
            yield build(h)
        finally:
            h.db.engine.dispose()
