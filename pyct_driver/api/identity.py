"""Identity version documents, so clients that insist on Keystone v3 work.

pyct's noauth strategy has no Keystone, but the openstack CLI builds an
identity v3 proxy even for plain commands like ``server list``; its version
discovery needs ``/identity`` and ``/identity/v3`` to describe v3.
Project look-ups (``/identity/v3/projects[/{id}]``) answer Keystone's 403,
as Keystone does for a project the caller may not read: noauth keeps no
project registry, and the CLI then takes the project id it was given
(``openstack image add project IMAGE PROJECT_ID``). Nothing else of
Keystone is served (everything else below ``/identity/v3`` is a 404).
"""

from __future__ import annotations

from pyct_driver.api.request import Result

_UPDATED = "2024-01-01T00:00:00Z"


def _v3(base_url: str) -> dict:
    return {
        "id": "v3.14",
        "status": "stable",
        "updated": _UPDATED,
        "links": [{"rel": "self", "href": f"{base_url}/identity/v3/"}],
        "media-types": [{
            "base": "application/json",
            "type": "application/vnd.openstack.identity-v3+json"}],
    }


def versions(base_url: str) -> Result:
    """``GET /identity``: the one identity version described."""
    return Result(300, {"versions": {"values": [_v3(base_url)]}})


def show_v3(base_url: str) -> Result:
    """``GET /identity/v3``."""
    return Result(200, {"version": _v3(base_url)})


def project_lookup(listing: bool) -> Result:
    """``GET /identity/v3/projects[/{id}]``: Keystone's 403."""
    action = "identity:list_projects" if listing else "identity:get_project"
    return Result(403, {"error": {
        "code": 403, "title": "Forbidden",
        "message": "You are not authorized to perform the requested "
                   f"action: {action}."}})
