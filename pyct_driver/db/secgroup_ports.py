"""Which security groups each port carries, and what a compute host must
enforce: every port of its live servers with all its groups' rules, a
remote group resolved to the fixed IPs of the ports that carry it now.
"""

from __future__ import annotations

from typing import Iterable

import sqlalchemy as sa

from pyct_driver.db import models
from pyct_driver.db.engine import Database
from pyct_driver.db.secgroup_models import PortSecurityGroup, \
    SecurityGroupRule

_P, _PSG, _R, _I = models.Port, PortSecurityGroup, SecurityGroupRule, \
    models.Instance


def set_port_groups(db: Database, port_ids: Iterable[str],
                    group_ids: Iterable[str]) -> None:
    """Make ``group_ids`` exactly the groups of each of ``port_ids``."""
    port_ids, group_ids = list(port_ids), list(dict.fromkeys(group_ids))
    with db.session() as session:
        session.execute(sa.delete(_PSG).where(_PSG.port_id.in_(port_ids)))
        for port_id in port_ids:
            for group_id in group_ids:
                session.add(_PSG(port_id=port_id,
                                 security_group_id=group_id))


def port_groups(db: Database, port_ids: Iterable[str]
                ) -> dict[str, list[str]]:
    """Each port's group ids (ports without any are left out)."""
    port_ids = list(port_ids)
    out: dict[str, list[str]] = {}
    if not port_ids:
        return out
    with db.session() as session:
        for port_id, group_id in session.execute(
                sa.select(_PSG.port_id, _PSG.security_group_id)
                .where(_PSG.port_id.in_(port_ids))
                .order_by(_PSG.security_group_id)):
            out.setdefault(port_id, []).append(group_id)
    return out


def instance_group_ids(db: Database, uuid: str) -> list[str]:
    """The groups any port of the server carries."""
    with db.session() as session:
        return list(dict.fromkeys(session.scalars(
            sa.select(_PSG.security_group_id).join(
                _P, _P.id == _PSG.port_id)
            .where(_P.instance_uuid == uuid)
            .order_by(_PSG.security_group_id))))


def hosts_of_groups(db: Database, group_ids: Iterable[str]) -> set[str]:
    """Hosts of live servers whose ports carry one of the groups, or
    whose groups' rules name one of them as remote group."""
    group_ids = list(group_ids)
    with db.session() as session:
        referring = set(session.scalars(sa.select(_R.security_group_id)
                        .where(_R.remote_group_id.in_(group_ids))))
        wanted = set(group_ids) | referring
        return {h for h in session.scalars(
            sa.select(_I.host).join(_P, _P.instance_uuid == _I.uuid)
            .join(_PSG, _PSG.port_id == _P.id)
            .where(_PSG.security_group_id.in_(wanted), _I.deleted == 0,
                   _I.host.is_not(None)).distinct())}


def _members(session, group_ids: set[str]) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    if not group_ids:
        return out
    for group_id, ip in session.execute(
            sa.select(_PSG.security_group_id, _P.ip_address)
            .join(_P, _P.id == _PSG.port_id)
            .join(_I, sa.and_(_I.uuid == _P.instance_uuid,
                              _I.deleted == 0))
            .where(_PSG.security_group_id.in_(group_ids))
            # a server being deleted is no member any more: its address
            # may soon be another port's
            .where(sa.or_(_I.task_state.is_(None),
                          _I.task_state != "deleting"))):
        out.setdefault(group_id, []).append(ip)
    return out


def _rule_view(rule: SecurityGroupRule,
               members: dict[str, list[str]]) -> dict:
    remotes = None
    if rule.remote_group_id is not None:
        remotes = sorted(members.get(rule.remote_group_id, []))
    elif rule.remote_ip_prefix is not None:
        remotes = [rule.remote_ip_prefix]
    return {"direction": rule.direction, "protocol": rule.protocol,
            "port_min": rule.port_range_min,
            "port_max": rule.port_range_max, "remotes": remotes,
            "remote_group": rule.remote_group_id}


def host_filters(db: Database, host: str) -> list[dict]:
    """What ``host`` enforces: per port of its live servers, its address,
    its network's gateway and its groups' rules (see ``virt.port_filter``).
    Ports that carry no group are not filtered."""
    with db.session() as session:
        ports = session.execute(
            sa.select(_P.id, _P.ip_address, models.Network.gateway,
                      _PSG.security_group_id)
            .join(_I, sa.and_(_I.uuid == _P.instance_uuid,
                              _I.deleted == 0, _I.host == host))
            .join(models.Network, models.Network.id == _P.network_id)
            .join(_PSG, _PSG.port_id == _P.id)).all()
        if not ports:
            return []
        found = list(session.scalars(sa.select(_R).where(
            _R.security_group_id.in_({p[3] for p in ports}),
            _R.ethertype == "IPv4")))
        members = _members(session, {r.remote_group_id for r in found
                                     if r.remote_group_id is not None})
        rules: dict[str, list[dict]] = {}
        for rule in found:
            rules.setdefault(rule.security_group_id, []).append(
                _rule_view(rule, members))
    out: dict[str, dict] = {}
    for port_id, ip, gateway, group_id in ports:
        entry = out.setdefault(port_id, {"port_id": port_id, "ip": ip,
                                         "gateway": gateway, "rules": []})
        entry["rules"] += rules.get(group_id, [])
    return list(out.values())
