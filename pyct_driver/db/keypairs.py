"""Key pairs: a user's named SSH public keys (or x509 certificates).

Key pairs belong to a user, not a project, as in Nova; the unique
(user_id, name) constraint turns a duplicate into ``Duplicate`` (409)
even when two requests race.
"""

from __future__ import annotations

from typing import Any, Callable

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.engine import Database, row_to_dict


def _not_found(user_id: str, name: str) -> exception.NotFound:
    return exception.NotFound(
        f"Keypair {name} not found for user {user_id}")


def create(db: Database, user_id: str, name: str, public_key: str,
           fingerprint: str, type_: str = "ssh",
           guard: Callable[[Any], None] | None = None) -> dict:
    """Store a key pair; Duplicate if the user already has ``name``.
    ``guard`` (a quota check) runs first in the transaction."""
    try:
        with db.session() as session:
            if guard is not None:
                guard(session)
            row = models.KeyPair(user_id=user_id, name=name,
                                 public_key=public_key,
                                 fingerprint=fingerprint, type=type_)
            session.add(row)
            session.flush()
            return row_to_dict(row)
    except exception.DBError as err:
        if isinstance(err.__cause__, sa_exc.IntegrityError):
            raise exception.Duplicate(
                f"Key pair '{name}' already exists.") from err
        raise


def get(db: Database, user_id: str, name: str) -> dict:
    with db.session() as session:
        row = session.scalars(sa.select(models.KeyPair).where(
            models.KeyPair.user_id == user_id,
            models.KeyPair.name == name)).first()
        if row is None:
            raise _not_found(user_id, name)
        return row_to_dict(row)


def list_(db: Database, user_id: str, limit: int | None = None,
          marker: str | None = None) -> list[dict]:
    """A user's key pairs by name; ``marker`` is the last name seen."""
    query = sa.select(models.KeyPair).where(
        models.KeyPair.user_id == user_id)
    with db.session() as session:
        if marker is not None:
            if session.scalars(query.where(
                    models.KeyPair.name == marker)).first() is None:
                raise exception.Invalid(f"Marker {marker} could not be "
                                        f"found.")
            query = query.where(models.KeyPair.name > marker)
        query = query.order_by(models.KeyPair.name)
        if limit is not None:
            query = query.limit(limit)
        return [row_to_dict(r) for r in session.scalars(query)]


def delete(db: Database, user_id: str, name: str) -> None:
    with db.session() as session:
        result = session.execute(sa.delete(models.KeyPair).where(
            models.KeyPair.user_id == user_id,
            models.KeyPair.name == name))
        if result.rowcount != 1:
            raise _not_found(user_id, name)
