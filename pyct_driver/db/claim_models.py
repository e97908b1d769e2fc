"""Request claims: who carries out each request on an instance, once.

A compute handler inserts the row (``owner`` its host, ``state``
running) before it touches the guest, and marks it done after; the API's
stuck-work task inserts or takes one over (``state`` timed_out) before it
fails the instance. The unique key on (instance, request id, method) is what
makes each request run at most once: a doubled message, a client's
retried cast, or a timeout racing a late delivery finds the row and
stops. The key has the handler's name too, as one request may cast
twice to one instance (an internal task reusing its context). A plain
unique insert, so it works alike on SQLite, PostgreSQL
and MariaDB. An instance's claims are deleted with it (a later cast
finds no row to act on), so the table holds live instances' requests.
"""

from __future__ import annotations

from sqlalchemy import Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, TimestampMixin

RUNNING, DONE, TIMED_OUT = "running", "done", "timed_out"


class RequestClaim(TimestampMixin, Base):
    """One request's claim on one instance."""

    __tablename__ = "request_claims"
    __table_args__ = (
        UniqueConstraint(
            "instance_uuid", "request_id", "method",
            name="uniq_request_claims0instance_uuid0request_id0method"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    request_id: Mapped[str] = mapped_column(String(255), nullable=False)
    method: Mapped[str] = mapped_column(String(255), nullable=False)
    owner: Mapped[str] = mapped_column(String(255), nullable=False)
    state: Mapped[str] = mapped_column(String(36), nullable=False)
