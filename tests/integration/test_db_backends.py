"""The migrations and queries on the real PostgreSQL and MariaDB servers.

Each test gets its own freshly created database (dropped afterwards even on
failure), upgrades it with the shipped migrations, checks there is no drift
from the models and runs the same query checks as the SQLite unit test,
plus races of threads on one task-state compare-and-swap, on a project's
first default network and on a service's first reports.
"""

from __future__ import annotations

import pytest

from pyct_driver.db import migration
from pyct_driver.db.engine import Database
from tests import dbchecks, dbfixtures

BACKENDS = {"postgresql": dbfixtures.make_postgres_url,
            "mariadb": dbfixtures.make_mariadb_url}


@pytest.fixture(params=sorted(BACKENDS))
def url(request):
    with BACKENDS[request.param]() as url:
        assert migration.current(url) is None
        migration.upgrade(url)
        yield url


@pytest.fixture
def db(url):
    database = Database(url, max_pool_size=12)
    yield database
    database.dispose()


def test_at_head_without_drift(url):
    dbchecks.check_at_head_without_drift(url)
    migration.upgrade(url)  # idempotent at head
    assert migration.current(url) == migration.head()


def test_types_round_trip(db):
    dbchecks.check_types_round_trip(db)


def test_soft_delete_unique_key(db):
    dbchecks.check_soft_delete_unique_key(db)


def test_flavors_with_extra_specs(db):
    dbchecks.check_flavors(db)


def test_strings_compare_exactly(db):
    dbchecks.check_strings_compare_exactly(db)


def test_instance_queries(db):
    dbchecks.check_instance_queries(db)


def test_services_and_compute_nodes(db):
    dbchecks.check_services(db)


def test_actions_events_faults(db):
    dbchecks.check_actions_and_faults(db)


@pytest.mark.parametrize("round_", range(3))
def test_cas_race_ten_threads(db, round_):
    dbchecks.check_cas_race(db, threads=10)


def test_default_network_race(db):
    dbchecks.check_default_network_race(db)


@pytest.mark.parametrize("round_", range(3))
def test_first_reports_race_six_threads(db, round_):
    dbchecks.check_first_reports_race(db, threads=6)


def test_default_security_group_race(db):
    """Eight first uses of a project's ``default`` group race: one group
    (with its two rules) exists afterwards and every caller got its id."""
    from pyct_driver.db import secgroups
    for round_ in range(10):
        project = f"sg-race-{round_}"
        outcomes = dbchecks._race(8, lambda: secgroups.ensure_default(
            db, project))
        groups = secgroups.list_groups(db, project)
        assert len(groups) == 1, (groups, outcomes)
        assert outcomes == [groups[0]["id"]] * 8, outcomes
        assert len(groups[0]["rules"]) == 2
