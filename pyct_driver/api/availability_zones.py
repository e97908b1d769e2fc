"""os-availability-zone: the zones servers can boot in, and their hosts.

A compute host is in the zone of its aggregates' ``availability_zone``
metadata, else in ``[DEFAULT] default_availability_zone``; other services
are in ``internal_service_availability_zone``, never listed. A zone is
available when one of its services is enabled. ``available`` and
``zone_lookup`` serve server create: a requested zone must be available
(else 400, as Nova), and a server booted without one takes its host's.
"""

from __future__ import annotations

from typing import Callable

from pyct_driver.api.host_views import (HostStates, available_zones,
                                        check_query, shown_binary,
                                        timestamp)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import aggregates as db_aggregates

_P = "os_compute_api:os-availability-zone:"


def available(api: Api) -> list[str]:
    return available_zones(api)


def zone_lookup(api: Api) -> Callable[[str], str]:
    """host -> its zone, from one read of the aggregates."""
    zones = db_aggregates.host_zones(api.db)
    return lambda host: db_aggregates.zone_of(
        zones, host, api.settings.default_zone)


def _zones(api: Api, states: HostStates) -> tuple[list[str], list[str]]:
    up = {states.zone(s) for s in states.services if not s["disabled"]}
    down = {states.zone(s) for s in states.services if s["disabled"]} - up
    internal = api.settings.internal_zone
    return sorted(up - {internal}), sorted(down - {internal})


def index(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, _P + "list", {})
    check_query(req, (), strict=req.at_least("2.102"))
    up, down = _zones(api, HostStates(api))
    return Result(200, {"availabilityZoneInfo": [
        {"zoneName": z, "zoneState": {"available": z in up}, "hosts": None}
        for z in up + down]})


def detail(api: Api, req: ApiRequest) -> Result:
    api.policy.authorize(req.context, _P + "detail", {})
    check_query(req, (), strict=req.at_least("2.102"))
    states = HostStates(api)
    up, down = _zones(api, states)
    hosts: dict[str, dict] = {}
    for svc in states.services:
        if svc["disabled"]:
            continue
        zone_hosts = hosts.setdefault(states.zone(svc), {})
        zone_hosts.setdefault(svc["host"], {})[shown_binary(
            svc["binary"])] = {
            "available": states.alive(svc), "active": True,
            "updated_at": timestamp(svc["updated_at"] or svc["created_at"])}
    info = [{"zoneName": z, "zoneState": {"available": True},
             "hosts": hosts.get(z, {})} for z in up]
    info += [{"zoneName": z, "zoneState": {"available": False},
              "hosts": None} for z in down]
    return Result(200, {"availabilityZoneInfo": info})
