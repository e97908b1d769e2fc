"""The keystone auth strategy without a Keystone (what needs none: public
version documents, 401 for a missing token, the context from auth_token's
headers), and pyct-api's refusal to serve noauth beyond loopback."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
import webob
from keystonemiddleware.auth_token import _opts as authtoken_opts
from oslo_config import cfg

from pyct_driver import conf as pyct_conf
from pyct_driver import exception
from pyct_driver.api import app as api_app
from pyct_driver.api import auth
from pyct_driver.db import models
from pyct_driver.db.engine import Database
from tests.unit.test_api_app import FakeCompute, Harness

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
KEYSTONE = "http://127.0.0.1:9/identity"  # nothing listens on port 9


def _keystone_app():
    conf = cfg.ConfigOpts()
    for group, opts in pyct_conf.list_opts():
        conf.register_opts(opts, group=group)
    for group, opts in authtoken_opts.list_opts():
        conf.register_opts(opts, group=group)
    conf([], default_config_files=[])
    conf.set_override("auth_strategy", "keystone", group="api")
    conf.set_override("www_authenticate_uri", KEYSTONE,
                      group="keystone_authtoken")
    db = Database("sqlite://")
    models.Base.metadata.create_all(db.engine)
    return api_app.create_app(conf, db, FakeCompute())


def _get(app, path, headers=None):
    req = webob.Request.blank(path)
    for key, value in (headers or {}).items():
        req.headers[key] = value
    return req.get_response(app)


def test_keystone_strategy_needs_a_token_and_says_where_to_get_one():
    app = _keystone_app()
    resp = _get(app, "/v2.1/servers",
                {"X-Roles": "admin", "X-Identity-Status": "Confirmed",
                 "X-Project-Id": "p1", "X-User-Id": "u1"})
    assert resp.status_int == 401
    assert resp.headers["WWW-Authenticate"] == f'Keystone uri="{KEYSTONE}"'
    assert resp.headers["x-openstack-request-id"].startswith("req-")


@pytest.mark.parametrize("path", ["/", "/v2.1", "/v2.1/", "/image",
                                  "/networking", "/networking/v2.0"])
def test_keystone_strategy_keeps_version_documents_public(path):
    app = _keystone_app()
    resp = _get(app, path, {"X-Identity-Status": "Confirmed",
                            "X-Roles": "admin"})
    assert resp.status_int in (200, 300), resp.text
    assert "WWW-Authenticate" not in resp.headers


@pytest.mark.parametrize("method,path", [
    ("GET", "/identity"), ("GET", "/identity/v3"),
    ("POST", "/identity/v3/auth/tokens"), ("GET", "/identity/v3/projects")])
def test_keystone_strategy_serves_no_stand_in_identity(method, path):
    req = webob.Request.blank(path, method=method)
    req.body = b'{"auth": {}}'
    resp = req.get_response(_keystone_app())
    assert resp.status_int == 404
    assert resp.json["itemNotFound"]["code"] == 404
    assert "X-Subject-Token" not in resp.headers


def test_context_carries_what_auth_token_says():
    rid = f"req-{uuid.uuid4()}"
    ctxt = auth.context_from_environ({
        "HTTP_X_IDENTITY_STATUS": "Confirmed", "HTTP_X_USER_ID": "u1",
        "HTTP_X_USER_NAME": "alice", "HTTP_X_PROJECT_ID": "p1",
        "HTTP_X_PROJECT_NAME": "proj", "HTTP_X_ROLES": "reader, member",
        "HTTP_X_USER_DOMAIN_ID": "default",
        "HTTP_X_PROJECT_DOMAIN_ID": "default",
        "HTTP_X_OPENSTACK_REQUEST_ID": rid}, "req-own")
    assert (ctxt.user_id, ctxt.project_id) == ("u1", "p1")
    assert ctxt.roles == ["reader", "member"] and not ctxt.is_admin
    assert (ctxt.user_name, ctxt.project_name) == ("alice", "proj")
    assert ctxt.request_id == "req-own" and ctxt.global_request_id == rid
    policy = ctxt.to_policy_values()
    assert policy["user_domain_id"] == "default"
    assert policy["system_scope"] is None


def test_context_system_scope_and_admin():
    ctxt = auth.context_from_environ({
        "HTTP_X_IDENTITY_STATUS": "Confirmed", "HTTP_X_USER_ID": "u1",
        "HTTP_X_ROLES": "admin,member,reader",
        "HTTP_OPENSTACK_SYSTEM_SCOPE": "all"}, "req-1")
    assert ctxt.system_scope == "all" and ctxt.is_admin
    assert ctxt.project_id is None
    assert ctxt.to_policy_values()["system_scope"] == "all"


@pytest.mark.parametrize("value", ["not-a-request-id", "req-123",
                                   f"req-{uuid.uuid4()}x", ""],
                         # fixed ids: every pytest-xdist worker must
                         # collect the same names
                         ids=["no-prefix", "short", "trailing-x", "empty"])
def test_malformed_global_request_id_is_not_taken(value):
    ctxt = auth.context_from_environ({
        "HTTP_X_IDENTITY_STATUS": "Confirmed", "HTTP_X_USER_ID": "u",
        "HTTP_X_PROJECT_ID": "p", "HTTP_X_OPENSTACK_REQUEST_ID": value},
        "req-own")
    assert ctxt.global_request_id is None


def test_unconfirmed_identity_is_anonymous():
    assert auth.context_from_environ(
        {"HTTP_X_USER_ID": "u", "HTTP_X_PROJECT_ID": "p"}, "r") is None
    assert auth.context_from_environ(
        {"HTTP_X_IDENTITY_STATUS": "Invalid", "HTTP_X_USER_ID": "u"},
        "r") is None


def test_noauth_drops_a_forged_system_scope():
    h = Harness()
    resp = h.request("GET", "/v2.1/servers?all_tenants=1", token="alice:p1",
                     headers={"OpenStack-System-Scope": "all",
                              "X-Roles": "admin"})
    assert resp.status_int == 403


@pytest.mark.parametrize("listen", ["127.0.0.1", "127.0.0.53", "::1",
                                    "[::1]", "localhost"])
def test_noauth_on_loopback_starts(listen):
    auth.check_listen("noauth", listen, allow_off_loopback=False)


@pytest.mark.parametrize("listen", ["0.0.0.0", "::", "10.1.2.3",
                                    "192.0.2.7", "no-such-host.invalid"])
def test_noauth_off_loopback_is_refused_unless_allowed(listen):
    with pytest.raises(exception.InvalidInput,
                       match="allow_noauth_off_loopback"):
        auth.check_listen("noauth", listen, allow_off_loopback=False)
    auth.check_listen("noauth", listen, allow_off_loopback=True)
    auth.check_listen("keystone", listen, allow_off_loopback=False)


# pyct-api itself, in a process of its own; a started server is replaced
# by a stand-in that exits 42, so nothing listens beyond loopback
_RUN_API = """
import sys
from pyct_driver.cmd import api
def serve(conf, app):
    sys.exit(42)
api.serve_in_thread = serve
sys.exit(api.main(["pyct-api", "--config-file", sys.argv[1]]))
"""


def _run_api(tmp_path, allow: bool) -> subprocess.CompletedProcess:
    conf = tmp_path / "pyct.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}\ntransport_url = "
        f"fake://\n[database]\nconnection = sqlite:///{tmp_path}/db\n"
        f"[api]\nlisten = 0.0.0.0\nauth_strategy = noauth\n"
        f"allow_noauth_off_loopback = {str(allow).lower()}\n")
    return subprocess.run([sys.executable, "-c", _RUN_API, str(conf)],
                          cwd=REPO, capture_output=True, text=True,
                          timeout=120)


def test_pyct_api_refuses_noauth_on_all_addresses(tmp_path):
    run = _run_api(tmp_path, allow=False)
    assert run.returncode == 2, run.stderr
    assert "listen = 0.0.0.0 is not a loopback address" in run.stderr
    assert "allow_noauth_off_loopback" in run.stderr


def test_pyct_api_starts_noauth_off_loopback_when_allowed(tmp_path):
    run = _run_api(tmp_path, allow=True)
    assert run.returncode == 42, run.stderr
    assert "not a loopback address" not in run.stderr


def test_all_in_one_refuses_noauth_on_all_addresses_too(tmp_path):
    conf = tmp_path / "pyct.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {tmp_path}\n[database]\nconnection = "
        f"sqlite:///{tmp_path}/db\n[api]\nlisten = 0.0.0.0\n")
    run = subprocess.run([sys.executable, "-m", "pyct_driver.cmd.all_in_one",
                          "--config-file", str(conf)], cwd=REPO,
                         capture_output=True, text=True, timeout=120)
    assert run.returncode == 2, run.stderr
    assert "allow_noauth_off_loopback" in run.stderr
    # refused before anything was made: no database file
    assert not (tmp_path / "db").exists()
