"""What the operator APIs share: compute services as Nova names them, their
zones and states, ids per microversion, and strict query strings.

pyct's compute service records itself as ``pyct-compute``; the API shows
it as ``nova-compute`` because that is the binary clients key on (Horizon's
compute-host tab lists ``binary=nova-compute`` services, Tempest and
Nova's own rule "only nova-compute services can be updated" name it), and
accepts either name in filters and bodies. From 2.53 services and
hypervisors are addressed by uuid, before by integer id.
"""

from __future__ import annotations

import uuid as uuidlib

from pyct_driver import exception
from pyct_driver.api.request import ApiRequest
from pyct_driver.api.state import Api
from pyct_driver.db import aggregates as db_aggregates
from pyct_driver.db import services as db_services

STORED_COMPUTE = "pyct-compute"
NOVA_COMPUTE = "nova-compute"


def shown_binary(binary: str) -> str:
    return NOVA_COMPUTE if binary == STORED_COMPUTE else binary


def stored_binary(binary: str) -> str:
    return STORED_COMPUTE if binary == NOVA_COMPUTE else binary


def timestamp(value) -> str | None:
    """Nova's form of a service's and aggregate's timestamps."""
    return value.strftime("%Y-%m-%dT%H:%M:%S.%f") if value else None


def is_uuid(value: str) -> bool:
    try:
        return str(uuidlib.UUID(value)) == value.lower()
    except ValueError:
        return False


def parse_id(req: ApiRequest, value: str, not_found: str | None = None
             ) -> str | int:
    """A path id: a uuid from 2.53 (else 400 "Invalid uuid"), an integer
    before (else 400, or the 404 ``not_found`` message where Nova gives
    one)."""
    if req.at_least("2.53"):
        if not is_uuid(value):
            raise exception.Invalid(f"Invalid uuid {value}")
        return value
    try:
        return int(value)
    except ValueError as err:
        if not_found is not None:
            raise exception.NotFound(not_found) from err
        raise exception.Invalid(
            "Invalid input received: id must be an integer") from err


def check_query(req: ApiRequest, allowed: tuple[str, ...],
                strict: bool) -> None:
    """Refuse parameters outside ``allowed`` when the version's schema
    does (``strict``), and repeated ones that must be single."""
    for key in req.params.keys():
        if key not in allowed:
            if strict:
                raise exception.Invalid(
                    "Invalid input for query parameters "
                    f"{key}. Value: {req.params.getall(key)}. Additional "
                    f"properties are not allowed ('{key}' was unexpected)")
        elif strict and len(req.params.getall(key)) > 1:
            raise exception.Invalid(
                f"Invalid input for query parameters {key}. Value: "
                f"{req.params.getall(key)}. {req.params.getall(key)} is "
                "too long")


class HostStates:
    """One read of services and zones, answering per service."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.services = db_services.service_list(api.db)
        self.zones = db_aggregates.host_zones(api.db)

    def compute_service(self, host: str) -> dict | None:
        for svc in self.services:
            if svc["host"] == host and svc["binary"] == STORED_COMPUTE:
                return svc
        return None

    def zone(self, svc: dict) -> str:
        if svc["binary"] != STORED_COMPUTE:
            return self.api.settings.internal_zone
        return db_aggregates.zone_of(self.zones, svc["host"],
                                     self.api.settings.default_zone)

    def alive(self, svc: dict) -> bool:
        return not svc["forced_down"] and db_services.is_up(
            svc, self.api.settings.service_down_time)

    def service_view(self, req: ApiRequest, svc: dict) -> dict:
        view = {"binary": shown_binary(svc["binary"]), "host": svc["host"],
                "id": svc["uuid"] if req.at_least("2.53") else svc["id"],
                "zone": self.zone(svc),
                "status": "disabled" if svc["disabled"] else "enabled",
                "state": "up" if self.alive(svc) else "down",
                "updated_at": timestamp(svc["last_seen_up"]
                                        or svc["updated_at"]
                                        or svc["created_at"]),
                "disabled_reason": svc["disabled_reason"]}
        if req.at_least("2.11"):
            view["forced_down"] = bool(svc["forced_down"])
        return view


def available_zones(api: Api) -> list[str]:
    """Zones with an enabled compute service (where servers may boot)."""
    states = HostStates(api)
    return sorted({states.zone(s) for s in states.services
                   if s["binary"] == STORED_COMPUTE and not s["disabled"]})
