"""What Nova, Glance and Neutron offer and pyct does not (yet): a clear 501.

A client that asks for a real OpenStack feature pyct lacks gets Nova's
``notImplemented`` fault (Neutron's and Glance's forms on their routes)
naming the feature, instead of a 404 that reads like a typo or a 400 that
says the action does not exist. The README's "What works today" table
lists the same features; a test runs each of its commands. When a feature
lands, its entry goes from here.
"""

from __future__ import annotations

import re

from pyct_driver import exception

_HINT = "; see 'What works today' in pyct's README."

# paths below /v2.1[/{project}] -> the feature
_COMPUTE = [(re.compile(p + r"(/.*)?$"), what) for p, what in (
    (r"os-server-external-events", "external events"),
    (r"servers/[^/]+/os-volume_attachments", "volumes"),
    # Nova lists only in-progress live migrations there
    (r"servers/[^/]+/migrations", "live migrations"),
)]

# server actions Nova has -> the feature
_ACTIONS = {
    "os-resetState": "resetting server states",
    "restore": "soft delete",
    "forceDelete": "soft delete", "os-resetNetwork": "network resets",
    "injectNetworkInfo": "network info injection",
}

# Neutron resources pyct does not have, and writes it does not take
_NETWORK_RESOURCES = {
    "routers": "routers",
    "quotas": "quotas", "trunks": "trunks", "qos": "QoS policies",
    "rbac-policies": "network sharing", "address-scopes": "address scopes",
    "subnetpools": "subnet pools", "network-ip-availabilities":
        "IP availability reports",
}
_NETWORK_WRITES = {"networks": "creating and changing networks",
                   "subnets": "creating and changing subnets",
                   "ports": "creating and changing ports"}


def _error(what: str) -> exception.NotImplementedYet:
    return exception.NotImplementedYet(
        f"pyct does not implement {what} yet{_HINT}")


def compute(path: str) -> exception.NotImplementedYet | None:
    """The 501 for a compute path pyct lacks, else None (a real 404)."""
    for regex, what in _COMPUTE:
        if regex.match(path):
            return _error(what)
    return None


def action(name: str) -> exception.NotImplementedYet | None:
    """The 501 for a server action Nova has and pyct lacks, else None."""
    return _error(_ACTIONS[name]) if name in _ACTIONS else None


def networking(method: str, path: str) -> exception.NotImplementedYet | None:
    parts = path.split("/")
    if len(parts) < 2 or parts[0] != "v2.0":
        return None
    resource = parts[1]
    if resource in _NETWORK_RESOURCES:
        return _error(_NETWORK_RESOURCES[resource])
    if resource in _NETWORK_WRITES and method != "GET":
        return _error(_NETWORK_WRITES[resource])
    return None


def image(method: str, path: str) -> exception.NotImplementedYet | None:
    """Glance's interoperable import (stage and import)."""
    if re.match(r"v2/images/[^/]+/(stage|import)/?$", path) \
            and method in ("PUT", "POST"):
        return _error("the interoperable image import (upload with "
                      "PUT /v2/images/{id}/file)")
    return None
