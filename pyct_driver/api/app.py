"""The WSGI application: middleware stack, routing, dispatch.

``create_app`` is the composition root of the API: it reads ``conf.api``
and the allocation ratios once and hands plain values to the handlers via
``Api``. Requests pass, outermost first: request id (every response gets
``x-openstack-request-id``), body size limit (413), authentication
(``auth.wrap``), then the router, which resolves ``/v2.1[/{project_id}]/…``
(and ``/v2/…``, Nova's legacy v2.0 alias: the same handlers at 2.1
behaviour, microversion headers ignored) and ``/image/…`` to a handler,
answering 404 for unknown paths and 405 for known paths with another
method. A first segment is a project id only when what follows it is a
route (or a feature ``not_yet`` answers for), so an unknown collection is
a 404, not a project id that does not match the caller's.
"""

from __future__ import annotations

import json
import os
import re
import uuid
from typing import Any, Callable

import webob
import webob.exc
from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.api import identity, not_yet, quota_check
from pyct_driver.api import (auth, faults, floating_ips, host_routes,
                             image_upload,
                             images, microversion, networking, policy,
                             request_log, scheduler, schemas, secgroups,
                             versions)
from pyct_driver.api.body_limit import BodyLimitMiddleware
from pyct_driver.api.routes import (COLLECTIONS, COMPUTE_ROUTES,
                                    IMAGE_ROUTES, Handler)
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api, Settings
from pyct_driver.db.networks import IpamSettings
from pyct_driver.notifications.notifier import Notifications

LOG = logging.getLogger(__name__)
_ID = r"(?P<{}>[^/]+)"
_NOVA_PROJECT_ID = re.compile(r"^[0-9a-f-]+$")


def _compile(routes: list[tuple[str, str, Handler]]
             ) -> list[tuple[re.Pattern, dict[str, Handler]]]:
    table: dict[str, dict[str, Handler]] = {}
    for method, path, handler in routes:
        table.setdefault(path, {})[method] = handler
    out = []
    for path, methods in table.items():
        regex = re.escape(path)
        for name in re.findall(r"\\\{(\w+)\\\}", regex):
            regex = regex.replace("\\{%s\\}" % name, _ID.format(name))
        out.append((re.compile(f"^{regex}/?$"), methods))
    return out


class Router:
    """Resolve a path to (handler, url params) or raise a 404/405 fault
    -- or ``not_yet``'s 501 for a feature OpenStack has and pyct lacks."""

    def __init__(self, routes: list[tuple[str, str, Handler]],
                 not_yet: Callable[[str, str], Exception | None]
                 = lambda _m, _p: None) -> None:
        self._table = _compile(routes)
        self._not_yet = not_yet

    def knows(self, path: str) -> bool:
        """Whether some route (any method) or ``not_yet`` has ``path``."""
        return (any(regex.match(path) for regex, _ in self._table)
                or self._not_yet("GET", path) is not None)

    def match(self, method: str, path: str) -> tuple[Handler, dict]:
        for regex, methods in self._table:
            found = regex.match(path)
            if found is None:
                continue
            if method == "HEAD" and "GET" in methods:
                method = "GET"
            if method not in methods:
                raise self._not_yet(method, path) or _MethodNotAllowed(
                    sorted(methods))
            # which handler serves a path: what an operator who turned
            # [DEFAULT] debug on wants to see (never the body: passwords)
            LOG.debug("%s %s: %s", method, path,
                      getattr(methods[method], "__qualname__", "handler"))
            return methods[method], found.groupdict()
        raise self._not_yet(method, path) or exception.NotFound(
            "The resource could not be found.")


class _MethodNotAllowed(Exception):
    def __init__(self, allowed: list[str]) -> None:
        super().__init__("The method specified is not allowed for this "
                         "resource.")
        self.allowed = allowed


def _json_response(result: Result) -> webob.Response:
    resp = webob.Response(status=result.status)
    if result.body is not None:
        resp.content_type = "application/json"
        resp.charset = "UTF-8"
        resp.text = json.dumps(result.body)
    elif result.status == 204 or result.status == 202:
        resp.content_type = None
        resp.body = b""
    for key, value in result.headers.items():
        resp.headers[key] = value
    return resp


class ApiApp:
    """The innermost WSGI app: versions, compute and image routing."""

    def __init__(self, api: Api) -> None:
        self.api = api
        self.compute = Router(COMPUTE_ROUTES,
                              lambda _m, path: not_yet.compute(path))
        self.image = Router(IMAGE_ROUTES, not_yet.image)
        self.networking = Router(networking.ROUTES + secgroups.ROUTES
                                 + floating_ips.ROUTES,
                                 not_yet.networking)

    def __call__(self, environ: dict, start_response: Callable):
        req = webob.Request(environ)
        resp = self._handle(req)
        return resp(environ, start_response)

    def _base_url(self, req: webob.Request) -> str:
        return self.api.settings.public_endpoint or req.application_url

    def _handle(self, req: webob.Request) -> webob.Response:
        path = req.path_info
        parts = [p for p in path.split("/") if p]
        try:
            if not parts:
                return _json_response(versions.index(
                    self._base_url(req)))
            if parts[0] in ("v2.1", "v2"):
                return self._compute(req, parts[1:], parts[0] == "v2")
            if parts[0] == "image":
                return self._image(req, parts[1:])
            if parts[0] == "networking":
                return self._networking(req, parts[1:])
            if parts[0] == "identity" and parts[1:] in ([], ["v3"]):
                base = self._base_url(req)
                return _json_response(identity.show_v3(base) if parts[1:]
                                      else identity.versions(base))
            if (parts[:3] == ["identity", "v3", "projects"]
                    and len(parts) <= 4 and req.method == "GET"):
                return _json_response(identity.project_lookup(
                    self._base_url(req), self._context(req),
                    parts[3] if len(parts) == 4 else None,
                    req.GET.get("name")))
            raise exception.NotFound("The resource could not be found.")
        except _MethodNotAllowed as err:
            return faults.fault_response(
                405, str(err), {"Allow": ", ".join(err.allowed)})
        except Exception as err:  # noqa: BLE001 - every error is a fault
            return faults.from_exception(err, faults.request_id(req.environ))

    def _context(self, req: webob.Request):
        ctxt = auth.context_from_environ(
            req.environ, req.environ["openstack.request_id"])
        if ctxt is None:
            raise exception.NotAuthorized()
        # Nova's is_admin: whatever the policy's context_is_admin says
        ctxt.is_admin = self.api.policy.is_admin(ctxt)
        # travels with the context over RPC into the compute service's logs
        ctxt.global_request_id = req.environ.get(
            "openstack.global_request_id") or ctxt.global_request_id
        # the access log line and the request's other lines name the caller
        req.environ[request_log.CONTEXT_KEY] = ctxt
        ctxt.update_store()
        return ctxt

    def _compute(self, req: webob.Request, parts: list[str],
                 legacy_v2: bool) -> webob.Response:
        if legacy_v2:
            # Nova's legacy v2 wrapper: microversion headers neither read
            # nor answered; every request is served at 2.1
            version, headers = microversion.MIN_VERSION, []
        else:
            version = microversion.parse(req.headers)
            headers = microversion.response_headers(version)
        relaxed = schemas.LEGACY_V2.set(legacy_v2)
        try:
            resp = self._compute_dispatch(req, parts, version, legacy_v2)
        except _MethodNotAllowed as err:
            resp = faults.fault_response(
                405, str(err), {"Allow": ", ".join(err.allowed)})
        except Exception as err:  # noqa: BLE001 - every error is a fault
            resp = faults.from_exception(err, faults.request_id(req.environ))
        finally:
            schemas.LEGACY_V2.reset(relaxed)
        for key, value in headers:
            resp.headers[key] = value
        return resp

    def _split_project(self, parts: list[str]
                       ) -> tuple[str | None, list[str]]:
        """(project id in the URL or None, the path below it)."""
        path = "/".join(parts)
        if parts[0] in COLLECTIONS or self.compute.knows(path):
            return None, parts
        rest = "/".join(parts[1:])
        # a lone segment is a project id only in Nova's form (hex and
        # dashes), as /v2.1/{project_id} shows the version document
        if (rest and self.compute.knows(rest)) or (
                not rest and _NOVA_PROJECT_ID.match(parts[0])):
            return parts[0], parts[1:]
        raise exception.NotFound("The resource could not be found.")

    def _compute_dispatch(self, req: webob.Request, parts: list[str],
                          version: microversion.Version, legacy_v2: bool
                          ) -> webob.Response:
        base = self._base_url(req)
        if not parts:
            return _json_response(versions.document(
                "v2.0" if legacy_v2 else "v2.1", base))
        project, parts = self._split_project(parts)
        handler, params = self.compute.match(req.method, "/".join(parts))
        ctxt = self._context(req)
        if project is not None and project != ctxt.project_id:
            raise exception.Invalid(
                f"Malformed request URL: URL's project_id '{project}' "
                f"doesn't match Context's project_id "
                f"'{ctxt.project_id}'")
        areq = ApiRequest(req, ctxt, version, base, project, legacy_v2)
        return _json_response(handler(self.api, areq, **params))

    def _networking(self, req: webob.Request, parts: list[str]
                    ) -> webob.Response:
        base = self._base_url(req)
        try:
            if not parts:
                return _json_response(Result(200, networking.versions(base)))
            if parts == ["v2.0"]:
                return _json_response(Result(200,
                                             networking.resources(base)))
            path = "/".join(parts)
            if path.endswith(".json"):
                path = path[:-len(".json")]
            handler, params = self.networking.match(req.method, path)
            ctxt = self._context(req)
            areq = ApiRequest(req, ctxt, microversion.MIN_VERSION, base,
                              None)
            return _json_response(handler(self.api, areq, **params))
        except _MethodNotAllowed as err:
            return faults.neutron_fault(405, "HTTPMethodNotAllowed",
                                        str(err))
        except Exception as err:  # noqa: BLE001 - every error is a fault
            return faults.neutron_from_exception(
                err, faults.request_id(req.environ))

    def _image(self, req: webob.Request, parts: list[str]
               ) -> webob.Response:
        if not parts or parts == ["versions"]:
            return _json_response(images.versions(self._base_url(req)))
        try:
            handler, params = self.image.match(req.method, "/".join(parts))
            ctxt = self._context(req)
            areq = ApiRequest(req, ctxt, microversion.MIN_VERSION,
                              self._base_url(req), None)
            out = handler(self.api, areq, **params)
        except _MethodNotAllowed as err:
            return webob.exc.HTTPMethodNotAllowed(
                headers={"Allow": ", ".join(err.allowed)})
        except Exception as err:  # noqa: BLE001 - every error is a fault
            return faults.glance_from_exception(
                err, faults.request_id(req.environ))
        # a download streams its own response
        return out if isinstance(out, webob.Response) else \
            _json_response(out)


# a caller's X-OpenStack-Request-ID taken as the global request id: only
# this exact form (oslo.middleware's), so a client cannot put arbitrary
# text into every log line the request causes
_GLOBAL_REQUEST_ID = re.compile(
    r"^req-[a-f0-9]{8}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{4}-[a-f0-9]{12}$")


class RequestIdMiddleware:
    """Give every request an id and every response its headers; a
    well-formed incoming ``X-OpenStack-Request-ID`` becomes the request's
    global id (``openstack.global_request_id``), as in Nova, so one id
    follows a request across services."""

    def __init__(self, app: Callable) -> None:
        self.app = app

    def __call__(self, environ: dict, start_response: Callable):
        request_id = "req-" + str(uuid.uuid4())
        environ["openstack.request_id"] = request_id
        incoming = environ.get("HTTP_X_OPENSTACK_REQUEST_ID", "")
        if _GLOBAL_REQUEST_ID.match(incoming):
            environ["openstack.global_request_id"] = incoming

        def _start(status, headers, exc_info=None):
            headers = [(k, v) for k, v in headers if k.lower() not in (
                "x-openstack-request-id", "x-compute-request-id")]
            headers.append(("x-openstack-request-id", request_id))
            headers.append(("x-compute-request-id", request_id))
            return start_response(status, headers, exc_info)

        try:
            return self.app(environ, _start)
        except Exception as err:  # noqa: BLE001 - never leak a traceback
            resp = faults.for_path(environ.get("PATH_INFO", ""), err,
                                   request_id)
            return resp(environ, _start)


def configured_scheduler(conf, db) -> scheduler.Scheduler:
    """The scheduler with the deployment's allocation ratios and
    reservations (also ``pyct-manage host evacuate-check``'s)."""
    return scheduler.Scheduler(
        db, cpu_allocation_ratio=conf.compute.cpu_allocation_ratio,
        ram_allocation_ratio=conf.compute.ram_allocation_ratio,
        disk_allocation_ratio=conf.compute.disk_allocation_ratio,
        reserved_host_memory_mb=conf.compute.reserved_host_memory_mb,
        service_down_time=conf.service_down_time,
        default_zone=conf.default_availability_zone)


def create_app(conf, db, compute_client, images: Any = None,
               routes: Callable | None = None) -> Callable:
    """Build the API's WSGI callable from configuration and its seams
    (``images``: the store uploads go to, the virt driver's by default;
    ``routes``: the host's IPv4 routes, read from /proc by default)."""
    settings = Settings(
        max_limit=conf.api.max_limit,
        max_instances_per_request=conf.api.max_instances_per_request,
        public_endpoint=(conf.api.public_endpoint or "").rstrip("/") or None,
        service_down_time=conf.service_down_time,
        allow_host_root=conf.container.allow_host_root_guests,
        image_member_quota=conf.api.image_member_quota,
        quota_defaults=quota_check.defaults_from(conf.quota),
        quota_enforced=conf.quota.driver != "noop",
        default_zone=conf.default_availability_zone,
        internal_zone=conf.internal_service_availability_zone,
        console={k: conf.serial_console[k]
                 for k in ("enabled", "base_url", "token_ttl")},
        image_dir=os.path.join(conf.state_path, "images"),
        max_image_bytes=conf.image.max_image_size_mb << 20,
        disk_formats=tuple(conf.image.disk_formats),
        container_formats=tuple(conf.image.container_formats),
        instance_password=conf.api.enable_instance_password,
        floating_range=conf.network.floating_ip_range,
        floating_network_name=conf.network.floating_network_name,
    )
    sched = configured_scheduler(conf, db)
    ipam = IpamSettings(
        pool_cidr=conf.network.pool_cidr,
        subnet_prefixlen=conf.network.subnet_prefixlen,
        mtu=conf.network.mtu,
        dns_nameservers=tuple(conf.network.dns_nameservers),
        default_network_name=conf.network.default_network_name)
    api = Api(db=db, compute=compute_client, policy=policy.Policy(conf),
              scheduler=sched, settings=settings, ipam=ipam,
              host_routes=routes or host_routes.read_ipv4_routes,
              notifications=Notifications.from_conf(conf, db, conf.host,
                                                    source="api"),
              images=images or image_upload.DriverImages(conf))
    app: Callable = ApiApp(api)
    app = auth.wrap(conf.api.auth_strategy, app, conf.api.noauth_roles,
                    conf.api.noauth_admin_users, settings.public_endpoint,
                    conf.api.noauth_reader_users, conf)
    app = BodyLimitMiddleware(app, conf.api.max_request_body_size)
    return RequestIdMiddleware(request_log.RequestLogMiddleware(app))
