"""Schema migrations: bring a database to the schema the models describe.

The alembic scripts live in the top-level ``migrations/`` folder of the
source tree; an installed wheel carries them as data files under
``<prefix>/share/pyct/migrations``. ``migrations_dir`` finds them either
way (never relative to the working directory), and alembic is configured
in code, so ``pyct-manage db sync`` works from anywhere. Alembic and
SQLAlchemy failures leave this module as ``exception.DBError``.
"""

from __future__ import annotations

import importlib.metadata
import pathlib
import site
import sys
import sysconfig

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from alembic.util import exc as alembic_exc
from sqlalchemy import exc as sa_exc

from pyct_driver import exception

_DATA_SUBDIR = pathlib.PurePosixPath("share", "pyct", "migrations")
# env.py imports our models; a stray top-level "migrations" folder of some
# other project next to us must not be mistaken for ours
_MARKER = "pyct_driver.db"


def _is_ours(path: pathlib.Path) -> bool:
    env = path / "env.py"
    try:
        return (path / "versions").is_dir() and _MARKER in env.read_text()
    except OSError:
        return False


def _installed_candidates() -> list[pathlib.Path]:
    found: list[pathlib.Path] = []
    # the distribution's RECORD knows where pip put its data files, whatever
    # the install scheme (venv, --user, --prefix, distro layout)
    dists = importlib.metadata.packages_distributions().get("pyct_driver", [])
    for name in dict.fromkeys(dists):
        try:
            files = importlib.metadata.distribution(name).files or []
        except importlib.metadata.PackageNotFoundError:
            continue
        for f in files:
            if f.name == "env.py" and f.as_posix().endswith(
                    f"{_DATA_SUBDIR}/env.py"):
                found.append(pathlib.Path(f.locate()).resolve().parent)
    prefixes = [sysconfig.get_path("data"), sys.prefix, sys.base_prefix,
                site.getuserbase()]
    found.extend(pathlib.Path(p, _DATA_SUBDIR) for p in prefixes if p)
    return found


def migrations_dir() -> str:
    """The folder holding alembic's ``env.py`` and ``versions/``."""
    source = pathlib.Path(__file__).resolve().parents[2] / "migrations"
    for candidate in [source, *_installed_candidates()]:
        if _is_ours(candidate):
            return str(candidate)
    raise exception.DBError(
        reason="pyct migrations not found: neither a source checkout nor "
               f"an installed {_DATA_SUBDIR}")


def _config(connection: sa.engine.Connection) -> Config:
    cfg = Config()
    # configparser interpolation would eat a literal '%' in the path
    cfg.set_main_option("script_location",
                        migrations_dir().replace("%", "%%"))
    cfg.attributes["connection"] = connection
    return cfg


def _engine(url: str) -> sa.engine.Engine:
    try:
        return sa.create_engine(url, poolclass=sa.pool.NullPool)
    except (sa_exc.ArgumentError, ImportError) as err:
        raise exception.DBError(reason=str(err)) from err


def upgrade(url: str, revision: str = "head") -> None:
    """Apply every migration up to ``revision`` on the database at ``url``."""
    engine = _engine(url)
    try:
        # one connection for the whole run: the URL never goes through
        # alembic's config parser, and PostgreSQL's DDL stays transactional
        with engine.begin() as conn:
            command.upgrade(_config(conn), revision)
    except (alembic_exc.CommandError, sa_exc.SQLAlchemyError) as err:
        raise exception.DBError(reason=_short(err)) from err
    finally:
        engine.dispose()


def current(url: str) -> str | None:
    """The revision the database is at; ``None`` if never migrated."""
    engine = _engine(url)
    try:
        with engine.connect() as conn:
            return MigrationContext.configure(conn).get_current_revision()
    except (alembic_exc.CommandError, sa_exc.SQLAlchemyError) as err:
        raise exception.DBError(reason=_short(err)) from err
    finally:
        engine.dispose()


def head() -> str | None:
    """The newest revision the shipped migrations know."""
    try:
        return ScriptDirectory(migrations_dir()).get_current_head()
    except alembic_exc.CommandError as err:
        raise exception.DBError(reason=_short(err)) from err


def _short(err: Exception) -> str:
    text = str(getattr(err, "orig", None) or err)
    return text.splitlines()[0][:255] if text else type(err).__name__
