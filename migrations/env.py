"""Alembic environment of pyct: runs the migrations in ``versions/``.

``pyct_driver.db.migration`` configures alembic in code (no alembic.ini,
no dependence on the working directory) and either passes an open
connection in ``config.attributes["connection"]`` or the database URL as
``sqlalchemy.url``. The models' metadata is the autogenerate target, so
``alembic revision --autogenerate`` diffs against the source of truth.
"""

from __future__ import annotations

from alembic import context
import sqlalchemy as sa

from pyct_driver.db import models

config = context.config
target_metadata = models.Base.metadata


def _configure(connection: sa.engine.Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        # SQLite cannot ALTER most things; batch mode rebuilds the table
        render_as_batch=connection.dialect.name == "sqlite",
    )


def run_migrations_offline() -> None:
    context.configure(url=config.get_main_option("sqlalchemy.url"),
                      target_metadata=target_metadata,
                      literal_binds=True,
                      dialect_opts={"paramstyle": "named"})
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _configure(connection)
        with context.begin_transaction():
            context.run_migrations()
        return
    engine = sa.create_engine(config.get_main_option("sqlalchemy.url"),
                              poolclass=sa.pool.NullPool)
    try:
        with engine.connect() as conn:
            _configure(conn)
            with context.begin_transaction():
                context.run_migrations()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
