"""Remote consoles through the API (fake compute client): types, states,
projects, bad input; and the one-time tokens behind the URLs."""

from __future__ import annotations

import json
import time
import urllib.parse

import pytest
import sqlalchemy as sa

from pyct_driver import exception, states
from pyct_driver.db import console_tokens, models
from tests.unit.test_api_app import Harness

_T = models.console_models.ConsoleAuthToken
SERIAL = {"remote_console": {"protocol": "serial", "type": "serial"}}


def _tokens(h) -> int:
    with h.db.session() as session:
        return session.scalar(sa.select(sa.func.count()).select_from(_T))


def _server(h, vm_state=states.ACTIVE, task_state=None, **overrides):
    h.add_host("node1")
    sid = h.boot("vm")["id"]
    with h.db.session() as session:
        row = session.scalars(sa.select(models.Instance)).one()
        row.vm_state, row.task_state, row.host = vm_state, task_state, \
            "node1"
    h.compute.calls.clear()
    return sid


def _console(h, sid, body=SERIAL, version="2.6", token="alice:p1"):
    return h.request("POST", f"/v2.1/servers/{sid}/remote-consoles", body,
                     version=version, token=token)


def test_serial_console_url_with_a_stored_one_time_token():
    h = Harness(serial_console__base_url="ws://proxy.example:6083/")
    sid = _server(h)
    resp = _console(h, sid)
    assert resp.status_int == 200, resp.text
    body = resp.json["remote_console"]
    assert (body["protocol"], body["type"]) == ("serial", "serial")
    url = urllib.parse.urlsplit(body["url"])
    assert (url.scheme, url.netloc, url.path) == ("ws", "proxy.example:6083",
                                                  "/")
    token = urllib.parse.parse_qs(url.query)["token"][0]
    assert len(token) >= 32
    assert h.compute.calls == [("get_serial_console", "node1", sid, {})]
    with h.db.session() as session:
        row = session.scalars(sa.select(_T)).one()
        # only a hash is stored, never the token
        assert token not in (row.token_hash, row.internal_access_path)
        assert row.instance_uuid == sid and row.port == 10000
        assert row.internal_access_path == f"key-{sid}"
        assert 590 <= row.expires - time.time() <= 600
    info = console_tokens.consume(h.db, token)
    assert info.instance_uuid == sid and info.host == "127.0.0.1"
    assert console_tokens.consume(h.db, token) is None  # one time
    # each request gets its own token
    urls = {_console(h, sid).json["remote_console"]["url"] for _ in range(3)}
    assert len(urls) == 3 and _tokens(h) == 3


def test_legacy_action_below_26_and_gone_after():
    h = Harness()
    sid = _server(h)
    action = {"os-getSerialConsole": {"type": "serial"}}
    resp = h.request("POST", f"/v2.1/servers/{sid}/action", action,
                     version="2.1")
    assert resp.status_int == 200, resp.text
    assert resp.json["console"]["type"] == "serial"
    assert resp.json["console"]["url"].startswith(
        "ws://127.0.0.1:6083/?token=")
    assert list(resp.json) == ["console"]
    resp = h.request("POST", f"/v2.1/servers/{sid}/action", action,
                     version="2.6")
    assert resp.status_int == 404, resp.text
    assert _console(h, sid, version="2.5").status_int == 404
    assert _tokens(h) == 1


@pytest.mark.parametrize("protocol,kind,version", [
    ("vnc", "novnc", "2.6"), ("spice", "spice-html5", "2.6"),
    ("rdp", "rdp-html5", "2.6"), ("mks", "webmks", "2.8")])
def test_graphical_consoles_are_unavailable(protocol, kind, version):
    h = Harness()
    sid = _server(h)
    resp = _console(h, sid, {"remote_console": {"protocol": protocol,
                                                "type": kind}}, version)
    assert resp.status_int == 400, resp.text
    assert resp.json["badRequest"]["message"] == \
        f"Unavailable console type {protocol}."
    assert h.compute.calls == [] and _tokens(h) == 0


@pytest.mark.parametrize("name,kind", [
    ("os-getVNCConsole", "novnc"), ("os-getSPICEConsole", "spice-html5")])
def test_legacy_graphical_actions_are_unavailable(name, kind):
    h = Harness()
    sid = _server(h)
    resp = h.request("POST", f"/v2.1/servers/{sid}/action",
                     {name: {"type": kind}}, version="2.1")
    assert resp.status_int == 400, resp.text
    assert resp.json["badRequest"]["message"] == \
        f"Unavailable console type {kind}."
    assert h.compute.calls == [] and _tokens(h) == 0


@pytest.mark.parametrize("vm_state,task_state", [
    (states.STOPPED, None), (states.PAUSED, None), (states.BUILDING,
                                                    states.SPAWNING),
    (states.ERROR, None), (states.ACTIVE, states.DELETING)])
def test_only_active_servers_get_a_console(vm_state, task_state):
    h = Harness()
    sid = _server(h, vm_state, task_state)
    resp = _console(h, sid)
    assert resp.status_int == 409, resp.text
    assert "conflictingRequest" in resp.json
    assert h.compute.calls == [] and _tokens(h) == 0


def test_other_projects_and_unknown_servers_get_404():
    h = Harness()
    sid = _server(h)
    resp = _console(h, sid, token="mallory:p2")
    assert resp.status_int == 404, resp.text
    assert "itemNotFound" in resp.json
    assert _console(h, "0" * 8 + "-0000-0000-0000-" + "0" * 12
                    ).status_int == 404


@pytest.mark.parametrize("body", [
    {}, {"remote_console": {}}, {"remote_console": {"protocol": "serial"}},
    {"remote_console": {"protocol": "serial", "type": "serial", "x": 1}},
    {"remote_console": {"protocol": 1, "type": "serial"}},
    {"remote_console": {"protocol": "serial", "type": -1}},
    {"remote_console": {"protocol": "telnet", "type": "serial"}},
    {"remote_console": {"protocol": "mks", "type": "webmks"}},  # < 2.8
    {"remote_console": "serial"}, [SERIAL], SERIAL | {"extra": {}},
    {"remote_console": {"protocol": "serial", "type": "novnc"}}])
def test_bad_input_is_400_and_changes_nothing(body):
    h = Harness()
    sid = _server(h)
    resp = _console(h, sid, body)
    assert resp.status_int == 400, resp.text
    assert list(resp.json) == ["badRequest"]
    assert h.compute.calls == [] and _tokens(h) == 0


def test_malformed_json_is_400():
    h = Harness()
    sid = _server(h)
    resp = h.request("POST", f"/v2.1/servers/{sid}/remote-consoles",
                     raw=b'{"remote_console": ', version="2.6")
    assert resp.status_int == 400 and "badRequest" in json.loads(resp.text)
    assert _tokens(h) == 0


def test_disabled_serial_console_is_unavailable():
    h = Harness(serial_console__enabled=False)
    sid = _server(h)
    resp = _console(h, sid)
    assert resp.status_int == 400, resp.text
    assert resp.json["badRequest"]["message"] == \
        "Unavailable console type serial."
    assert _tokens(h) == 0


def test_compute_host_refusal_leaves_no_token():
    h = Harness()
    sid = _server(h)

    def refuse(ctxt, host, instance_uuid):
        raise exception.InstanceNotReady(instance_id=instance_uuid)
    h.compute.get_serial_console = refuse
    resp = _console(h, sid)
    assert resp.status_int == 409, resp.text
    assert resp.json["conflictingRequest"]["message"] == \
        f"Instance {sid} is not ready"
    assert _tokens(h) == 0


def test_expired_and_unknown_tokens_are_refused():
    h = Harness()
    token = console_tokens.authorize(h.db, "u1", "serial", "h", 1, "k",
                                     "ws://x/", 600)
    with h.db.session() as session:
        session.execute(sa.update(_T).values(expires=int(time.time()) - 1))
    assert console_tokens.consume(h.db, token) is None
    assert console_tokens.consume(h.db, "") is None
    assert console_tokens.consume(h.db, "x" * 1000) is None
    assert console_tokens.consume(h.db, token + "x") is None
    # a new token purges the expired rows
    fresh = console_tokens.authorize(h.db, "u1", "serial", "h", 1, "k",
                                     "ws://x/", 600)
    assert _tokens(h) == 1
    console_tokens.delete_for_instance(h.db, "u1")
    assert console_tokens.consume(h.db, fresh) is None
