"""Keystone's token issue, for the ``noauth`` strategy only.

With ``noauth`` there is no Keystone, but the openstack CLI and SDK work
best with a real auth flow: a password plugin gets a scoped token and a
service catalog, and only then does the CLI know the caller's project
(``openstack quota show``, ``usage show``) without endpoint overrides.
``issue`` answers ``POST /identity/v3/auth/tokens`` as Keystone does --
201, the token in ``X-Subject-Token``, the user, project, roles and the
catalog (compute, image, network, identity at this API's own URLs) -- with
the token being the ``user:project`` the noauth middleware trusts. No
password is checked: this strategy is for development and tests.
"""

from __future__ import annotations

import datetime
import json
import uuid
from typing import Callable

from pyct_driver import exception

_SERVICES = (("compute", "nova", "/v2.1"), ("image", "glance", "/image"),
             ("network", "neutron", "/networking"),
             ("identity", "keystone", "/identity"))
_DOMAIN = {"id": "default", "name": "Default"}


def _name(entity: dict, what: str) -> str:
    value = entity.get("name") or entity.get("id")
    if not isinstance(value, str) or not value or ":" in value \
            or len(value) > 255 or value != value.strip():
        raise exception.Invalid(f"a {what} name or id without ':' is "
                                "required")
    return value


def _parse(body: object) -> tuple[str, str]:
    """(user, project) of a password authentication request."""
    try:
        auth = body["auth"]  # type: ignore[index]
        methods = auth["identity"]["methods"]
        user = auth["identity"]["password"]["user"]
        project = auth.get("scope", {}).get("project")
    except (KeyError, TypeError, AttributeError) as err:
        raise exception.Invalid(
            "Expecting to find password authentication in auth") from err
    if methods != ["password"]:
        raise exception.Invalid("noauth issues tokens for the password "
                                "method only")
    if not isinstance(project, dict):
        raise exception.Invalid("noauth tokens must be scoped to a project")
    return _name(user, "user"), _name(project, "project")


def _catalog(base_url: str) -> list[dict]:
    out = []
    for kind, name, path in _SERVICES:
        out.append({"type": kind, "name": name, "id": kind,
                    "endpoints": [{"id": f"{kind}-{iface}",
                                   "interface": iface,
                                   "region": "RegionOne",
                                   "region_id": "RegionOne",
                                   "url": base_url + path}
                                  for iface in ("public", "internal",
                                                "admin")]})
    return out


def issue(raw_body: bytes, base_url: str,
          roles_of: Callable[[str], list[str]]) -> tuple[int, dict, dict]:
    """(status, headers, body) for ``POST /identity/v3/auth/tokens``;
    ``roles_of`` gives a user's roles (the middleware's, so the token
    names the roles its requests will have)."""
    try:
        body = json.loads(raw_body.decode("utf-8"))
    except (ValueError, UnicodeDecodeError, RecursionError) as err:
        raise exception.Invalid("Malformed request body") from err
    user, project = _parse(body)
    roles = roles_of(user)
    now = datetime.datetime.now(datetime.timezone.utc)
    stamp = (lambda t: t.strftime("%Y-%m-%dT%H:%M:%S.000000Z"))  # noqa
    token = {
        "methods": ["password"],
        "user": {"id": user, "name": user, "domain": _DOMAIN,
                 "password_expires_at": None},
        "project": {"id": project, "name": project, "domain": _DOMAIN},
        "roles": [{"id": r, "name": r} for r in roles],
        "catalog": _catalog(base_url.rstrip("/")),
        "issued_at": stamp(now),
        "expires_at": stamp(now + datetime.timedelta(days=1)),
        "audit_ids": [uuid.uuid4().hex[:22]],
        "is_domain": False,
    }
    return 201, {"X-Subject-Token": f"{user}:{project}"}, {"token": token}
