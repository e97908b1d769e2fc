"""The database handle: one engine and its sessions, for any backend.

``Database`` is built from a SQLAlchemy URL (SQLite for the all-in-one and
unit tests, PostgreSQL or MariaDB in production) and hands out transactional
sessions. Every query module takes a ``Database``; SQLAlchemy's own errors
are turned into ``exception.DBError`` here, at the boundary.
"""

from __future__ import annotations

import contextlib
import threading
from typing import Iterator

import sqlalchemy as sa
from sqlalchemy import event, exc as sa_exc, pool
from sqlalchemy.orm import Session, sessionmaker

from pyct_driver import exception


class Database:
    """A connection pool to one database and a session factory over it."""

    def __init__(self, url: str, max_pool_size: int = 10,
                 debug: bool = False) -> None:
        self.url = sa.engine.make_url(url)
        kwargs: dict = {"echo": debug, "future": True}
        if self.url.get_backend_name() == "sqlite":
            kwargs["connect_args"] = {"check_same_thread": False,
                                      "timeout": 30}
            if self.url.database in (None, "", ":memory:"):
                kwargs["poolclass"] = pool.StaticPool
        else:
            kwargs.update(pool_size=max_pool_size, pool_pre_ping=True,
                          pool_recycle=3600)
        try:
            self.engine = sa.create_engine(self.url, **kwargs)
        except (sa_exc.ArgumentError, ImportError) as err:
            raise exception.DBError(reason=str(err)) from err
        if self.url.get_backend_name() == "sqlite":
            event.listen(self.engine, "connect", _sqlite_pragmas)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        # SQLite has one writer at a time and its busy handler sleeps in
        # steps of up to 100 ms; queueing this process's transactions on a
        # lock instead makes concurrent requests wait microseconds
        self._serial = (threading.RLock()
                        if self.url.get_backend_name() == "sqlite"
                        else contextlib.nullcontext())
        # the session of this thread's ``transaction()``, if one is open
        self._joined = threading.local()

    @contextlib.contextmanager
    def session(self, serializable: bool = False) -> Iterator[Session]:
        """A session inside one transaction, committed on success.

        ``serializable`` makes the transaction behave as if it ran alone,
        for a check-then-insert no unique key guards: a racing one fails
        with ``OperationalError`` (PostgreSQL: serialization failure,
        MariaDB: deadlock) or, on SQLite, waits for the write lock.
        Inside ``transaction()`` (same thread) a non-serializable session
        is that transaction's: nothing is committed until it ends, and an
        error raised here is the caller's to handle. A serializable one is
        refused there: it would be a second transaction, and on SQLite its
        ``BEGIN IMMEDIATE`` waits, on this very thread, for the outer one's
        write lock until the busy timeout.
        """
        joined = getattr(self._joined, "session", None)
        if joined is not None:
            if serializable:
                raise exception.DBError(
                    reason="a serializable session cannot open inside "
                           "transaction(): run it before or after")
            yield joined
            return
        try:
            with self._serial, self._sessions.begin() as session:
                if serializable:
                    self._isolate(session)
                yield session
        except sa_exc.SQLAlchemyError as err:
            if unreachable(err):
                # rolled back (or never begun): the caller may retry
                raise exception.DBUnavailable(reason=_short(err)) from err
            raise exception.DBError(reason=_short(err)) from err

    @contextlib.contextmanager
    def transaction(self) -> Iterator[Session]:
        """One transaction for every ``session()`` opened inside, in this
        thread: a step of several reads and writes pays for one connection
        checkout (a ping on PostgreSQL and MariaDB), one COMMIT and, on
        SQLite, one turn of the process's lock, instead of one each.
        Nested, it joins the outer one; committed when the outermost ends,
        rolled back if it raises."""
        if getattr(self._joined, "session", None) is not None:
            yield self._joined.session
            return
        with self.session() as session:
            self._joined.session = session
            try:
                yield session
            finally:
                self._joined.session = None

    def _isolate(self, session: Session) -> None:
        if self.url.get_backend_name() == "sqlite":
            # pysqlite runs SELECTs outside any transaction and only
            # begins one at the first write; take the write lock first so
            # another process cannot commit between our read and write
            session.connection().exec_driver_sql("BEGIN IMMEDIATE")
        else:
            session.connection(
                execution_options={"isolation_level": "SERIALIZABLE"})

    def dispose(self) -> None:
        self.engine.dispose()


def _sqlite_pragmas(dbapi_conn, _record) -> None:
    cur = dbapi_conn.cursor()
    # WAL lets the API read while the compute service writes
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA foreign_keys=ON")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.close()


# MySQL client errors of a connection (not of a statement): can't
# connect (2002 socket, 2003 TCP), server gone away (2006), lost (2013)
_MYSQL_CONNECTION_ERRORS = (2002, 2003, 2006, 2013)


def unreachable(err: sa_exc.SQLAlchemyError) -> bool:
    """Whether ``err`` says the database could not be talked to (refused,
    dropped, pool exhausted), rather than that it refused a statement."""
    if isinstance(err, (sa_exc.DisconnectionError, sa_exc.TimeoutError)):
        return True
    if not isinstance(err, sa_exc.DBAPIError):
        return False
    if err.connection_invalidated:
        return True  # the dialect recognised a dropped connection
    if not isinstance(err, (sa_exc.OperationalError,
                            sa_exc.InterfaceError)):
        return False
    orig = err.orig
    if hasattr(orig, "pgcode"):
        # psycopg2: a statement's error carries a SQLSTATE; a refused
        # or broken connection has none
        return orig.pgcode is None
    args = getattr(orig, "args", ())
    return bool(args) and args[0] in _MYSQL_CONNECTION_ERRORS


def _short(err: Exception) -> str:
    text = str(getattr(err, "orig", None) or err)
    return text.splitlines()[0][:255] if text else type(err).__name__


def row_to_dict(row: object) -> dict:
    """Column values of an ORM row as a plain dict (attribute names)."""
    mapper = sa.inspect(type(row))
    return {attr.key: getattr(row, attr.key) for attr in mapper.column_attrs}


def read_columns(session: Session, statement: sa.Executable,
                 params: dict | None = None) -> sa.CursorResult:
    """Run a SELECT of plain columns (no ORM entities) on the session's
    connection, in its transaction: rows as ``session.execute`` gives
    them for such a SELECT, for about half its CPU (no ORM compile and
    loading steps; a status poll and a boot run several). Pending ORM
    changes are flushed first, as ``session.execute`` would."""
    session.flush()
    return session.connection().execute(statement, params)


def plain_select(model: type) -> sa.Select:
    """SELECT of ``model``'s columns, each labelled with its attribute
    name: ``session.execute(...).mappings()`` then gives what
    ``row_to_dict`` gives, without building ORM objects (a list page of
    a thousand rows spends most of its time there otherwise)."""
    mapper = sa.inspect(model)
    return sa.select(*[attr.columns[0].label(attr.key)
                       for attr in mapper.column_attrs])
