"""Authentication as a WSGI middleware chosen by ``[api] auth_strategy``.

Whatever authenticates a request leaves the caller's identity in the
``X-User-Id`` / ``X-Project-Id`` / ``X-Roles`` headers, the way
keystonemiddleware's ``auth_token`` does; ``context_from_environ`` reads
only those, so a keystone strategy slots in by wrapping the app with
``auth_token`` instead of ``NoAuthMiddleware``. The ``noauth`` strategy
trusts an ``X-Auth-Token: user:project`` (development and tests only) and
always overwrites the identity headers, so a client cannot forge them;
the roles come from configuration only (``api.roles``: ``[api]
noauth_roles``, admins and read-only users by name, implied roles added),
never from the request. It
also issues such tokens the Keystone way (``noauth_tokens``), so clients
can use a password auth plugin and the catalog.
"""

from __future__ import annotations

import json
import re
from typing import Callable, Iterable

import webob

from pyct_driver import exception
from pyct_driver.api import faults, noauth_tokens, roles as api_roles
from pyct_driver.context import RequestContext

WSGIApp = Callable

_TOKEN_RE = re.compile(r"^([^:\s]{1,255}):([^:\s]{1,255})$")

# version documents are public, as in Nova and Glance
_PUBLIC_PATHS = re.compile(
    r"^/(v2\.1/?|v2/?|image/?|image/versions/?|identity/?|identity/v3/?"
    r"|networking/?|networking/v2\.0/?)?$")

_IDENTITY_KEYS = ("HTTP_X_USER_ID", "HTTP_X_USER", "HTTP_X_PROJECT_ID",
                  "HTTP_X_TENANT_ID", "HTTP_X_ROLES",
                  "HTTP_X_IDENTITY_STATUS")


def is_public(path: str) -> bool:
    return bool(_PUBLIC_PATHS.match(path))


class NoAuthMiddleware:
    """Trust ``X-Auth-Token: user:project``; give configured roles."""

    def __init__(self, app: WSGIApp, roles: Iterable[str],
                 admin_users: Iterable[str],
                 public_endpoint: str | None = None,
                 reader_users: Iterable[str] = ()) -> None:
        self.app = app
        self.roles = list(roles)
        self.admin_users = set(admin_users)
        self.reader_users = set(reader_users)
        self.public_endpoint = public_endpoint

    def roles_of(self, user: str) -> list[str]:
        return api_roles.noauth_roles(user, self.roles, self.admin_users,
                                      self.reader_users)

    def _issue_token(self, environ: dict, start_response: Callable):
        req = webob.Request(environ)
        try:
            status, headers, body = noauth_tokens.issue(
                req.body, self.public_endpoint or req.application_url,
                self.roles_of)
        except exception.PyctError as err:
            status, headers = err.code, {}
            body = {"error": {"code": err.code, "title": "Bad Request",
                              "message": err.message}}
        resp = webob.Response(status=status, headers=headers,
                              content_type="application/json",
                              charset="UTF-8")
        resp.text = json.dumps(body)
        return resp(environ, start_response)

    def __call__(self, environ: dict, start_response: Callable):
        for key in _IDENTITY_KEYS:
            environ.pop(key, None)
        if (environ.get("PATH_INFO", "").rstrip("/")
                == "/identity/v3/auth/tokens"
                and environ.get("REQUEST_METHOD") == "POST"):
            return self._issue_token(environ, start_response)
        token = environ.get("HTTP_X_AUTH_TOKEN")
        match = _TOKEN_RE.match(token.strip()) if token else None
        if match is None:
            if is_public(environ.get("PATH_INFO", "")):
                return self.app(environ, start_response)
            message = ("Authentication required: X-Auth-Token must be "
                       "'user:project'." if token else
                       "Authentication required.")
            resp = faults.fault_response(401, message)
            return resp(environ, start_response)
        user, project = match.groups()
        environ["HTTP_X_USER_ID"] = user
        environ["HTTP_X_PROJECT_ID"] = project
        environ["HTTP_X_ROLES"] = ",".join(self.roles_of(user))
        environ["HTTP_X_IDENTITY_STATUS"] = "Confirmed"
        return self.app(environ, start_response)


def wrap(strategy: str, app: WSGIApp, roles: Iterable[str],
         admin_users: Iterable[str],
         public_endpoint: str | None = None,
         reader_users: Iterable[str] = ()) -> WSGIApp:
    """Wrap ``app`` with the middleware of ``strategy``."""
    if strategy == "noauth":
        return NoAuthMiddleware(app, roles, admin_users, public_endpoint,
                                reader_users)
    raise exception.InvalidInput(
        reason=f"unknown auth_strategy {strategy!r}")


def context_from_environ(environ: dict, request_id: str
                         ) -> RequestContext | None:
    """The caller's context from the identity headers; None if anonymous."""
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        return None
    user = environ.get("HTTP_X_USER_ID") or environ.get("HTTP_X_USER")
    project = (environ.get("HTTP_X_PROJECT_ID")
               or environ.get("HTTP_X_TENANT_ID"))
    roles = [r.strip() for r in environ.get("HTTP_X_ROLES", "").split(",")
             if r.strip()]
    return RequestContext(user_id=user, project_id=project, roles=roles,
                          request_id=request_id, overwrite=False)
