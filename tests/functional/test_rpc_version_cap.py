"""``[upgrade_levels] compute`` through the whole pipeline: the API, the
real RPC client and a compute service on the in-process bus. A capped
method answers 409 with the cap named and changes nothing; below the cap
everything works as before."""

from __future__ import annotations

import json

import pytest
import webob

from pyct_driver import states
from pyct_driver.api import app as api_app
from pyct_driver.db import instances
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from tests.functional import compute_fixtures as fx


@pytest.fixture
def capped(tmp_path):
    conf = fx.make_conf()
    conf.set_override("compute", "1.0", group="upgrade_levels")
    db = fx.make_db(tmp_path)
    _, image = fx.seed_catalog(db, tmp_path)
    url = f"fake://{tmp_path.name}/"
    service = fx.start_compute(conf, db, "host-a", url)
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, url), timeout=10)
    try:
        yield db, image, client, api_app.create_app(conf, db, client)
    finally:
        service.stop()
        rpc_transport.cleanup()
        conf.clear_override("compute", group="upgrade_levels")


def _call(app, method, path, body=None):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = "alice:p1"
    req.headers["OpenStack-API-Version"] = "compute 2.37"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def test_capped_method_is_a_409_and_changes_nothing(capped):
    db, image, client, app = capped
    assert client.can_send_version("1.0")
    assert not client.can_send_version("1.1")
    # build_and_run_instance is 1.0: under the cap
    resp = _call(app, "POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none"}})
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == states.ACTIVE)
    # get_console_output is 1.1: over it
    resp = _call(app, "POST", f"/v2.1/servers/{sid}/action",
                 {"os-getConsoleOutput": {}})
    assert resp.status_int == 409, resp.text
    assert resp.json["conflictingRequest"]["message"] == (
        "get_console_output needs compute RPC API 1.1, but "
        "[upgrade_levels] compute caps it at 1.0; it is available once "
        "every compute service is upgraded.")
    row = instances.get(db, sid)
    assert (row["vm_state"], row["task_state"]) == (states.ACTIVE, None)


def test_a_capped_state_change_gives_its_task_state_back(capped):
    """pause (1.1) under a 1.0 cap: the handler has already taken the task
    state when the client refuses to send; the server must not be left in
    ``pausing`` with nobody to finish it."""
    db, image, client, app = capped
    resp = _call(app, "POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image["id"], "flavorRef": "1",
        "networks": "none"}})
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == states.ACTIVE)
    resp = _call(app, "POST", f"/v2.1/servers/{sid}/action", {"pause": None})
    assert resp.status_int == 409, resp.text
    assert "pause_instance needs compute RPC API 1.1" in resp.text
    row = instances.get(db, sid)
    assert (row["vm_state"], row["task_state"]) == (states.ACTIVE, None)
