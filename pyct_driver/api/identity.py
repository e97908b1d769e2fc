"""Identity version documents, so clients that insist on Keystone v3 work.

pyct's noauth strategy has no Keystone, but the openstack CLI builds an
identity v3 proxy even for plain commands like ``server list``; its version
discovery needs ``/identity`` and ``/identity/v3`` to describe v3.
Project look-ups (``/identity/v3/projects[/{id}]``): noauth keeps no
project registry, every name is a project, so the caller's own project
and, for an admin, any project is found (its id is its name: ``openstack
quota set --instances 5 PROJECT``); other callers get Keystone's 403, as
Keystone answers for a project the caller may not read, after which the
CLI takes the project id it was given (``openstack image add project
IMAGE PROJECT_ID``). Nothing else of Keystone is served (everything else
below ``/identity/v3`` is a 404).
"""

from __future__ import annotations

from pyct_driver.api.request import Result
from pyct_driver.context import RequestContext

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


def _project(base_url: str, name: str) -> dict:
    return {"id": name, "name": name, "domain_id": "default",
            "description": "", "enabled": True, "parent_id": "default",
            "is_domain": False, "tags": [], "options": {},
            "links": {"self": f"{base_url}/identity/v3/projects/{name}"}}


def project_lookup(base_url: str, ctxt: RequestContext,
                   project: str | None,
                   name: str | None) -> Result:
    """``GET /identity/v3/projects/{project}`` or ``projects?name=``."""
    listing = project is None
    wanted = name if listing else project
    if ctxt.is_admin or (wanted and wanted == ctxt.project_id):
        if not listing:
            return Result(200, {"project": _project(base_url, project)})
        found = [_project(base_url, name)] if name else []
        return Result(200, {"projects": found, "links": {
            "self": f"{base_url}/identity/v3/projects",
            "previous": None, "next": None}})
    action = "identity:list_projects" if listing else "identity:get_project"
    return Result(403, {"error": {
        "code": 403, "title": "Forbidden",
        "message": "You are not authorized to perform the requested "
                   f"action: {action}."}})
