"""os-migrations: the instance moves of the deployment, for operators.

Filters are Nova's: ``host`` (either end), ``status``, ``instance_uuid``,
``migration_type``, ``source_compute``; from 2.59 ``changes-since`` and
paging (``limit``, ``marker`` = a migration uuid) with a next link, 2.66
``changes-before``, 2.80 ``user_id``/``project_id``. Bodies: 2.23 adds
``migration_type``, 2.59 ``uuid``, 2.80 ``user_id``/``project_id``.
Cold migrations and resizes (``db.resizes``) are listed; pyct makes no
live migrations (``api.server_migrate`` refuses them).
"""

from __future__ import annotations

import datetime

from pyct_driver import exception
from pyct_driver.api.host_views import check_query, timestamp
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import instance_moves

_FIELDS = ("id", "source_node", "dest_node", "source_compute",
           "dest_compute", "dest_host", "status", "instance_uuid",
           "old_instance_type_id", "new_instance_type_id")


def _time(req: ApiRequest, name: str, version: str
          ) -> datetime.datetime | None:
    value = req.param(name)
    if value is None or not req.at_least(version):
        return None
    try:
        parsed = datetime.datetime.fromisoformat(value.replace("Z",
                                                               "+00:00"))
    except ValueError as err:
        raise exception.Invalid(
            f"Invalid input for query parameters {name}. Value: {value}. "
            f"'{value}' is not a 'date-time'") from err
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(datetime.timezone.utc).replace(
            tzinfo=None)
    return parsed


def _view(req: ApiRequest, row: dict) -> dict:
    out = {k: row[k] for k in _FIELDS}
    out["created_at"] = timestamp(row["created_at"])
    out["updated_at"] = timestamp(row["updated_at"])
    if req.at_least("2.23"):
        out["migration_type"] = row["migration_type"]
    if req.at_least("2.59"):
        out["uuid"] = row["uuid"]
    if req.at_least("2.80"):
        out["user_id"] = row["user_id"]
        out["project_id"] = row["project_id"]
    return out


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, "os_compute_api:os-migrations:index",
                         {})
    names = list(instance_moves.FILTERS)
    if not req.at_least("2.80"):
        names = names[:-2]
    allowed = tuple(names) + ("host", "hidden")
    if req.at_least("2.59"):
        allowed += ("limit", "marker", "changes-since")
    if req.at_least("2.66"):
        allowed += ("changes-before",)
    # unknown parameters: ignored until 2.59, refused from then on
    check_query(req, allowed, strict=req.at_least("2.59"))
    filters = {k: req.param(k) for k in names if req.param(k) is not None}
    since = _time(req, "changes-since", "2.59")
    before = _time(req, "changes-before", "2.66")
    if since and before and before < since:
        raise exception.Invalid("The value of changes-since must be less "
                                "than or equal to changes-before.")
    paged = req.at_least("2.59")
    limit = marker = None
    if paged:
        asked = parse_int(req.param("limit"), "limit")
        limit = min(asked if asked is not None else api.settings.max_limit,
                    api.settings.max_limit)
        marker = req.param("marker")
    rows = instance_moves.list_(api.db, filters, req.param("host"), since,
                                before, limit, marker)
    if not req.at_least("2.23"):  # live migrations came with 2.23
        rows = [r for r in rows if r["migration_type"] != "live-migration"]
    body: dict = {"migrations": [_view(req, r) for r in rows]}
    if paged and rows and len(rows) == limit:
        body["migrations_links"] = [{
            "rel": "next", "href": f"{req.collection_url('os-migrations')}"
            f"?limit={limit}&marker={rows[-1]['uuid']}"}]
    return Result(200, body)
