"""Security groups and their rules: Neutron's CRUD over pyct's tables.

Each project's ``default`` group is made on first use (``ensure_default``)
with Neutron's two default rules: ingress from members of the same group,
all egress. The ``default_security_groups`` primary key decides a race
between API workers: the loser's transaction rolls back and it reads the
winner's group. A rule equal to one already in its group (every field
but id and description) is refused, as Neutron refuses it.
"""

from __future__ import annotations

import uuid as uuidlib

import sqlalchemy as sa

from pyct_driver import exception
from pyct_driver.db import networks as db_networks
from pyct_driver.db.engine import Database, row_to_dict
from pyct_driver.db.secgroup_models import (DefaultSecurityGroup,
                                            PortSecurityGroup,
                                            SecurityGroup,
                                            SecurityGroupRule)

_G, _R = SecurityGroup, SecurityGroupRule
DEFAULT = "default"
RULE_KEYS = ("direction", "ethertype", "protocol", "port_range_min",
             "port_range_max", "remote_ip_prefix", "remote_group_id")


def _group_dict(session, row: SecurityGroup) -> dict:
    values = row_to_dict(row)
    values["rules"] = [row_to_dict(r) for r in session.scalars(
        sa.select(_R).where(_R.security_group_id == row.id)
        .order_by(_R.created_at, _R.id))]
    return values


def _new_rule(group: SecurityGroup, **values) -> SecurityGroupRule:
    fields = {k: values.get(k) for k in RULE_KEYS}
    fields["ethertype"] = fields["ethertype"] or "IPv4"
    return _R(id=str(uuidlib.uuid4()), security_group_id=group.id,
              project_id=group.project_id,
              description=values.get("description") or "", **fields)


def _create_default(db: Database, project_id: str) -> str:
    with db.session() as session:
        found = session.get(DefaultSecurityGroup, project_id)
        if found is not None:
            return found.security_group_id
        group = _G(id=str(uuidlib.uuid4()), project_id=project_id,
                   name=DEFAULT, description="Default security group")
        session.add(group)
        session.flush()
        session.add(DefaultSecurityGroup(project_id=project_id,
                                         security_group_id=group.id))
        session.add(_new_rule(group, direction="ingress",
                              remote_group_id=group.id))
        session.add(_new_rule(group, direction="egress"))
        return group.id


def ensure_default(db: Database, project_id: str) -> str:
    """The id of the project's ``default`` group, made if missing."""
    return db_networks.retrying(lambda: _create_default(db, project_id))


def list_groups(db: Database, project_id: str | None = None,
                ids: list[str] | None = None) -> list[dict]:
    query = sa.select(_G).order_by(_G.created_at, _G.id)
    if project_id is not None:
        query = query.where(_G.project_id == project_id)
    if ids is not None:
        query = query.where(_G.id.in_(ids))
    with db.session() as session:
        return [_group_dict(session, r) for r in session.scalars(query)]


def get_group(db: Database, group_id: str,
              project_id: str | None = None) -> dict:
    found = list_groups(db, project_id, [group_id])
    if not found:
        raise exception.SecurityGroupNotFound(id=group_id)
    return found[0]


def create_group(db: Database, project_id: str, name: str,
                 description: str) -> dict:
    """A new group with Neutron's default egress rule."""
    with db.session() as session:
        group = _G(id=str(uuidlib.uuid4()), project_id=project_id,
                   name=name, description=description)
        session.add(group)
        session.flush()
        session.add(_new_rule(group, direction="egress"))
        session.flush()
        return _group_dict(session, group)


def update_group(db: Database, group_id: str, values: dict) -> dict:
    with db.session() as session:
        group = session.get(_G, group_id)
        if group is None:
            raise exception.SecurityGroupNotFound(id=group_id)
        for key, value in values.items():
            setattr(group, key, value)
        session.flush()
        return _group_dict(session, group)


def delete_group(db: Database, group_id: str) -> None:
    """Delete a group no port carries (409 otherwise)."""
    with db.session() as session:
        group = session.get(_G, group_id)
        if group is None:
            raise exception.SecurityGroupNotFound(id=group_id)
        used = session.scalars(sa.select(PortSecurityGroup.port_id).where(
            PortSecurityGroup.security_group_id == group_id)).first()
        if used is not None:
            raise exception.SecurityGroupInUse(id=group_id)
        session.execute(sa.delete(DefaultSecurityGroup).where(
            DefaultSecurityGroup.security_group_id == group_id))
        session.execute(sa.delete(_R).where(sa.or_(
            _R.security_group_id == group_id,
            _R.remote_group_id == group_id)))
        session.delete(group)


def list_rules(db: Database, project_id: str | None = None,
               ids: list[str] | None = None) -> list[dict]:
    query = sa.select(_R).order_by(_R.created_at, _R.id)
    if project_id is not None:
        query = query.where(_R.project_id == project_id)
    if ids is not None:
        query = query.where(_R.id.in_(ids))
    with db.session() as session:
        return [row_to_dict(r) for r in session.scalars(query)]


def create_rule(db: Database, group_id: str, values: dict) -> dict:
    """Add a rule; the same rule twice is a 409 naming the first."""
    with db.session() as session:
        group = session.get(_G, group_id)
        if group is None:
            raise exception.SecurityGroupNotFound(id=group_id)
        rule = _new_rule(group, **values)
        same = [getattr(_R, k) == getattr(rule, k) if getattr(rule, k)
                is not None else getattr(_R, k).is_(None)
                for k in RULE_KEYS]
        twin = session.scalars(sa.select(_R).where(
            _R.security_group_id == group_id, *same)).first()
        if twin is not None:
            raise exception.SecurityGroupRuleExists(id=twin.id)
        session.add(rule)
        session.flush()
        return row_to_dict(rule)


def delete_rule(db: Database, rule_id: str) -> None:
    with db.session() as session:
        rule = session.get(_R, rule_id)
        if rule is None:
            raise exception.SecurityGroupRuleNotFound(id=rule_id)
        session.delete(rule)
