"""The floating IPs table, beside the ports of ``models``.

A floating IP is an address of the operator's external network
(``[network] floating_ip_range``) that a project holds; associated, it
points at one port (``port_id``; unique: one floating IP per port, whose
only fixed IP is the one it maps to). The port's row going (its server
deleted) leaves the floating IP held but unassociated, as in Neutron
(``ON DELETE SET NULL``).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, TimestampMixin


class FloatingIp(TimestampMixin, Base):
    __tablename__ = "floating_ips"
    __table_args__ = (
        UniqueConstraint("floating_ip_address",
                         name="uniq_floating_ips0floating_ip_address"),
        UniqueConstraint("port_id", name="uniq_floating_ips0port_id"),
        Index("floating_ips_project_id_idx", "project_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    floating_network_id: Mapped[str] = mapped_column(String(36),
                                                     nullable=False)
    floating_ip_address: Mapped[str] = mapped_column(String(39),
                                                     nullable=False)
    port_id: Mapped[str | None] = mapped_column(
        ForeignKey("ports.id", ondelete="SET NULL"))
    description: Mapped[str] = mapped_column(String(255), nullable=False,
                                             default="")
