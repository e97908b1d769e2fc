"""The server list query: Nova's filters, sort keys and keyset paging.

``Query`` is what ``api.server_filters`` makes of a ``GET /servers`` query
string. Exact filters (project, user, image, flavor, states, host, uuid,
locked, tags, changes-since/before, deleted) become the SQL WHERE clause;
the sort keys become ORDER BY with the instance id last, so the order is
total and a page boundary (``marker``) is stable: the next page starts
strictly after the marker row's sort values. Regular-expression filters
(Nova's ``name``, ``hostname``, ``key_name``, ...) and ``ip``/``ip6`` run
after the query, through ``regex_filter`` (RE2, bounded time), because a
tenant's regex must not reach the database's backtracking engine; the SQL
limit is then applied after them. NULL sorts before every value.
"""

from __future__ import annotations

import dataclasses
import datetime
from typing import Any, Callable

import sqlalchemy as sa

from pyct_driver import exception, states
from pyct_driver.db import keyset, models
from pyct_driver.db import port_batch
from pyct_driver.db import regex_filter
from pyct_driver.db.engine import Database, plain_select

_I = models.Instance
# Nova sort key -> pyct column; None: a column pyct does not have, whose
# value is the same for every instance (so it orders nothing)
SORT_COLUMNS: dict[str, Any] = {
    "access_ip_v4": None, "access_ip_v6": None, "auto_disk_config": None,
    "availability_zone": _I.availability_zone,
    "config_drive": _I.config_drive, "created_at": _I.created_at,
    "display_description": _I.description, "display_name": _I.name,
    "host": _I.host, "hostname": _I.hostname, "image_ref": _I.image_ref,
    "instance_type_id": _I.flavor_id, "kernel_id": None,
    "key_name": _I.key_name, "launch_index": _I.launch_index,
    "launched_at": _I.launched_at, "locked_by": _I.locked,
    "locked": _I.locked, "node": _I.host, "power_state": _I.power_state,
    "progress": None, "project_id": _I.project_id, "ramdisk_id": None,
    "root_device_name": None, "task_state": _I.task_state,
    "terminated_at": _I.terminated_at, "updated_at": _I.updated_at,
    "user_id": _I.user_id, "uuid": _I.uuid, "vm_state": _I.vm_state,
    "id": _I.id,
}


def _text(value: Any) -> str | None:
    """A value as Nova's database would compare it to a regex."""
    if value is None:
        return None
    if isinstance(value, bool):
        return "1" if value else "0"
    if isinstance(value, datetime.datetime):
        return value.strftime("%Y-%m-%d %H:%M:%S")
    return str(value)


# Nova regex filter -> the instance's value it is matched against
REGEX_FIELDS: dict[str, Callable[[dict], str | None]] = {
    "display_name": lambda i: i["name"],
    "display_description": lambda i: i["description"],
    "hostname": lambda i: i["hostname"],
    "key_name": lambda i: i["key_name"],
    "reservation_id": lambda i: i["reservation_id"],
    "availability_zone": lambda i: i["availability_zone"],
    # stored by Nova as the string "True" or ""
    "config_drive": lambda i: "True" if i["config_drive"] else "",
    "kernel_id": lambda i: "", "ramdisk_id": lambda i: "",
    "node": lambda i: i["host"],
    "power_state": lambda i: _text(i["power_state"]),
    "launch_index": lambda i: _text(i["launch_index"]),
    "launched_at": lambda i: _text(i["launched_at"]),
    "terminated_at": lambda i: _text(i["terminated_at"]),
    "created_at": lambda i: _text(i["created_at"]),
    "locked_by": lambda i: "owner" if i["locked"] else None,
    "access_ip_v4": lambda i: None, "access_ip_v6": lambda i: None,
    "auto_disk_config": lambda i: "0", "progress": lambda i: None,
    "root_device_name": lambda i: None,
}


@dataclasses.dataclass
class Query:
    """One list request, already validated and authorized."""
    exact: dict[str, Any] = dataclasses.field(default_factory=dict)
    regex: dict[str, str] = dataclasses.field(default_factory=dict)
    statuses: list[str] | None = None
    tags: dict[str, list[str]] = dataclasses.field(default_factory=dict)
    changes_since: datetime.datetime | None = None
    changes_before: datetime.datetime | None = None
    # False: live only; True: deleted (and soft-deleted) only; None: both
    deleted: bool | None = False
    soft_deleted: bool | None = None
    ip: str | None = None
    ip6: str | None = None
    sort: list[tuple[str, str]] = dataclasses.field(default_factory=list)
    limit: int | None = None
    marker: str | None = None
    # the project whose instance a marker must be (None: any)
    marker_project: str | None = None


_EXACT_COLUMNS = {"project_id": _I.project_id, "user_id": _I.user_id,
                  "image_ref": _I.image_ref, "vm_state": _I.vm_state,
                  "task_state": _I.task_state, "host": _I.host,
                  "uuid": _I.uuid, "locked": _I.locked,
                  "flavor_id": _I.flavor_id}


def _exact(column, value) -> sa.ColumnElement[bool]:
    values = value if isinstance(value, (list, tuple)) else [value]
    parts = [column.is_(None) if v is None else column == v for v in values]
    return sa.or_(*parts) if parts else sa.false()


def _status_clause(statuses: list[str]) -> sa.ColumnElement[bool]:
    clauses = []
    for status in statuses:
        for vm_state, task_state in states.vm_states_for_status(status):
            if task_state is None:
                clauses.append(_I.vm_state == vm_state)
            else:
                clauses.append(sa.and_(_I.vm_state == vm_state,
                                       _I.task_state == task_state))
    return sa.or_(*clauses) if clauses else sa.false()


def _tag_clauses(tags: dict[str, list[str]]) -> list:
    def having(tag: str):
        return sa.select(models.Tag.resource_id).where(
            models.Tag.tag == tag)
    out = []
    for tag in tags.get("tags", []):
        out.append(_I.uuid.in_(having(tag)))
    if tags.get("tags-any"):
        out.append(_I.uuid.in_(sa.select(models.Tag.resource_id).where(
            models.Tag.tag.in_(tags["tags-any"]))))
    if tags.get("not-tags"):
        out.append(sa.not_(sa.and_(*[_I.uuid.in_(having(t))
                                     for t in tags["not-tags"]])))
    if tags.get("not-tags-any"):
        out.append(_I.uuid.not_in(sa.select(models.Tag.resource_id).where(
            models.Tag.tag.in_(tags["not-tags-any"]))))
    return out


def _where(q: Query) -> list:
    conds = []
    # as Nova: soft_deleted unset means "include" with deleted=True and
    # "exclude" with deleted=False
    if q.deleted is False:
        conds.append(_I.deleted == 0)
        if not q.soft_deleted:
            conds.append(sa.or_(_I.vm_state != states.SOFT_DELETED,
                                _I.vm_state.is_(None)))
    elif q.deleted is True:
        conds.append(sa.or_(_I.deleted != 0,
                            _I.vm_state == states.SOFT_DELETED)
                     if q.soft_deleted in (None, True) else _I.deleted != 0)
    for key, value in q.exact.items():
        conds.append(_exact(_EXACT_COLUMNS[key], value))
    if q.statuses is not None:
        conds.append(_status_clause(q.statuses))
    stamp = sa.func.coalesce(_I.updated_at, _I.created_at)
    if q.changes_since is not None:
        conds.append(stamp >= q.changes_since)
    if q.changes_before is not None:
        conds.append(stamp <= q.changes_before)
    conds.extend(_tag_clauses(q.tags))
    return conds


def _order(sort: list[tuple[str, str]]) -> list[tuple[Any, str]]:
    """(column, dir) pairs, the instance id last for a total order."""
    out = []
    for key, direction in sort:
        column = SORT_COLUMNS[key]
        if column is not None and all(c is not column for c, _ in out):
            out.append((column, direction))
    if all(c is not _I.id for c, _ in out):
        out.append((_I.id, sort[0][1] if sort else "desc"))
    return out


def _python_filter(q: Query) -> Callable[[dict, list[dict]], bool] | None:
    checks = [(REGEX_FIELDS[k], regex_filter.compile_filter(v))
              for k, v in q.regex.items()]
    ip4 = regex_filter.compile_filter("^(?:" + q.ip + ")") if q.ip else None
    ip6 = regex_filter.compile_filter("^(?:" + q.ip6 + ")") if q.ip6 \
        else None
    if not checks and ip4 is None and ip6 is None:
        return None

    def keep(inst: dict, ports: list[dict]) -> bool:
        for field, found in checks:
            value = field(inst)
            if value is None or not found(value):
                return False
        if ip4 is not None or ip6 is not None:
            # pyct's addresses are IPv4 only: ip6 never matches one
            return ip4 is not None and any(
                ip4(p["ip_address"]) for p in ports)
        return True
    return keep


def list_(db: Database, q: Query, to_dict: Callable[[Any], dict]
          ) -> list[dict]:
    """Instances matching ``q``, sorted, the page after ``q.marker``;
    ``to_dict`` gets each row's columns as a dict (attribute names)."""
    keep = _python_filter(q)
    query = plain_select(_I).where(*_where(q))
    order = _order(q.sort)
    with db.session() as session:
        if q.marker is not None:
            look = sa.select(_I).where(_I.uuid == q.marker)
            if q.marker_project is not None:
                look = look.where(_I.project_id == q.marker_project)
            mrow = session.scalars(look.order_by(_I.deleted)).first()
            if mrow is None:
                raise exception.MarkerNotFound(marker=q.marker)
            query = query.where(keyset.after(order, mrow))
        query = query.order_by(*keyset.order_by(order))
        if keep is None and q.limit is not None:
            query = query.limit(q.limit)
        rows = [to_dict(dict(r))
                for r in session.execute(query).mappings()]
    if keep is None:
        return rows
    ports = port_batch.ports_by_instance(
        db, [r["uuid"] for r in rows]) if (q.ip or q.ip6) else {}
    out = []
    for row in rows:
        if keep(row, ports.get(row["uuid"], [])):
            out.append(row)
            if q.limit is not None and len(out) >= q.limit:
                break
    return out
