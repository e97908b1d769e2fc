"""A thousand servers, inserted straight into the database.

``insert_servers(db, count)`` adds ``count`` instance rows of project
``demo`` in one transaction, with what a list page renders from other
tables: metadata, one port each on a DB-only network (10.247.0.0/16,
never plumbed), a fault on every tenth (ERROR), tags on every fifth and a
lock on every seventh. No driver and no compute service are involved, so
the list query tests and ``tools/bench/list_scale.py`` can build a large
page in a second on any backend. ``StatementCounter`` counts the SQL
statements an engine runs while it is active.
"""

from __future__ import annotations

import datetime
import ipaddress
import uuid as uuid_mod

import sqlalchemy as sa

from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database
from pyct_driver.db.group_models import InstanceLock
from pyct_driver.db.tag_models import Tag

POOL = "10.247.0.0/16"
T0 = datetime.datetime(2026, 1, 1)
FLAVOR = {"flavorid": "1", "name": "m1.tiny", "vcpus": 1, "memory_mb": 512,
          "root_gb": 1, "ephemeral_gb": 0, "swap": 0, "extra_specs": {}}


def insert_servers(db: Database, count: int, image: str,
                   project: str = "demo", host: str = "bench-host"
                   ) -> list[str]:
    """The uuids of ``count`` new servers (newest last)."""
    net = db_networks.create_network(
        db, project, f"scale-{uuid_mod.uuid4().hex[:6]}",
        db_networks.IpamSettings(pool_cidr=POOL, subnet_prefixlen=20),
        list)
    hosts = list(ipaddress.ip_network(net["cidr"]).hosts())[10:]
    uuids = [str(uuid_mod.uuid4()) for _ in range(count)]
    with db.session() as session:
        for i, uuid in enumerate(uuids):
            error = i % 10 == 0
            session.add(models.Instance(
                uuid=uuid, name=f"scale-{i}", hostname=f"scale-{i}",
                project_id=project, user_id="demo", host=host,
                image_ref=image, flavor_id="1", flavor=FLAVOR,
                vm_state="error" if error else "active", task_state=None,
                power_state=0 if error else 1,
                instance_metadata={"role": "web", "index": str(i)},
                reservation_id=f"r-{i // 100}", launch_index=0,
                key_name="scale", availability_zone="nova",
                locked=i % 7 == 0,
                created_at=T0 + datetime.timedelta(seconds=i),
                launched_at=T0 + datetime.timedelta(seconds=i)))
            session.add(models.Port(
                id=str(uuid_mod.uuid4()), network_id=net["id"],
                project_id=project, instance_uuid=uuid,
                # unique as the address is: its last three bytes
                mac_address="fa:16:3e:%02x:%02x:%02x" % tuple(
                    hosts[i].packed[1:]),
                ip_address=str(hosts[i]), device_index=0, status="ACTIVE"))
            if error:
                session.add(models.InstanceFault(
                    instance_uuid=uuid, code=500, message="NoValidHost",
                    details="scale", host=None))
            if i % 5 == 0:
                session.add_all([Tag(resource_id=uuid, tag="scale"),
                                 Tag(resource_id=uuid, tag="web")])
            if i % 7 == 0:
                session.add(InstanceLock(instance_uuid=uuid,
                                         locked_by="owner", reason="scale"))
    return uuids


class StatementCounter:
    """``with StatementCounter(engine) as c: ...``; ``c.count`` after."""

    def __init__(self, engine: sa.engine.Engine) -> None:
        self.engine = engine
        self.statements: list[str] = []

    def _seen(self, _conn, _cursor, statement, *_args) -> None:
        self.statements.append(statement)

    @property
    def count(self) -> int:
        return len(self.statements)

    def __enter__(self) -> "StatementCounter":
        sa.event.listen(self.engine, "before_cursor_execute", self._seen)
        return self

    def __exit__(self, *_exc) -> None:
        sa.event.remove(self.engine, "before_cursor_execute", self._seen)
