"""The serial console end to end without root: API -> RPC -> compute's
console endpoint -> fake driver's shell, through the real websocket proxy
and a real websocket client (the ``websockets`` library)."""

from __future__ import annotations

import base64
import json
import socket
import time
import urllib.parse

import pytest
import sqlalchemy as sa
import webob
from websockets import exceptions as ws_exc
from websockets.sync.client import connect

from pyct_driver import context, exception
from pyct_driver.api import app as api_app
from pyct_driver.compute.console_endpoint import ConsoleEndpoint
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.compute.service import ComputeService
from pyct_driver.console.websocketproxy import SerialProxy
from pyct_driver.db import actions, models
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from pyct_driver.virt.fake import FakeDriver
from tests.functional import compute_fixtures as fx


@pytest.fixture
def env(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    flavor, image = fx.seed_catalog(db, tmp_path)
    url = f"fake://{tmp_path.name}/"
    manager = ComputeManager(db, FakeDriver(conf), "host-a",
                             shutdown_timeout=1)
    endpoint = ConsoleEndpoint("127.0.0.1", (0, 0), 600,
                               manager.attach_console)
    service = ComputeService(manager, rpc_transport.get_transport(conf, url),
                             report_interval=1, sync_interval=-1,
                             console_endpoint=endpoint)
    service.start()
    proxy = SerialProxy(db, "127.0.0.1", 0, "ws://127.0.0.1/")
    proxy.start()
    conf.set_override("base_url", f"ws://127.0.0.1:{proxy.port}/",
                      group="serial_console")
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, url), timeout=10)
    app = api_app.create_app(conf, db, client)
    inst = fx.new_instance(db, flavor, image, "host-a")
    c = context.RequestContext("u", "p1", ["member"])
    actions.action_start(db, inst["uuid"], "create", c.request_id, "u", "p1")
    client.build_and_run_instance(c, "host-a", inst["uuid"])
    fx.wait_for_row(db, inst["uuid"], lambda r: r["vm_state"] == "active")
    try:
        yield app, inst["uuid"], endpoint, proxy
    finally:
        proxy.stop()
        service.stop()
        conf.clear_override("base_url", group="serial_console")
        rpc_transport.cleanup()


def _url(app, uuid, token="alice:p1") -> str:
    req = webob.Request.blank(f"/v2.1/servers/{uuid}/remote-consoles",
                              method="POST")
    req.headers["X-Auth-Token"] = token
    req.headers["OpenStack-API-Version"] = "compute 2.6"
    req.body = json.dumps({"remote_console": {"protocol": "serial",
                                              "type": "serial"}}).encode()
    req.content_type = "application/json"
    resp = req.get_response(app)
    assert resp.status_int == 200, resp.text
    return resp.json["remote_console"]["url"]


def _read_until(ws, needle: bytes, as_text=False) -> bytes:
    seen = b""
    while needle not in seen:
        msg = ws.recv(timeout=10)
        seen += base64.b64decode(msg) if as_text else msg
    return seen


def test_echo_hello_over_the_websocket_then_token_is_spent(env):
    app, uuid, _endpoint, _proxy = env
    url = _url(app, uuid)
    with connect(url, subprotocols=["binary"]) as ws:
        assert ws.subprotocol == "binary"
        ws.send(b"echo hello\n")
        assert b"\r\nhello\r\n" in _read_until(ws, b"\r\nhello\r\n")
    with pytest.raises(ws_exc.InvalidStatus) as err:
        connect(url, subprotocols=["binary"])
    assert err.value.response.status_code == 401


def test_base64_subprotocol_and_no_subprotocol(env):
    app, uuid, _endpoint, _proxy = env
    with connect(_url(app, uuid), subprotocols=["base64"]) as ws:
        assert ws.subprotocol == "base64"
        ws.send(base64.b64encode(b"echo b64\n").decode())
        assert b"\r\nb64\r\n" in _read_until(ws, b"\r\nb64\r\n", True)
    with connect(_url(app, uuid)) as ws:  # none offered: binary frames
        assert ws.subprotocol is None
        ws.send(b"echo plain\n")
        _read_until(ws, b"\r\nplain\r\n")


def test_refusals_before_the_upgrade(env):
    app, uuid, _endpoint, proxy = env
    base = f"ws://127.0.0.1:{proxy.port}/"
    for url, kw, status in [
            (base + "?token=nope", {}, 401),
            (base, {}, 401),
            (_url(app, uuid), {"subprotocols": ["chat"]}, 400),
            (_url(app, uuid), {"origin": "http://evil.example"}, 403),
            (_url(app, uuid), {"origin": "https://127.0.0.1"}, 403)]:
        with pytest.raises(ws_exc.InvalidStatus) as err:
            connect(url, **kw)
        assert err.value.response.status_code == status, url
    # a browser on the proxy's own host is fine
    with connect(_url(app, uuid), origin="http://127.0.0.1") as ws:
        ws.send(b"echo ok\n")
        _read_until(ws, b"\r\nok\r\n")


def test_compute_endpoint_wants_its_one_time_key(env):
    app, uuid, endpoint, _proxy = env
    for line in (b"wrong\n", b"\n"):
        with socket.create_connection(("127.0.0.1", endpoint.port)) as s:
            s.sendall(line)
            assert s.recv(64) == b"refused\n"
    where = endpoint.authorize(uuid)
    for expect in (b"ok\n", b"refused\n"):  # good once
        with socket.create_connection(("127.0.0.1", endpoint.port)) as s:
            s.sendall(where["internal_access_path"].encode() + b"\n")
            assert s.recv(8) == expect


def test_other_project_cannot_get_a_url(env):
    app, uuid, _endpoint, _proxy = env
    req = webob.Request.blank(f"/v2.1/servers/{uuid}/remote-consoles",
                              method="POST")
    req.headers["X-Auth-Token"] = "mallory:p2"
    req.headers["OpenStack-API-Version"] = "compute 2.6"
    req.body = b'{"remote_console": {"protocol": "serial", "type": "serial"}}'
    req.content_type = "application/json"
    assert req.get_response(app).status_int == 404
    assert urllib.parse.urlsplit(_url(app, uuid)).query.startswith("token=")


def test_expired_token_is_refused_at_the_proxy(env):
    app, uuid, _endpoint, proxy = env
    url = _url(app, uuid)
    db = proxy.db
    with db.session() as session:
        session.execute(sa.update(models.console_models.ConsoleAuthToken)
                        .values(expires=1))
    with pytest.raises(ws_exc.InvalidStatus) as err:
        connect(url, subprotocols=["binary"])
    assert err.value.response.status_code == 401


def test_compute_endpoint_keys_expire(env):
    _app, uuid, endpoint, _proxy = env
    endpoint.ttl = 0.01
    where = endpoint.authorize(uuid)
    time.sleep(0.05)
    with socket.create_connection(("127.0.0.1", endpoint.port)) as s:
        s.sendall(where["internal_access_path"].encode() + b"\n")
        assert s.recv(8) == b"refused\n"


def test_console_gone_by_connect_time_is_503_and_token_spent(env):
    app, uuid, endpoint, _proxy = env
    url = _url(app, uuid)
    attach = endpoint.attach

    def gone(instance_uuid):
        raise exception.InstanceNotReady(instance_id=instance_uuid)
    endpoint.attach = gone
    try:
        with pytest.raises(ws_exc.InvalidStatus) as err:
            connect(url, subprotocols=["binary"])
        assert err.value.response.status_code == 503
    finally:
        endpoint.attach = attach
    with pytest.raises(ws_exc.InvalidStatus) as err:
        connect(url, subprotocols=["binary"])
    assert err.value.response.status_code == 401
