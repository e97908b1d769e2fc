"""The server list filter cases of ``test_server_list_filters`` again, on
PostgreSQL and on MariaDB: the WHERE clauses, NULL ordering and keyset
pages must mean the same on every backend pyct supports."""

from __future__ import annotations

import pytest

from pyct_driver.db import migration
from tests.integration.conftest import BACKENDS
from tests.unit.test_api_app import Harness
from tests.unit.test_server_list_filters import *  # noqa: F401,F403
from tests.unit.test_server_list_filters import build


@pytest.fixture(scope="module", params=sorted(BACKENDS))
def world(request):
    with BACKENDS[request.param]() as url:
        migration.upgrade(url)
        h = Harness(db_url=url)
        try:
            yield build(h)
        finally:
            h.db.engine.dispose()
