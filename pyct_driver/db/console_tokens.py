"""One-time console tokens (the serial console's ``?token=``).

``authorize`` makes a random token, stores only its SHA-256 with where its
console is and when it expires, and returns the token itself (shown once,
in the URL). ``consume`` is the proxy's check: a token is good once, before
it expires -- the row is deleted by the one caller that wins the delete,
so two connects racing with the same token get one console between them.
Expired rows are purged whenever a new token is made.
"""

from __future__ import annotations

import dataclasses
import hashlib
import secrets
import time

import sqlalchemy as sa

from pyct_driver.db import models
from pyct_driver.db.engine import Database

_T = models.console_models.ConsoleAuthToken


@dataclasses.dataclass(frozen=True)
class ConnectInfo:
    """What a consumed token says: where the console is."""

    instance_uuid: str
    console_type: str
    host: str
    port: int
    internal_access_path: str
    access_url_base: str
    expires: int


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def authorize(db: Database, instance_uuid: str, console_type: str,
              host: str, port: int, internal_access_path: str,
              access_url_base: str, ttl: int) -> str:
    """Store a new token valid for ``ttl`` seconds; returns the token."""
    token = secrets.token_urlsafe(32)
    now = int(time.time())
    with db.session() as session:
        session.execute(sa.delete(_T).where(_T.expires <= now))
        session.add(_T(token_hash=_hash(token), console_type=console_type,
                       host=host, port=int(port),
                       internal_access_path=internal_access_path,
                       instance_uuid=instance_uuid,
                       access_url_base=access_url_base,
                       expires=now + int(ttl)))
    return token


def consume(db: Database, token: str) -> ConnectInfo | None:
    """The token's connect info, once; None if unknown, used or expired."""
    if not token or len(token) > 256:
        return None
    with db.session() as session:
        row = session.scalars(sa.select(_T).where(
            _T.token_hash == _hash(token))).first()
        if row is None:
            return None
        info = ConnectInfo(row.instance_uuid, row.console_type, row.host,
                           int(row.port), row.internal_access_path,
                           row.access_url_base, int(row.expires))
        gone = session.execute(sa.delete(_T).where(_T.id == row.id))
    if gone.rowcount != 1 or info.expires <= time.time():
        return None
    return info


def delete_for_instance(db: Database, instance_uuid: str) -> None:
    """Forget every token of an instance (it was deleted)."""
    with db.session() as session:
        session.execute(sa.delete(_T).where(
            _T.instance_uuid == instance_uuid))
