"""SQLAlchemy 2 models: the tables pyct keeps its state in.

These declarations are the schema's source of truth; the alembic migrations in
``migrations/`` must produce the same tables (a test compares them on SQLite,
PostgreSQL and MariaDB). Instances are soft-deleted (``deleted`` holds the row
id, so a uuid may be reused only after deletion); the rest is deleted for real.
"""

from __future__ import annotations

import datetime

from sqlalchemy import (JSON, BigInteger, Boolean, Float, ForeignKey,
                        Index, Integer, MetaData, String, Text,
                        UniqueConstraint)
from sqlalchemy import DateTime as _DateTime
from sqlalchemy.dialects import mysql
from sqlalchemy.orm import (DeclarativeBase, Mapped, mapped_column,
                            relationship)


def utcnow() -> datetime.datetime:
    """Naive UTC 'now', the form every backend stores the same way."""
    return datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)


# MySQL/MariaDB DATETIME drops microseconds unless given a precision; the
# other backends keep them, and ordering/paging must not differ by backend.
DateTime = _DateTime().with_variant(mysql.DATETIME(fsp=6), "mysql", "mariadb")
# MySQL's TEXT stops at 64 KiB; user data (base64) and tracebacks can be
# longer, as Nova's MEDIUMTEXT columns allow
LongText = Text().with_variant(mysql.MEDIUMTEXT(), "mysql", "mariadb")


class Base(DeclarativeBase):
    # Named constraints, so later migrations can drop or alter them by the
    # same name on every backend (each backend invents its own otherwise).
    metadata = MetaData(naming_convention={
        "ix": "%(table_name)s_%(column_0_N_name)s_idx",
        "uq": "uniq_%(table_name)s0%(column_0N_name)s",
        "fk": "%(table_name)s_%(column_0_name)s_fkey",
    })


class TimestampMixin:
    created_at: Mapped[datetime.datetime] = mapped_column(
        DateTime, default=utcnow, nullable=False)
    updated_at: Mapped[datetime.datetime | None] = mapped_column(
        DateTime, onupdate=utcnow)


class Instance(TimestampMixin, Base):
    __tablename__ = "instances"
    __table_args__ = (
        UniqueConstraint("uuid", "deleted",
                         name="uniq_instances0uuid0deleted"),
        Index("instances_project_id_deleted_idx", "project_id", "deleted"),
        Index("instances_host_deleted_idx", "host", "deleted"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    hostname: Mapped[str] = mapped_column(String(255), nullable=False)
    description: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    host: Mapped[str | None] = mapped_column(String(255))
    image_ref: Mapped[str] = mapped_column(String(255), nullable=False)
    flavor_id: Mapped[str] = mapped_column(String(255), nullable=False)
    # the flavor at boot (extra specs too): later flavor changes don't count
    flavor: Mapped[dict] = mapped_column(JSON, nullable=False)
    vm_state: Mapped[str] = mapped_column(String(255), nullable=False)
    task_state: Mapped[str | None] = mapped_column(String(255))
    power_state: Mapped[int] = mapped_column(Integer, nullable=False,
                                             default=0)
    instance_metadata: Mapped[dict] = mapped_column(
        "metadata", JSON, nullable=False, default=dict)
    user_data: Mapped[str | None] = mapped_column(LongText)
    key_name: Mapped[str | None] = mapped_column(String(255))
    key_data: Mapped[str | None] = mapped_column(Text)
    networks: Mapped[dict | list | str | None] = mapped_column(JSON)
    block_device_mapping: Mapped[list | None] = mapped_column(JSON)
    config_drive: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                               default=False)
    reservation_id: Mapped[str] = mapped_column(String(255), nullable=False)
    launch_index: Mapped[int] = mapped_column(Integer, nullable=False,
                                              default=0)
    availability_zone: Mapped[str | None] = mapped_column(String(255))
    pinned_availability_zone: Mapped[str | None] = mapped_column(String(255))
    locked: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                         default=False)
    launched_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    terminated_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    deleted_at: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    deleted: Mapped[int] = mapped_column(Integer, nullable=False, default=0)


class Flavor(TimestampMixin, Base):
    __tablename__ = "flavors"

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    flavorid: Mapped[str] = mapped_column(String(255), nullable=False,
                                          unique=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False,
                                      unique=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    root_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    ephemeral_gb: Mapped[int] = mapped_column(Integer, nullable=False,
                                              default=0)
    swap: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    rxtx_factor: Mapped[float] = mapped_column(Float, nullable=False,
                                               default=1.0)
    is_public: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                            default=True)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                           default=False)
    description: Mapped[str | None] = mapped_column(Text)
    extra_specs: Mapped[list["FlavorExtraSpec"]] = relationship(
        back_populates="flavor", cascade="all, delete-orphan",
        lazy="selectin")
    projects: Mapped[list["FlavorProject"]] = relationship(
        back_populates="flavor", cascade="all, delete-orphan",
        lazy="selectin")


class FlavorExtraSpec(TimestampMixin, Base):
    __tablename__ = "flavor_extra_specs"
    __table_args__ = (
        UniqueConstraint("flavor_id", "key",
                         name="uniq_flavor_extra_specs0flavor_id0key"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    flavor_id: Mapped[int] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), nullable=False)
    key: Mapped[str] = mapped_column(String(255), nullable=False)
    value: Mapped[str] = mapped_column(String(255), nullable=False)
    flavor: Mapped[Flavor] = relationship(back_populates="extra_specs")


class FlavorProject(TimestampMixin, Base):
    """A project allowed to see and use a private flavor (Nova's flavor
    access list)."""

    __tablename__ = "flavor_projects"
    __table_args__ = (
        UniqueConstraint("flavor_id", "project_id",
                         name="uniq_flavor_projects0flavor_id0project_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    flavor_id: Mapped[int] = mapped_column(
        ForeignKey("flavors.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    flavor: Mapped[Flavor] = relationship(back_populates="projects")


class Image(TimestampMixin, Base):
    __tablename__ = "images"

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    status: Mapped[str] = mapped_column(String(30), nullable=False)
    disk_format: Mapped[str | None] = mapped_column(String(30))
    container_format: Mapped[str | None] = mapped_column(String(30))
    size: Mapped[int | None] = mapped_column(BigInteger)
    checksum: Mapped[str | None] = mapped_column(String(128))
    visibility: Mapped[str] = mapped_column(String(30), nullable=False,
                                            default="public")
    owner: Mapped[str | None] = mapped_column(String(255))
    min_disk: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    min_ram: Mapped[int] = mapped_column(Integer, nullable=False, default=0)
    location: Mapped[str | None] = mapped_column(String(1024))  # its file
    properties: Mapped[dict] = mapped_column(JSON, nullable=False,
                                             default=dict)
    protected: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                            default=False)
    os_hidden: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                            default=False)
    os_hash_algo: Mapped[str | None] = mapped_column(String(64))
    os_hash_value: Mapped[str | None] = mapped_column(String(128))


class Service(TimestampMixin, Base):
    __tablename__ = "services"
    __table_args__ = (
        UniqueConstraint("host", "binary", name="uniq_services0host0binary"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False)
    binary: Mapped[str] = mapped_column(String(255), nullable=False)
    topic: Mapped[str] = mapped_column(String(255), nullable=False)
    report_count: Mapped[int] = mapped_column(Integer, nullable=False,
                                              default=0)
    disabled: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                           default=False)
    disabled_reason: Mapped[str | None] = mapped_column(String(255))
    last_seen_up: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    uuid: Mapped[str | None] = mapped_column(String(36), unique=True)
    forced_down: Mapped[bool] = mapped_column(Boolean, default=False)
    # the host's VXLAN endpoint ([network] tunnel_address), None: none
    tunnel_address: Mapped[str | None] = mapped_column(String(39))


class ComputeNode(TimestampMixin, Base):
    __tablename__ = "compute_nodes"

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    host: Mapped[str] = mapped_column(String(255), nullable=False,
                                      unique=True)
    vcpus: Mapped[int] = mapped_column(Integer, nullable=False)
    memory_mb: Mapped[int] = mapped_column(Integer, nullable=False)
    local_gb: Mapped[int] = mapped_column(Integer, nullable=False)
    vcpus_used: Mapped[int] = mapped_column(Integer, nullable=False,
                                            default=0)
    memory_mb_used: Mapped[int] = mapped_column(Integer, nullable=False,
                                                default=0)
    local_gb_used: Mapped[int] = mapped_column(Integer, nullable=False,
                                               default=0)
    running_vms: Mapped[int] = mapped_column(Integer, nullable=False,
                                             default=0)
    cpu_allocation_ratio: Mapped[float] = mapped_column(Float, nullable=False)
    ram_allocation_ratio: Mapped[float] = mapped_column(Float, nullable=False)
    disk_allocation_ratio: Mapped[float] = mapped_column(Float,
                                                         nullable=False)
    reserved_host_memory_mb: Mapped[int] = mapped_column(Integer,
                                                         nullable=False,
                                                         default=0)
    uuid: Mapped[str | None] = mapped_column(String(36), unique=True)
    hypervisor_type: Mapped[str | None] = mapped_column(String(255))
    hypervisor_version: Mapped[int | None] = mapped_column(Integer)
    host_ip: Mapped[str | None] = mapped_column(String(39))
    uptime: Mapped[str | None] = mapped_column(String(255))


class InstanceAction(TimestampMixin, Base):
    __tablename__ = "instance_actions"
    __table_args__ = (
        Index("instance_uuid_idx", "instance_uuid"),
        Index("instance_actions_request_id_idx", "request_id"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    action: Mapped[str] = mapped_column(String(255), nullable=False)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    request_id: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str | None] = mapped_column(String(255))
    project_id: Mapped[str | None] = mapped_column(String(255))
    start_time: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          nullable=False)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    message: Mapped[str | None] = mapped_column(String(255))
    events: Mapped[list["InstanceActionEvent"]] = relationship(
        back_populates="action", cascade="all, delete-orphan",
        lazy="selectin", order_by="InstanceActionEvent.id")


class InstanceActionEvent(TimestampMixin, Base):
    __tablename__ = "instance_actions_events"

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    action_id: Mapped[int] = mapped_column(
        ForeignKey("instance_actions.id", ondelete="CASCADE"),
        nullable=False)
    event: Mapped[str] = mapped_column(String(255), nullable=False)
    start_time: Mapped[datetime.datetime] = mapped_column(DateTime,
                                                          nullable=False)
    finish_time: Mapped[datetime.datetime | None] = mapped_column(DateTime)
    result: Mapped[str | None] = mapped_column(String(255))
    traceback: Mapped[str | None] = mapped_column(LongText)
    details: Mapped[str | None] = mapped_column(LongText)  # 2.84
    host: Mapped[str | None] = mapped_column(String(255))
    action: Mapped[InstanceAction] = relationship(back_populates="events")


class InstanceFault(TimestampMixin, Base):
    __tablename__ = "instance_faults"
    __table_args__ = (
        Index("instance_faults_instance_uuid_idx", "instance_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    code: Mapped[int] = mapped_column(Integer, nullable=False)
    message: Mapped[str] = mapped_column(String(255), nullable=False)
    details: Mapped[str | None] = mapped_column(LongText)
    host: Mapped[str | None] = mapped_column(String(255))


class Network(TimestampMixin, Base):
    """A project's isolated L2 network (one Linux bridge per host) and its
    one IPv4 subnet."""

    __tablename__ = "networks"
    __table_args__ = (
        UniqueConstraint("cidr", name="uniq_networks0cidr"),
        # one VXLAN segment per network, whichever host carries it
        UniqueConstraint("vni", name="uniq_networks0vni"),
        Index("networks_project_id_idx", "project_id"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    cidr: Mapped[str] = mapped_column(String(43), nullable=False)
    gateway: Mapped[str] = mapped_column(String(39), nullable=False)
    mtu: Mapped[int] = mapped_column(Integer, nullable=False, default=1500)
    # "default" networks are what networks="auto" gives the project
    is_default: Mapped[bool] = mapped_column(Boolean, nullable=False,
                                             default=False)
    dns_nameservers: Mapped[list] = mapped_column(JSON, nullable=False,
                                                  default=list)
    vni: Mapped[int | None] = mapped_column(Integer)


class Port(TimestampMixin, Base):
    """A VIF: one MAC and one fixed IP on a network, bound to at most one
    instance. The unique (network, address) pair makes every allocation
    happen exactly once, whichever API worker races for it."""

    __tablename__ = "ports"
    __table_args__ = (
        UniqueConstraint("network_id", "ip_address",
                         name="uniq_ports0network_id0ip_address"),
        UniqueConstraint("mac_address", name="uniq_ports0mac_address"),
        Index("ports_instance_uuid_idx", "instance_uuid"),
    )

    id: Mapped[str] = mapped_column(String(36), primary_key=True)
    network_id: Mapped[str] = mapped_column(
        ForeignKey("networks.id", ondelete="CASCADE"), nullable=False)
    project_id: Mapped[str] = mapped_column(String(255), nullable=False)
    instance_uuid: Mapped[str | None] = mapped_column(String(36))
    mac_address: Mapped[str] = mapped_column(String(17), nullable=False)
    ip_address: Mapped[str] = mapped_column(String(39), nullable=False)
    # eth<device_index> inside the guest
    device_index: Mapped[int | None] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16), nullable=False,
                                        default="DOWN")


class KeyPair(TimestampMixin, Base):
    __tablename__ = "key_pairs"
    __table_args__ = (
        UniqueConstraint("user_id", "name",
                         name="uniq_key_pairs0user_id0name"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    name: Mapped[str] = mapped_column(String(255), nullable=False)
    user_id: Mapped[str] = mapped_column(String(255), nullable=False)
    fingerprint: Mapped[str] = mapped_column(String(255), nullable=False)
    public_key: Mapped[str] = mapped_column(Text, nullable=False)
    type: Mapped[str] = mapped_column(String(8), nullable=False,
                                      default="ssh")


class IdRange(TimestampMixin, Base):
    """The 65,536 host uids/gids an unprivileged instance's user namespace
    maps; unique starts keep ranges disjoint."""

    __tablename__ = "instance_id_ranges"
    __table_args__ = (
        UniqueConstraint("range_start",
                         name="uniq_instance_id_ranges0range_start"),
        UniqueConstraint("instance_uuid",
                         name="uniq_instance_id_ranges0instance_uuid"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True,
                                    autoincrement=True)
    instance_uuid: Mapped[str] = mapped_column(String(36), nullable=False)
    range_start: Mapped[int] = mapped_column(BigInteger, nullable=False)
    range_size: Mapped[int] = mapped_column(Integer, nullable=False,
                                            default=65536)


# Later tables live in their own modules on the same Base.metadata.
from pyct_driver.db import (  # noqa: E402,F401
    claim_models, console_models, floating_models, group_models,
    image_models, models_hosts, quota_models, resize_models,
    secgroup_models, tag_models)
Tag, ImageMember = tag_models.Tag, image_models.ImageMember
