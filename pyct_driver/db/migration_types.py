"""The column types and table options every alembic migration shares.

A migration is a frozen record of one schema version, so it spells out
its columns instead of importing the models; what it may import is this
module, whose names are as frozen as the migrations that use them: add a
name for a new need, never change what an existing one means.
"""

from __future__ import annotations

from alembic import op
import sqlalchemy as sa
from sqlalchemy.dialects import mysql

# microsecond precision on MySQL/MariaDB too (their DATETIME drops it)
DATETIME = sa.DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql",
                                      "mariadb")
LONGTEXT = sa.Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


def table_opts() -> dict[str, str]:
    """utf8mb4 whatever the server's default, compared byte for byte.

    MySQL's default collations ignore case and trailing spaces, so "m1.tiny"
    and "M1.TINY " would be one flavor name there and two on PostgreSQL and
    SQLite; a binary no-pad collation makes every backend agree, and every
    table has the same one because a foreign key on MySQL/MariaDB needs the
    referenced column's collation.
    """
    bind = op.get_bind()
    if bind.dialect.name != "mysql":
        return {}
    if getattr(bind.dialect, "is_mariadb", False):
        collate = "utf8mb4_nopad_bin"
    elif bind.dialect.server_version_info >= (8, 0, 17):
        collate = "utf8mb4_0900_bin"
    else:
        collate = "utf8mb4_bin"
    return {"mysql_engine": "InnoDB", "mysql_charset": "utf8mb4",
            "mysql_collate": collate}
