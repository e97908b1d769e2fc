"""The ``keystone`` auth strategy: keystonemiddleware's ``auth_token``.

``auth_token`` validates the caller's ``X-Auth-Token`` with Keystone
(using the service credentials of ``[keystone_authtoken]``), answers 401
with ``WWW-Authenticate: Keystone uri=...`` when it is missing, bad or
expired, and otherwise sets the ``X-User-Id``/``X-Project-Id``/``X-Roles``/
``OpenStack-System-Scope`` headers that ``auth.context_from_environ``
reads. The middleware is given pyct's own ``ConfigOpts`` (the way
keystonemiddleware documents for services that load it in code, not from
paste), so it registers and reads ``[keystone_authtoken]`` from pyct.conf.
Version documents stay public, as in Nova: their paths go around
``auth_token``, with any identity headers the client sent removed. The
stand-in identity API that noauth serves under ``/identity`` (version
documents, token issue) is not served: Keystone is the identity service,
and a second one at pyct's URL would only mislead clients (404).
"""

from __future__ import annotations

from typing import Callable

from keystonemiddleware import auth_token

from pyct_driver.api import auth, faults


class KeystoneAuth:
    """Authenticate every request but the version documents."""

    def __init__(self, app: Callable, conf: object) -> None:
        self.app = app
        self.protected = auth_token.AuthProtocol(
            app, {"oslo_config_config": conf})

    def __call__(self, environ: dict, start_response: Callable):
        path = environ.get("PATH_INFO", "")
        if path == "/identity" or path.startswith("/identity/"):
            resp = faults.fault_response(
                404, "The resource could not be found.")
            return resp(environ, start_response)
        if auth.is_public(path):
            auth.drop_identity(environ)
            return self.app(environ, start_response)
        return self.protected(environ, start_response)
