"""The migrations on SQLite: upgrade, no drift from the models, queries work.

The same checks (tests/dbchecks.py) run on real PostgreSQL and MariaDB in
tests/integration/test_db_backends.py.
"""

from __future__ import annotations

import os
import pathlib

import pytest
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from pyct_driver import exception
from pyct_driver.db import migration, models
from pyct_driver.db.engine import Database
from tests import dbchecks, dbfixtures


@pytest.fixture
def url(tmp_path: pathlib.Path) -> str:
    return dbfixtures.migrated_sqlite(tmp_path)


@pytest.fixture
def db(url: str):
    database = Database(url)
    yield database
    database.dispose()


def test_migrations_dir_is_found_whatever_the_cwd(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    found = pathlib.Path(migration.migrations_dir())
    assert (found / "env.py").is_file() and (found / "versions").is_dir()
    assert found.is_absolute()


def test_new_database_has_no_revision_then_head(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.sqlite'}"
    assert migration.current(url) is None
    migration.upgrade(url)
    assert migration.current(url) == migration.head()
    migration.upgrade(url)  # at head already: a no-op, not an error
    assert migration.current(url) == migration.head()


def test_at_head_without_drift(url):
    dbchecks.check_at_head_without_drift(url)


def test_drift_check_sees_a_missing_index(url):
    # proves the drift check can fail: drop what the models declare
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql("DROP INDEX instances_host_deleted_idx")
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn),
                                models.Base.metadata)
    engine.dispose()
    assert [d[0] for d in diff] == ["add_index"]


def test_downgrade_to_base_then_up_again(url):
    from alembic import command
    from alembic.config import Config
    cfg = Config()
    cfg.set_main_option("script_location", migration.migrations_dir())
    cfg.set_main_option("sqlalchemy.url", url)
    command.downgrade(cfg, "base")
    assert migration.current(url) is None
    engine = sa.create_engine(url)
    assert sa.inspect(engine).get_table_names() == ["alembic_version"]
    engine.dispose()
    migration.upgrade(url)
    dbchecks.check_at_head_without_drift(url)


def test_unknown_revision_is_a_db_error(tmp_path):
    with pytest.raises(exception.DBError) as err:
        migration.upgrade(f"sqlite:///{tmp_path / 'x.sqlite'}", "nope")
    assert err.value.__cause__ is not None


def test_unreachable_database_is_a_db_error(tmp_path):
    missing = tmp_path / "no" / "such" / "dir" / "x.sqlite"
    with pytest.raises(exception.DBError):
        migration.upgrade(f"sqlite:///{missing}")
    with pytest.raises(exception.DBError):
        migration.current(f"sqlite:///{missing}")
    with pytest.raises(exception.DBError):
        migration.upgrade("nosuchdialect://x/y")
    assert not os.path.exists(missing.parent)


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


def test_cas_race(db):
    dbchecks.check_cas_race(db)


@pytest.mark.parametrize("attr,make", [
    ("POSTGRES_ADMIN_URL", dbfixtures.make_postgres_url),
    ("MARIADB_ADMIN_URL", dbfixtures.make_mariadb_url)])
def test_unreachable_server_fails_with_a_clear_message(monkeypatch, attr,
                                                        make):
    url = {"POSTGRES_ADMIN_URL":
           "postgresql+psycopg2://postgres@127.0.0.1:1/postgres",
           "MARIADB_ADMIN_URL": "mysql+pymysql://root@127.0.0.1:1/"}[attr]
    monkeypatch.setattr(dbfixtures, attr, url)
    with pytest.raises(pytest.fail.Exception, match="not reachable"):
        with make():
            pass


def test_first_reports_race(db):
    dbchecks.check_first_reports_race(db)
