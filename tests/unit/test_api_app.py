"""The API app end to end over webob: versions, auth, faults, headers.

Also home of ``Harness`` (SQLite-in-memory database, recording fake compute
client, a compute node that is up) which the other API tests import.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import uuid
import weakref

import webob
from oslo_config import cfg
from oslo_policy import opts as policy_opts

from pyct_driver import conf as pyct_conf
from pyct_driver.api import app as api_app
from pyct_driver.api import flavors, images, microversion, request
from pyct_driver.db import models, services
from pyct_driver.db.engine import Database


class FakeCompute:
    """Records every cast and call made to the compute hosts."""

    def __init__(self) -> None:
        self.calls: list[tuple] = []
        self.console = "line1\nline2\n"

    def __getattr__(self, name: str):
        def record(ctxt, host, instance_uuid=None, *args, **kwargs):
            # positional extras (attach_interface's port id) kept in order
            self.calls.append((name, host, instance_uuid,
                               {**kwargs, "args": args} if args else kwargs))
            if name == "get_console_output":
                return self.console
            if name == "get_serial_console":
                return {"host": "127.0.0.1", "port": 10000,
                        "internal_access_path": f"key-{instance_uuid}"}
            if name == "get_diagnostics":
                return {"state": "running", "cpu_details": [
                    {"id": 0, "time": 5, "utilisation": None}],
                    "uptime": 7}
            return None
        return record


class Harness:
    def __init__(self, db_url: str = "sqlite://", **overrides) -> None:
        self.conf = cfg.ConfigOpts()
        for group, opts in pyct_conf.list_opts():
            self.conf.register_opts(opts, group=group)
        # [oslo_policy] too, so a test can point policy_file at its own
        policy_opts.set_defaults(self.conf)
        self.conf([], default_config_files=[])
        # uploaded image files land below state_path: never the host's
        self.state_dir = tempfile.mkdtemp(prefix="pyct-harness-")
        weakref.finalize(self, shutil.rmtree, self.state_dir, True)
        self.conf.set_override("state_path", self.state_dir)
        for key, value in overrides.items():
            group, _, name = key.rpartition("__")
            self.conf.set_override(name, value, group=group or None)
        self.db = Database(db_url)
        models.Base.metadata.create_all(self.db.engine)
        self.compute = FakeCompute()
        self.app = api_app.create_app(self.conf, self.db, self.compute)
        self.image = images.register_image(self.db, "cirros", "/nonexistent",
                                           {"disk_format": "raw"})
        self.flavor = flavors.create_flavor(self.db, "m1.small", 1, 512, 1,
                                            flavorid="1")

    def add_host(self, host: str = "node1", vcpus: int = 8,
                 memory_mb: int = 16384, local_gb: int = 100) -> None:
        services.heartbeat(self.db, host, "pyct-compute", "pyct-compute")
        services.compute_node_report(self.db, host, {
            "vcpus": vcpus, "memory_mb": memory_mb, "local_gb": local_gb,
            "cpu_allocation_ratio": 1.0, "ram_allocation_ratio": 1.0,
            "disk_allocation_ratio": 1.0})

    def request(self, method: str, path: str, body=None,
                token: str | None = "alice:p1", version: str | None = None,
                raw: bytes | None = None, headers: dict | None = None
                ) -> webob.Response:
        req = webob.Request.blank(path, method=method)
        if token is not None:
            req.headers["X-Auth-Token"] = token
        if version is not None:
            req.headers["OpenStack-API-Version"] = f"compute {version}"
        if raw is not None:
            req.body = raw
            req.content_type = "application/json"
        elif body is not None:
            req.body = json.dumps(body).encode()
            req.content_type = "application/json"
        for key, value in (headers or {}).items():
            req.headers[key] = value
        return req.get_response(self.app)

    def admin(self, method: str, path: str, body=None, **kw):
        return self.request(method, path, body, token="admin:adminproj",
                            **kw)

    def boot(self, name: str = "vm", token: str = "alice:p1",
             version: str = "2.37", **extra) -> dict:
        server = {"name": name, "imageRef": self.image["id"],
                  "flavorRef": "1", "networks": "none", **extra}
        resp = self.request("POST", "/v2.1/servers", {"server": server},
                            token=token, version=version)
        assert resp.status_int == 202, resp.text
        return resp.json["server"]


def test_root_lists_v20_and_v21_as_nova():
    h = Harness()
    resp = h.request("GET", "/", token=None)
    assert resp.status_int == 200
    assert resp.json == {"versions": [{
        "id": "v2.0", "status": "SUPPORTED", "version": "",
        "min_version": "", "updated": "2011-01-21T11:33:21Z",
        "links": [{"rel": "self", "href": "http://localhost/v2/"}]}, {
        "id": "v2.1", "status": "CURRENT",
        "version": microversion.to_str(microversion.MAX_VERSION),
        "min_version": "2.1", "updated": "2013-07-23T11:33:21Z",
        "links": [{"rel": "self", "href": "http://localhost/v2.1/"}]}]}
    assert resp.headers["x-openstack-request-id"].startswith("req-")
    assert resp.headers["x-compute-request-id"] == \
        resp.headers["x-openstack-request-id"]


def test_v21_document_with_and_without_slash():
    h = Harness()
    for path in ("/v2.1", "/v2.1/"):
        resp = h.request("GET", path, token=None)
        assert resp.status_int == 200
        doc = resp.json["version"]
        assert doc["id"] == "v2.1"
        assert doc["version"] == microversion.to_str(
            microversion.MAX_VERSION)
        assert doc["min_version"] == "2.1"
        assert doc["media-types"][0]["base"] == "application/json"


def test_missing_and_malformed_token_are_401():
    h = Harness()
    resp = h.request("GET", "/v2.1/servers", token=None)
    assert resp.status_int == 401
    assert resp.json == {"unauthorized": {
        "code": 401, "message": "Authentication required."}}
    resp = h.request("GET", "/v2.1/servers", token="nocolon")
    assert resp.status_int == 401 and "unauthorized" in resp.json
    assert resp.headers["x-openstack-request-id"].startswith("req-")


def test_forged_identity_headers_are_ignored():
    h = Harness()
    resp = h.request("GET", "/v2.1/servers", token="alice:p1",
                     headers={"X-Roles": "admin", "X-Project-Id": "other"})
    assert resp.status_int == 200
    resp = h.request("GET", "/v2.1/servers?all_tenants=1", token="alice:p1",
                     headers={"X-Roles": "admin"})
    assert resp.status_int == 403


def test_identity_project_lookups_are_keystones_403():
    """noauth keeps no project registry: a project look-up is Keystone's
    403, after which openstackclient uses the id it was given."""
    h = Harness()
    for path, action in (("/identity/v3/projects/other",
                          "identity:get_project"),
                         ("/identity/v3/projects?name=other",
                          "identity:list_projects")):
        resp = h.request("GET", path)
        assert resp.status_int == 403
        assert resp.json == {"error": {
            "code": 403, "title": "Forbidden",
            "message": "You are not authorized to perform the requested "
                       f"action: {action}."}}
        assert h.request("GET", path, token=None).status_int == 401
    for path in ("/identity/v3/users", "/identity/v3/projects/a/b"):
        assert h.request("GET", path).status_int == 404


def test_microversion_headers_echoed():
    h = Harness()
    resp = h.request("GET", "/v2.1/flavors", version="2.19")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.19"
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.19"
    assert "OpenStack-API-Version" in resp.headers["Vary"]
    resp = h.request("GET", "/v2.1/flavors", version="latest")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.96"
    resp = h.request("GET", "/v2.1/flavors",
                     headers={"X-OpenStack-Nova-API-Version": "2.3"})
    assert resp.headers["X-OpenStack-Nova-API-Version"] == "2.3"
    resp = h.request("GET", "/v2.1/flavors")
    assert resp.headers["OpenStack-API-Version"] == "compute 2.1"


def test_microversion_out_of_range_and_malformed():
    h = Harness()
    for version in ("2.0", "2.97", "2.999", "3.0"):
        resp = h.request("GET", "/v2.1/flavors", version=version)
        assert resp.status_int == 406, version
        assert resp.json["computeFault"]["code"] == 406
        assert resp.json["computeFault"]["message"] == (
            f"Version {version} is not supported by the API. Minimum is "
            "2.1 and maximum is 2.96.")
    resp = h.request("GET", "/v2.1/flavors", version="garbage")
    assert resp.status_int == 400
    assert resp.json == {"badRequest": {"code": 400, "message": (
        "API Version String garbage is of invalid format. Must be of "
        "format MajorNum.MinorNum.")}}


def test_project_in_url_optional_and_checked():
    h = Harness()
    assert h.request("GET", "/v2.1/p1/flavors").status_int == 200
    body = h.request("GET", "/v2.1/p1/flavors/1").json
    assert body["flavor"]["links"][0]["href"] == \
        "http://localhost/v2.1/p1/flavors/1"
    resp = h.request("GET", "/v2.1/p2/flavors")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == (
        "Malformed request URL: URL's project_id 'p2' doesn't match "
        "Context's project_id 'p1'")


def test_unknown_url_404_and_wrong_method_405():
    h = Harness()
    resp = h.request("GET", "/v2.1/nothing/here/at/all")
    assert resp.status_int == 404 and "itemNotFound" in resp.json
    resp = h.request("GET", "/elsewhere")
    assert resp.status_int == 404
    resp = h.request("PATCH", "/v2.1/servers")
    assert resp.status_int == 405
    assert resp.json["badMethod"]["code"] == 405
    assert resp.headers["Allow"] == "GET, POST"


def test_malformed_json_and_oversized_body():
    h = Harness()
    resp = h.request("POST", "/v2.1/servers", raw=b"{not json",
                     version="2.37")
    assert resp.status_int == 400
    assert resp.json == {"badRequest": {
        "code": 400, "message": "Malformed request body"}}
    big = json.dumps({"server": {"name": "x" * 200000}}).encode()
    resp = h.request("POST", "/v2.1/servers", raw=big)
    assert resp.status_int == 413
    assert resp.json == {"overLimit": {"code": 413,
                                       "message": "Request is too large."}}


def test_unexpected_error_is_500_without_traceback(monkeypatch):
    h = Harness()

    def boom(*_a, **_k):
        raise RuntimeError("secret internal detail")
    monkeypatch.setattr("pyct_driver.db.catalog.flavor_list", boom)
    resp = h.request("GET", "/v2.1/flavors")
    assert resp.status_int == 500
    assert "secret" not in resp.text and "Traceback" not in resp.text
    assert resp.json["computeFault"]["code"] == 500


def test_unique_request_ids():
    h = Harness()
    ids = {h.request("GET", "/v2.1/flavors").headers[
        "x-openstack-request-id"] for _ in range(3)}
    assert len(ids) == 3
    assert all(uuid.UUID(i[4:]) for i in ids)


def test_body_nesting_counts_levels_not_brackets_in_strings():
    limit = request.MAX_BODY_DEPTH
    assert not request.nesting_exceeds(b"[" * limit + b"]" * limit, limit)
    assert request.nesting_exceeds(b"[" * (limit + 1) + b"]" * (limit + 1),
                                   limit)
    brackets = b"[" * 40 + b"{" * 40
    assert not request.nesting_exceeds(b'["' + brackets + b'"]', 2)
    # an escaped quote does not end the string; an escaped backslash
    # does not escape the quote after it
    assert not request.nesting_exceeds(b'["\\"' + brackets + b'"]', 2)
    assert request.nesting_exceeds(b'["\\\\", ' + brackets + b"]", 2)


def test_body_at_the_nesting_limit_is_served():
    h = Harness()
    h.add_host()
    # body, hints and 30 levels of lists: 32 levels
    hints = {"deep": json.loads("[" * 30 + "]" * 30)}
    body = {"server": {"name": "vm", "imageRef": h.image["id"],
                       "flavorRef": "1", "networks": "none"},
            "os:scheduler_hints": hints}
    resp = h.request("POST", "/v2.1/servers", body, version="2.37")
    assert resp.status_int == 202, resp.text
    hints["deep"] = [hints["deep"]]
    resp = h.request("POST", "/v2.1/servers", body, version="2.37")
    assert resp.status_int == 400
    assert resp.json["badRequest"]["message"] == "Malformed request body"
