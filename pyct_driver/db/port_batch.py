"""The ports of a page of instances, read in two statements.

A server list page renders the addresses of up to a thousand servers: the
ports come back as plain column rows (no ORM objects) and each network
they are on is read and converted once, not once per port, so the page
costs the same two statements whatever its size.
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from pyct_driver.db import models
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database, plain_select, read_columns

_P = models.Port
# built once (a status poll reads an instance's ports): each call skips
# building the clauses and SQLAlchemy's cache key walk
_PORTS = plain_select(_P).where(_P.instance_uuid.in_(
    sa.bindparam("uuids", expanding=True))).order_by(
    _P.instance_uuid, _P.device_index, _P.id)
_NETWORKS = sa.select(models.Network).where(models.Network.id.in_(
    sa.bindparam("ids", expanding=True)))


def ports_by_instance(db: Database, instance_uuids: Iterable[str]
                      ) -> dict[str, list[dict]]:
    """Each instance's ports (with their network under ``network``, as
    ``networks.list_ports`` gives them), by ``eth`` index."""
    out: dict[str, list[dict]] = {}
    uuids = list(instance_uuids)
    if not uuids:
        return out
    with db.session() as session:
        ports = [dict(r) for r in read_columns(
            session, _PORTS, {"uuids": uuids}).mappings()]
        wanted = {p["network_id"] for p in ports}
        nets = {n.id: db_networks.network_dict(n)
                for n in session.scalars(_NETWORKS, {"ids": list(wanted)})
                } if wanted else {}
    for port in ports:
        # each port its own copy, as list_ports gives: callers may edit
        port["network"] = dict(nets[port["network_id"]])
        out.setdefault(port["instance_uuid"], []).append(port)
    return out
