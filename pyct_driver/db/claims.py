"""Request claims (``claim_models``): the compute side's "run once".

A compute handler calls ``claim`` before it touches a guest: True means
this request id has never run this handler on this instance, and it now
runs here; False means it ran, runs, or was given up by the API (a
doubled message, a retried cast, a delivery after the stuck-work
timeout), so the handler does nothing. ``finish`` marks the claim done.
The API's stuck-work task claims in its own transaction
(``db.stuck_work``).
"""

from __future__ import annotations

import sqlalchemy as sa
from sqlalchemy import exc as sa_exc

from pyct_driver import exception
from pyct_driver.db import models
from pyct_driver.db.claim_models import DONE, RUNNING, RequestClaim
from pyct_driver.db.engine import Database, row_to_dict


def claim(db: Database, instance_uuid: str, request_id: str, method: str,
          owner: str) -> bool:
    """Whether this request is new on this instance (and now ours)."""
    try:
        with db.session() as session:
            session.add(RequestClaim(
                instance_uuid=instance_uuid, request_id=request_id,
                method=method, owner=owner, state=RUNNING))
    except exception.DBError as err:
        if isinstance(err.__cause__, sa_exc.IntegrityError):
            return False  # the unique key: someone had it first
        raise
    return True


# built once: every request a compute service runs finishes its claim
# (an UPDATE's parameters may not take its columns' names)
_FINISH = sa.update(RequestClaim).where(
    RequestClaim.instance_uuid == sa.bindparam("b_uuid"),
    RequestClaim.request_id == sa.bindparam("b_request_id"),
    RequestClaim.method == sa.bindparam("b_method"),
    RequestClaim.state == RUNNING).values(
        state=DONE, updated_at=sa.bindparam("b_updated_at"))


def finish(db: Database, instance_uuid: str, request_id: str,
           method: str) -> None:
    """Mark our running claim done (a taken-over one stays as it is)."""
    with db.session() as session:
        session.execute(_FINISH, {"b_uuid": instance_uuid,
                                  "b_request_id": request_id,
                                  "b_method": method,
                                  "b_updated_at": models.utcnow()})


def for_instance(db: Database, instance_uuid: str) -> list[dict]:
    """Every claim on an instance, oldest first (operators, tests)."""
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(
            sa.select(RequestClaim).where(
                RequestClaim.instance_uuid == instance_uuid).order_by(
                    RequestClaim.id))]
