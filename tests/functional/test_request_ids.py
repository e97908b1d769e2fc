"""Request ids from the API through RPC into the compute manager, in
process (the compute log lines are checked with real processes in
tests/integration/test_request_ids_logs.py): the context the manager acts under carries the id the API
answered with, and a caller's well-formed ``X-OpenStack-Request-ID`` as
its global request id (a malformed one is ignored, as Nova does)."""

from __future__ import annotations

import json
import uuid as uuidlib

import pytest
import webob

from tests.functional import compute_fixtures as fx
from tests.functional.test_notifications import _image, env  # noqa: F401


def _boot(app, image_id, headers):
    req = webob.Request.blank("/v2.1/servers", method="POST")
    req.headers.update({"X-Auth-Token": "alice:p1",
                        "OpenStack-API-Version": "compute 2.37", **headers})
    req.body = json.dumps({"server": {
        "name": "vm1", "imageRef": image_id, "flavorRef": "1",
        "networks": "none"}}).encode()
    req.content_type = "application/json"
    return req.get_response(app)


@pytest.mark.parametrize("incoming,kept", [
    ("req-" + str(uuidlib.uuid4()), True),
    ("req-not-a-uuid", False),
    (str(uuidlib.uuid4()), False),                 # no req- prefix
    ("req-" + str(uuidlib.uuid4()).upper(), False),
    ("req-" + str(uuidlib.uuid4()) + "\nforged log line", False),
    # fixed ids: every pytest-xdist worker must collect the same names
], ids=["req-uuid", "req-not-a-uuid", "bare-uuid", "upper-case",
        "forged-line"])
def test_request_and_global_ids_reach_the_manager(env, incoming,  # noqa: F811
                                                  kept):
    db, service, app, rec = env
    resp = _boot(app, _image(db), {"X-OpenStack-Request-ID": incoming})
    assert resp.status_int == 202, resp.text
    local = resp.headers["x-openstack-request-id"]
    assert local.startswith("req-") and local != incoming
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
    sent = rec.take(2)
    contexts = [c for _, c, _, _ in sent]
    assert [c.request_id for c in contexts] == [local, local]
    want = incoming if kept else None
    assert [c.global_request_id for c in contexts] == [want, want]
