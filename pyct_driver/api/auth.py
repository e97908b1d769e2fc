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
can use a password auth plugin and the catalog. The ``keystone`` strategy
is ``keystone_auth``. ``check_listen`` keeps ``noauth`` off any address
but loopback unless the operator says otherwise.
"""

from __future__ import annotations

import ipaddress
import json
import re
import socket
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

# every header the context reads (oslo.context's from_environ) that only
# an authenticating middleware may set; a client's own copies are dropped
IDENTITY_KEYS = (
    "HTTP_X_IDENTITY_STATUS", "HTTP_X_USER_ID", "HTTP_X_USER",
    "HTTP_X_USER_NAME", "HTTP_X_USER_DOMAIN_ID", "HTTP_X_USER_DOMAIN_NAME",
    "HTTP_X_PROJECT_ID", "HTTP_X_TENANT_ID", "HTTP_X_TENANT",
    "HTTP_X_PROJECT_NAME", "HTTP_X_TENANT_NAME", "HTTP_X_PROJECT_DOMAIN_ID",
    "HTTP_X_PROJECT_DOMAIN_NAME", "HTTP_X_DOMAIN_ID", "HTTP_X_DOMAIN_NAME",
    "HTTP_X_ROLES", "HTTP_X_ROLE", "HTTP_OPENSTACK_SYSTEM_SCOPE",
    "HTTP_X_IS_ADMIN_PROJECT", "HTTP_X_SERVICE_IDENTITY_STATUS",
    "HTTP_X_SERVICE_ROLES", "HTTP_X_SERVICE_USER_ID",
    "HTTP_X_SERVICE_USER_NAME", "HTTP_X_SERVICE_USER_DOMAIN_ID",
    "HTTP_X_SERVICE_USER_DOMAIN_NAME", "HTTP_X_SERVICE_PROJECT_ID",
    "HTTP_X_SERVICE_PROJECT_NAME", "HTTP_X_SERVICE_PROJECT_DOMAIN_ID",
    "HTTP_X_SERVICE_PROJECT_DOMAIN_NAME")

# oslo.middleware's form of a request id a caller may hand on
_GLOBAL_REQUEST_ID = re.compile(
    r"^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")


def drop_identity(environ: dict) -> None:
    """Remove identity headers a client sent (it must not choose them)."""
    for key in IDENTITY_KEYS:
        environ.pop(key, None)


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
        drop_identity(environ)
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
         reader_users: Iterable[str] = (), conf: object = None
         ) -> WSGIApp:
    """Wrap ``app`` with the middleware of ``strategy`` (``conf``: the
    ConfigOpts keystonemiddleware reads ``[keystone_authtoken]`` from)."""
    if strategy == "noauth":
        return NoAuthMiddleware(app, roles, admin_users, public_endpoint,
                                reader_users)
    if strategy == "keystone":
        # imported here: the all-in-one's noauth never loads Keystone's
        # middleware and its dependencies
        from pyct_driver.api import keystone_auth
        return keystone_auth.KeystoneAuth(app, conf)
    raise exception.InvalidInput(
        reason=f"unknown auth_strategy {strategy!r}")


def global_request_id(environ: dict) -> str | None:
    """The caller's ``X-OpenStack-Request-ID`` if it is a request id."""
    value = environ.get("HTTP_X_OPENSTACK_REQUEST_ID", "")
    return value if _GLOBAL_REQUEST_ID.match(value) else None


def context_from_environ(environ: dict, request_id: str
                         ) -> RequestContext | None:
    """The caller's context from the identity headers (user, project,
    roles, system scope, domains, service token's user; the caller's
    request id as ``global_request_id``); None if anonymous."""
    if environ.get("HTTP_X_IDENTITY_STATUS") != "Confirmed":
        return None
    return RequestContext.from_environ(
        environ, request_id=request_id,
        global_request_id=global_request_id(environ), overwrite=False)


def is_loopback(host: str) -> bool:
    """True if every address ``host`` names is a loopback address."""
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None)
    except OSError:
        return False
    return bool(infos) and all(
        ipaddress.ip_address(info[4][0].split("%")[0]).is_loopback
        for info in infos)


def check_listen(strategy: str, listen: str, allow_off_loopback: bool
                 ) -> None:
    """Refuse noauth on an address others can reach, unless allowed."""
    if strategy != "noauth" or allow_off_loopback or is_loopback(listen):
        return
    raise exception.InvalidInput(
        reason=f"[api] auth_strategy = noauth trusts any 'user:project' "
               f"token, but [api] listen = {listen} is not a loopback "
               f"address: anyone reaching it would be admin. Use "
               f"auth_strategy = keystone, listen on 127.0.0.1, or set "
               f"[api] allow_noauth_off_loopback = true.")
