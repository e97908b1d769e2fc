"""Throw-away databases for tests: SQLite files and real PostgreSQL/MariaDB.

``make_postgres_url()`` and ``make_mariadb_url()`` create a uniquely named
database on the server running here, yield its SQLAlchemy URL and drop it
afterwards, even when the test failed. The admin URLs can be pointed
elsewhere with ``PYCT_TEST_POSTGRES_URL`` / ``PYCT_TEST_MARIADB_URL``. A
server that does not answer fails the test with a message saying so: these
backends are part of what the suite proves, so they are never skipped.
``migrated_sqlite(tmp_path)`` returns the URL of a SQLite file at the
migrations' head.
"""

from __future__ import annotations

import contextlib
import os
import pathlib
import uuid
from typing import Iterator

import pytest
import sqlalchemy as sa

from pyct_driver.db import migration

POSTGRES_ADMIN_URL = os.environ.get(
    "PYCT_TEST_POSTGRES_URL",
    "postgresql+psycopg2://postgres@127.0.0.1:5432/postgres")
MARIADB_ADMIN_URL = os.environ.get(
    "PYCT_TEST_MARIADB_URL",
    "mysql+pymysql://root@127.0.0.1:3306/?charset=utf8mb4")


def _unique_name() -> str:
    return f"pyct_test_{uuid.uuid4().hex[:12]}"


def _admin_engine(url: str, what: str, env: str) -> sa.engine.Engine:
    backend = sa.engine.make_url(url).get_backend_name()
    timeout = {"postgresql": {"connect_timeout": 5},
               "mysql": {"connect_timeout": 5}}.get(backend, {})
    engine = sa.create_engine(url, isolation_level="AUTOCOMMIT",
                              poolclass=sa.pool.NullPool,
                              connect_args=timeout)
    try:
        engine.connect().close()
    except sa.exc.OperationalError as err:
        engine.dispose()
        pytest.fail(f"{what} is not reachable at {engine.url!r}: "
                    f"{str(err.orig).strip()}. Start it (`make test` does) "
                    f"or set {env} to an admin URL of one.", pytrace=False)
    return engine


@contextlib.contextmanager
def make_postgres_url() -> Iterator[str]:
    """A fresh, empty PostgreSQL database for the duration of the block."""
    admin = _admin_engine(POSTGRES_ADMIN_URL, "PostgreSQL server",
                          "PYCT_TEST_POSTGRES_URL")
    name = _unique_name()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}" ENCODING UTF8 '
                                 "TEMPLATE template0")
        try:
            yield admin.url.set(database=name).render_as_string(
                hide_password=False)
        finally:
            with admin.connect() as conn:
                # FORCE ends the test's own leftover sessions on this db
                conn.exec_driver_sql(
                    f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        admin.dispose()


@contextlib.contextmanager
def make_mariadb_url() -> Iterator[str]:
    """A fresh, empty MariaDB/MySQL database for the duration of the block."""
    admin = _admin_engine(MARIADB_ADMIN_URL, "MariaDB server",
                          "PYCT_TEST_MARIADB_URL")
    name = _unique_name()
    try:
        with admin.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE `{name}` CHARACTER SET "
                                 "utf8mb4 COLLATE utf8mb4_general_ci")
        try:
            yield admin.url.set(database=name).render_as_string(
                hide_password=False)
        finally:
            with admin.connect() as conn:
                conn.exec_driver_sql(f"DROP DATABASE IF EXISTS `{name}`")
    finally:
        admin.dispose()


def migrated_sqlite(tmp_path: pathlib.Path) -> str:
    """URL of a new SQLite file under ``tmp_path``, upgraded to head."""
    url = f"sqlite:///{tmp_path / 'pyct.sqlite'}"
    migration.upgrade(url)
    return url
