"""os-hypervisors: each compute host's capacity, use, state and servers.

Capacity is what the host's compute service last reported of its real
resources (``compute_nodes``); use is counted from the live instances
placed there, so a boot shows at once. As in Nova, ``memory_mb_used``
includes the host's reserved memory. The body follows the microversion:
2.28 gives ``cpu_info`` as an object, 2.33 pages, 2.53 moves ids to
uuids and the search/servers routes into query parameters, 2.75 always
lists ``servers`` when asked, 2.88 drops the capacity fields (and the
statistics and uptime routes) and puts ``uptime`` in the detail.
"""

from __future__ import annotations

from oslo_utils import strutils

from pyct_driver import exception
from pyct_driver.api.host_views import HostStates, check_query, parse_id
from pyct_driver.api.request import ApiRequest, Result, parse_int
from pyct_driver.api.state import Api
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services

_P = "os_compute_api:os-hypervisors:"
_OLD_FIELDS = ("vcpus", "memory_mb", "local_gb", "vcpus_used",
               "memory_mb_used", "local_gb_used", "free_ram_mb",
               "free_disk_gb", "current_workload", "running_vms",
               "disk_available_least")


class _Nodes:
    """Compute nodes with their service, live usage and servers."""

    def __init__(self, api: Api, req: ApiRequest) -> None:
        self.req = req
        self.states = HostStates(api)
        self.usage = db_instances.usage_by_host(api.db)
        self.api = api
        self.nodes = [n for n in db_services.compute_node_list(api.db)
                      if self.states.compute_service(n["host"])]

    def numbers(self, node: dict) -> dict:
        used = self.usage.get(node["host"], {})
        out = {"vcpus": node["vcpus"], "memory_mb": node["memory_mb"],
               "local_gb": node["local_gb"],
               "vcpus_used": used.get("vcpus", 0),
               "memory_mb_used": used.get("memory_mb", 0)
               + node["reserved_host_memory_mb"],
               "local_gb_used": used.get("local_gb", 0),
               "running_vms": used.get("instances", 0),
               "current_workload": used.get("busy", 0)}
        out["free_ram_mb"] = out["memory_mb"] - out["memory_mb_used"]
        out["free_disk_gb"] = out["local_gb"] - out["local_gb_used"]
        out["disk_available_least"] = out["free_disk_gb"]
        return out

    def view(self, node: dict, detail: bool,
             servers: list[dict] | None = None) -> dict:
        req = self.req
        svc = self.states.compute_service(node["host"])
        new_ids = req.at_least("2.53")
        out = {"id": node["uuid"] if new_ids else node["id"],
               "hypervisor_hostname": node["host"],
               "state": "up" if self.states.alive(svc) else "down",
               "status": "disabled" if svc["disabled"] else "enabled"}
        if detail:
            out.update(hypervisor_type=node["hypervisor_type"] or "pyct",
                       hypervisor_version=node["hypervisor_version"] or 0,
                       host_ip=node["host_ip"],
                       service={"id": svc["uuid"] if new_ids else svc["id"],
                                "host": node["host"],
                                "disabled_reason": svc["disabled_reason"]})
            if req.at_least("2.88"):
                out["uptime"] = node["uptime"] if self.states.alive(svc) \
                    else None
            else:
                numbers = self.numbers(node)
                out.update({k: numbers[k] for k in _OLD_FIELDS})
                # pyct's compute hosts do not report a CPU model
                out["cpu_info"] = {} if req.at_least("2.28") else ""
        if servers:
            out["servers"] = [{"name": s["name"], "uuid": s["uuid"]}
                              for s in servers]
        elif servers is not None and req.at_least("2.75"):
            out["servers"] = []
        return out

    def servers(self, node: dict) -> list[dict]:
        return db_instances.list_(self.api.db, host=node["host"])

    def find(self, pattern: str) -> list[dict]:
        found = [n for n in self.nodes if pattern in n["host"]]
        if not found:
            raise exception.NotFound(
                f"No hypervisor matching '{pattern}' could be found.")
        return found

    def get(self, hypervisor_id: str) -> dict:
        missing = f"Hypervisor with ID '{hypervisor_id}' could not be found."
        key = parse_id(self.req, hypervisor_id, not_found=missing)
        for node in self.nodes:
            if node["uuid" if isinstance(key, str) else "id"] == key:
                return node
        raise exception.NotFound(missing)


def _with_servers(req: ApiRequest) -> bool:
    value = req.param("with_servers")
    if not req.at_least("2.53") or value is None:
        return False
    try:
        return strutils.bool_from_string(value, strict=True)
    except ValueError as err:
        raise exception.Invalid(
            f"Invalid input for query parameters with_servers. Value: "
            f"{value}. '{value}' is not one of the allowed values") from err


def _list(api: Api, req: ApiRequest, detail: bool) -> Result:
    api.policy.authorize(req.context, _P + ("list-detail" if detail
                                            else "list"), {})
    allowed = ("limit", "marker")
    if req.at_least("2.53"):
        allowed += ("hypervisor_hostname_pattern", "with_servers")
    check_query(req, allowed, strict=req.at_least("2.53"))
    nodes = _Nodes(api, req)
    with_servers = _with_servers(req)
    pattern = req.param("hypervisor_hostname_pattern") \
        if req.at_least("2.53") else None
    paging = req.at_least("2.33")
    limit = parse_int(req.param("limit"), "limit") if paging else None
    marker = req.param("marker") if paging else None
    if pattern is not None:
        if limit is not None or marker:
            raise exception.Invalid(
                "Paging over hypervisors with the "
                "hypervisor_hostname_pattern query parameter is not "
                "supported.")
        rows = nodes.find(pattern)
        paging = False
    else:
        rows = nodes.nodes
        if marker:
            key = "uuid" if req.at_least("2.53") else "id"
            ids = [str(n[key]) for n in rows]
            if marker not in ids:
                raise exception.Invalid(f"marker [{marker}] not found")
            rows = rows[ids.index(marker) + 1:]
        limit = min(limit if limit is not None else api.settings.max_limit,
                    api.settings.max_limit)
        rows = rows[:limit]
    views = [nodes.view(n, detail, nodes.servers(n) if with_servers
                        else None) for n in rows]
    body: dict = {"hypervisors": views}
    if paging and views and len(views) == limit:
        path = "os-hypervisors/detail" if detail else "os-hypervisors"
        body["hypervisors_links"] = [{
            "rel": "next", "href": f"{req.collection_url(path)}?"
            f"limit={limit}&marker={views[-1]['id']}"}]
    return Result(200, body)


def index(api: Api, req: ApiRequest) -> Result:
    return _list(api, req, detail=False)


def detail(api: Api, req: ApiRequest) -> Result:
    return _list(api, req, detail=True)


def show(api: Api, req: ApiRequest, hypervisor_id: str) -> Result:
    api.policy.authorize(req.context, _P + "show", {})
    check_query(req, ("with_servers",), strict=req.at_least("2.53"))
    with_servers = _with_servers(req)
    nodes = _Nodes(api, req)
    node = nodes.get(hypervisor_id)
    return Result(200, {"hypervisor": nodes.view(
        node, True, nodes.servers(node) if with_servers else None)})


def _before(req: ApiRequest, version: str) -> None:
    """Routes Nova removed at ``version``: 404 from then on."""
    if req.at_least(version):
        raise exception.NotFound("The resource could not be found.")


def uptime(api: Api, req: ApiRequest, hypervisor_id: str) -> Result:
    _before(req, "2.88")
    api.policy.authorize(req.context, _P + "uptime", {})
    nodes = _Nodes(api, req)
    node = nodes.get(hypervisor_id)
    svc = nodes.states.compute_service(node["host"])
    if not nodes.states.alive(svc):
        raise exception.Invalid(f"Compute service of {node['host']} is "
                                "unavailable at this time.")
    view = nodes.view(node, False)
    view["uptime"] = node["uptime"]
    return Result(200, {"hypervisor": view})


def search(api: Api, req: ApiRequest, pattern: str) -> Result:
    _before(req, "2.53")
    api.policy.authorize(req.context, _P + "search", {})
    nodes = _Nodes(api, req)
    return Result(200, {"hypervisors": [
        nodes.view(n, False) for n in nodes.find(pattern)]})


def servers(api: Api, req: ApiRequest, pattern: str) -> Result:
    _before(req, "2.53")
    api.policy.authorize(req.context, _P + "servers", {})
    nodes = _Nodes(api, req)
    return Result(200, {"hypervisors": [
        nodes.view(n, False, nodes.servers(n)) for n in nodes.find(pattern)]})


def statistics(api: Api, req: ApiRequest) -> Result:
    _before(req, "2.88")
    api.policy.authorize(req.context, _P + "statistics", {})
    nodes = _Nodes(api, req)
    stats = dict.fromkeys(_OLD_FIELDS, 0)
    stats["count"] = 0
    for node in nodes.nodes:
        if nodes.states.compute_service(node["host"])["disabled"]:
            continue  # Nova sums the enabled hosts only
        stats["count"] += 1
        for key, value in nodes.numbers(node).items():
            stats[key] += value
    return Result(200, {"hypervisor_statistics": stats})
