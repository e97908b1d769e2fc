"""The console auth tokens table, beside the instances of ``models``.

Its own module because ``models`` is at its size limit; ``models`` imports
it at its end so the table is on the same ``Base.metadata``.
"""

from __future__ import annotations

from sqlalchemy import BigInteger, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base


class ConsoleAuthToken(Base):
    """A one-time console token: only its SHA-256 is stored, with where
    the proxy finds the console (``host``:``port``, and the compute
    host's own one-time key for it) and when the token expires."""

    __tablename__ = "console_auth_tokens"
    __table_args__ = (
        Index("console_auth_tokens_instance_uuid_idx", "instance_uuid"),
        Index("console_auth_tokens_expires_idx", "expires"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    console_type: Mapped[str] = mapped_column(String(36))
    host: Mapped[str] = mapped_column(String(255))
    port: Mapped[int] = mapped_column(Integer)
    internal_access_path: Mapped[str] = mapped_column(String(255))
    instance_uuid: Mapped[str] = mapped_column(String(36))
    access_url_base: Mapped[str] = mapped_column(String(255))
    expires: Mapped[int] = mapped_column(BigInteger)
