"""os-simple-tenant-usage: hours, vCPU-, RAM- and disk-hours per project.

Each instance is billed from ``launched_at`` to ``terminated_at`` (or the
report's end), clipped to the window ``start``..``end`` (default: now, and
never past now). Admins list every project (``detailed=1`` adds each
server); a project's readers see their own with ``show``. From 2.40 the
server usages are paged (``limit``, ``marker`` = an instance uuid) with a
``*_links`` next link, as in Nova.
"""

from __future__ import annotations

import datetime
import urllib.parse

from pyct_driver import exception
from pyct_driver.api.host_views import check_query, timestamp
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import models
from pyct_driver.db import usage as db_usage

_P = "os_compute_api:os-simple-tenant-usage:"
_FORMATS = ("%Y-%m-%dT%H:%M:%S", "%Y-%m-%dT%H:%M:%S.%f",
            "%Y-%m-%d %H:%M:%S.%f")


def _when(value: str | None, now: datetime.datetime) -> datetime.datetime:
    if not value:
        return now
    for fmt in _FORMATS:
        try:
            return datetime.datetime.strptime(value, fmt)
        except ValueError:
            continue
    raise exception.Invalid("Invalid datetime string: Datetime is in "
                            "invalid format")


def _window(req: ApiRequest) -> tuple[datetime.datetime,
                                      datetime.datetime]:
    # each missing bound is "now" when read, as in Nova
    start = _when(req.param("start"), models.utcnow())
    now = models.utcnow()
    stop = _when(req.param("end"), now)
    if not start < stop:
        raise exception.Invalid("Invalid start time. The start time cannot "
                                "occur after the end time.")
    return start, min(stop, now)


def _hours(inst: dict, start, stop) -> float:
    began = max(inst["launched_at"], start)
    ended = min(stop, inst["terminated_at"]) if inst["terminated_at"] \
        else stop
    return max(0.0, (ended - began).total_seconds() / 3600.0)


def _server(inst: dict, start, stop, now) -> dict:
    flavor = inst["flavor"] or {}
    ended = inst["terminated_at"]
    return {"hours": _hours(inst, start, stop),
            "flavor": flavor.get("name", ""),
            "instance_id": inst["uuid"], "name": inst["name"],
            "tenant_id": inst["project_id"],
            "memory_mb": int(flavor.get("memory_mb", 0)),
            "local_gb": int(flavor.get("root_gb", 0))
            + int(flavor.get("ephemeral_gb", 0)),
            "vcpus": int(flavor.get("vcpus", 0)),
            "started_at": timestamp(inst["launched_at"]),
            "ended_at": timestamp(ended),
            "state": "terminated" if ended else inst["vm_state"],
            "uptime": int(((ended or now) - inst["launched_at"])
                          .total_seconds())}


def _usages(api: Api, req: ApiRequest, project: str | None,
            detailed: bool) -> tuple[list[dict], list[dict], int | None]:
    paged = req.at_least("2.40")
    allowed = ("start", "end", "detailed") if project is None \
        else ("start", "end")
    if paged:
        allowed += ("limit", "marker")
    check_query(req, allowed, strict=req.at_least("2.75"))
    start, stop = _window(req)
    limit = api.settings.max_limit
    marker = None
    if paged:
        asked = parse_int(req.param("limit"), "limit")
        limit = min(asked, limit) if asked is not None else limit
        marker = req.param("marker")
    rows = db_usage.active_in_window(api.db, start, stop, project, limit,
                                     marker)
    now = models.utcnow()
    totals: dict[str, dict] = {}
    servers = []
    for inst in rows:
        info = _server(inst, start, stop, now)
        servers.append(info)
        total = totals.setdefault(info["tenant_id"], {
            "tenant_id": info["tenant_id"],
            **({"server_usages": []} if detailed else {}),
            "total_local_gb_usage": 0, "total_vcpus_usage": 0,
            "total_memory_mb_usage": 0, "total_hours": 0,
            "start": timestamp(start), "stop": timestamp(stop)})
        total["total_local_gb_usage"] += info["local_gb"] * info["hours"]
        total["total_vcpus_usage"] += info["vcpus"] * info["hours"]
        total["total_memory_mb_usage"] += info["memory_mb"] * info["hours"]
        total["total_hours"] += info["hours"]
        if detailed:
            total["server_usages"].append(info)
    return list(totals.values()), servers, limit if paged else None


def _links(req: ApiRequest, path: str, servers: list[dict],
           limit: int | None) -> list[dict]:
    if limit is None or not servers or len(servers) < limit:
        return []
    params = [(k, v) for k, v in req.params.items()
              if k not in ("marker", "limit")]
    params += [("limit", str(limit)), ("marker", servers[-1]["instance_id"])]
    return [{"rel": "next", "href": f"{req.collection_url(path)}?"
             f"{urllib.parse.urlencode(params)}"}]


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, _P + "list", {})
    detailed = req.param("detailed") == "1"
    usages, servers, limit = _usages(api, req, None, detailed)
    body: dict = {"tenant_usages": usages}
    links = _links(req, "os-simple-tenant-usage", servers, limit)
    if links:
        body["tenant_usages_links"] = links
    return Result(200, body)


def show(api: Api, req: ApiRequest, tenant_id: str) -> Result:
    api.policy.authorize(req.context, _P + "show",
                         {"project_id": tenant_id})
    usages, servers, limit = _usages(api, req, tenant_id, True)
    body: dict = {"tenant_usage": usages[0] if usages else {}}
    links = _links(req, f"os-simple-tenant-usage/{tenant_id}", servers,
                   limit)
    if links:
        body["tenant_usage_links"] = links
    return Result(200, body)
