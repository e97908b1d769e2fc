"""Security group tables (Neutron's shapes), beside ``models``' ports.

A group belongs to a project; its rules cascade with it; a port carries
its groups through ``port_security_groups``. ``default_security_groups``
holds each project's one ``default`` group keyed by project, so two API
workers creating it on first use cannot both succeed (Neutron keeps the
same table for the same reason).
"""

from __future__ import annotations

from sqlalchemy import ForeignKey, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from pyct_driver.db.models import Base, TimestampMixin


class SecurityGroup(TimestampMixin, Base):
    __tablename__ = "security_groups"
    __table_args__ = (Index("security_groups_project_id_idx",
                            "project_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str] = mapped_column(String(255), nullable=False,
                                             default="")


class SecurityGroupRule(TimestampMixin, Base):
    __tablename__ = "security_group_rules"
    __table_args__ = (Index("security_group_rules_group_id_idx",
                            "security_group_id"),)

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    direction: Mapped[str] = mapped_column(String(7), nullable=False)
    ethertype: Mapped[str] = mapped_column(String(4), nullable=False,
                                           default="IPv4")
    protocol: Mapped[str | None] = mapped_column(String(16))
    port_range_min: Mapped[int | None] = mapped_column(Integer)
    port_range_max: Mapped[int | None] = mapped_column(Integer)
    remote_ip_prefix: Mapped[str | None] = mapped_column(String(43))
    remote_group_id: Mapped[str | None] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"))
    description: Mapped[str] = mapped_column(String(255), nullable=False,
                                             default="")


class PortSecurityGroup(Base):
    __tablename__ = "port_security_groups"
    __table_args__ = (Index("port_security_groups_group_idx",
                            "security_group_id"),)

    port_id: Mapped[str] = mapped_column(
        ForeignKey("ports.id", ondelete="CASCADE"), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        primary_key=True)


class DefaultSecurityGroup(Base):
    __tablename__ = "default_security_groups"

    project_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    security_group_id: Mapped[str] = mapped_column(
        ForeignKey("security_groups.id", ondelete="CASCADE"),
        nullable=False)
