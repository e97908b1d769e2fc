"""Host selection for new servers.

The compute services' heartbeats say which hosts are up, their compute-node
reports say what each has, and the live instances say what is claimed. A
host fits when it is up (not forced down either), not disabled, in the
requested availability zone (``db.aggregates``; hosts in no zoned
aggregate are in the default zone) and has room for the flavor under the
allocation ratios; among those the one with the most free RAM wins (Nova's
default weigher), ties broken by host name so the choice is repeatable.
Several servers of one request are placed one after another, each counting
the ones placed before it; a server group's policy
(``api.group_placement``) filters and ranks the hosts first. Disk room
is Nova placement's
(total - reserved) x ratio - used: a node's ``local_gb`` comes already net
of its ``reserved_host_disk_mb`` (the compute host knows its own file
system), and used is the root + ephemeral GiB of the flavors placed there.
"""

from __future__ import annotations

from typing import Callable

from pyct_driver import exception
from pyct_driver.api.group_placement import GroupPlacement
from pyct_driver.db import aggregates as db_aggregates
from pyct_driver.db import instances as db_instances
from pyct_driver.db import services as db_services
from pyct_driver.db.engine import Database

COMPUTE_BINARY = "pyct-compute"


class Scheduler:
    def __init__(self, db: Database, cpu_allocation_ratio: float,
                 ram_allocation_ratio: float, disk_allocation_ratio: float,
                 reserved_host_memory_mb: int,
                 service_down_time: int,
                 default_zone: str = "nova") -> None:
        self.db = db
        self.default_zone = default_zone
        self.cpu_ratio = cpu_allocation_ratio
        self.ram_ratio = ram_allocation_ratio
        self.disk_ratio = disk_allocation_ratio
        self.reserved_mb = reserved_host_memory_mb
        self.down_time = service_down_time

    def host_state(self, host: str) -> str:
        """Nova's host_status: UP, DOWN, MAINTENANCE, UNKNOWN or ''."""
        return self.host_states()(host)

    def host_states(self) -> Callable[[str], str]:
        """``host_state`` for many hosts from one read of the services
        (a list page asks it for each of its rows)."""
        found: dict[str, str] = {}
        for svc in db_services.service_list(self.db, COMPUTE_BINARY):
            if svc["host"] in found:
                continue
            if svc["forced_down"]:
                found[svc["host"]] = "DOWN"
            elif svc["disabled"]:
                found[svc["host"]] = "MAINTENANCE"
            else:
                found[svc["host"]] = "UP" if db_services.is_up(
                    svc, self.down_time) else "DOWN"
        return lambda host: found.get(host, "UNKNOWN") if host else ""

    def is_up(self, host: str | None) -> bool:
        return bool(host) and self.host_state(host) in ("UP", "MAINTENANCE")

    def _free(self, zone: str | None) -> dict[str, dict[str, float]]:
        # services, usage and nodes: one read transaction
        with self.db.transaction():
            services = db_services.service_list(self.db, COMPUTE_BINARY)
            zones = db_aggregates.host_zones(self.db) \
                if zone is not None else {}
            usage = db_instances.usage_by_host(self.db)
            nodes = db_services.compute_node_list(self.db)
        up = {s["host"] for s in services
              if not s["disabled"] and not s["forced_down"]
              and db_services.is_up(s, self.down_time)}
        if zone is not None:
            up = {h for h in up if zone in db_aggregates.zone_of(
                zones, h, self.default_zone).split(",")}
        free: dict[str, dict[str, float]] = {}
        for node in nodes:
            if node["host"] not in up:
                continue
            used = usage.get(node["host"], {})
            free[node["host"]] = {
                "vcpus": node["vcpus"] * self.cpu_ratio
                - used.get("vcpus", 0),
                "memory_mb": node["memory_mb"] * self.ram_ratio
                - self.reserved_mb - used.get("memory_mb", 0),
                "local_gb": node["local_gb"] * self.disk_ratio
                - used.get("local_gb", 0),
            }
        return free

    def host_room(self, host: str) -> dict[str, float] | None:
        """What ``host`` has free under the allocation ratios (None if it
        is down or disabled)."""
        return self._free(None).get(host)

    def place_each(self, flavors: list[dict],
                   exclude: str | None = None) -> list[str | None]:
        """A host for each flavor in turn, as the scheduler would place
        them one after another (each counting the ones before); never
        ``exclude``; None where none fits. Changes nothing."""
        free = self._free(None)
        free.pop(exclude, None)
        chosen: list[str | None] = []
        for flavor in flavors:
            need = _need(flavor)
            fits = [h for h, room in free.items()
                    if all(room[k] >= need[k] for k in need)]
            host = min(fits, key=lambda h: (-free[h]["memory_mb"], h)) \
                if fits else None
            if host is not None:
                for key in need:
                    free[host][key] -= need[key]
            chosen.append(host)
        return chosen

    def select_hosts(self, flavor: dict, count: int,
                     force_host: str | None = None,
                     zone: str | None = None,
                     group: GroupPlacement | None = None,
                     exclude: str | None = None) -> list[str | None]:
        """A host for each of ``count`` servers (in ``zone`` if given,
        as the server ``group``'s policy allows, never ``exclude``: a
        moving server's own host); None where none fits."""
        need = _need(flavor)
        free = self._free(zone)
        free.pop(exclude, None)
        if force_host is not None:
            free = {h: v for h, v in free.items() if h == force_host}
        chosen: list[str | None] = []
        for _ in range(count):
            fits = [h for h, room in free.items()
                    if all(room[k] >= need[k] for k in need)]
            if group is not None:
                fits = group.allowed(fits)
            if not fits:
                chosen.append(None)
                continue
            host = min(fits, key=lambda h: (
                group.rank(h) if group else 0, -free[h]["memory_mb"], h))
            for key in need:
                free[host][key] -= need[key]
            if group is not None:
                group.placed(host)
            chosen.append(host)
        return chosen


def _need(flavor: dict) -> dict[str, float]:
    return {"vcpus": flavor["vcpus"], "memory_mb": flavor["memory_mb"],
            "local_gb": flavor["root_gb"] + flavor.get("ephemeral_gb", 0)}


def no_valid_host() -> exception.NoValidHost:
    return exception.NoValidHost(
        reason="There are not enough hosts available.")
