"""Request ids from the API into the compute service's log, with real
processes over the real RabbitMQ.

A server is created through a real ``pyct-api`` with a caller-chosen
``X-OpenStack-Request-ID``; every line the separate ``pyct-compute``
process logs about that server while building it carries the API's own
request id (the ``x-openstack-request-id`` the API answered with) and the
caller's id as the global request id, in oslo.log's default
``logging_context_format_string`` — so an operator can grep one id from
the API's access log to the compute host's lines.
"""

from __future__ import annotations

import json
import urllib.request
import uuid

from tests.integration.conftest import FLAVOR_ID, wait_status

HOST = "compute-a"


def _create(dep, headers: dict) -> tuple[str, str]:
    req = urllib.request.Request(
        f"{dep.endpoint}/v2.1/servers", method="POST",
        data=json.dumps({"server": {"name": "traced", "imageRef":
                                    dep.image_id, "flavorRef": FLAVOR_ID,
                                    "networks": "none"}}).encode(),
        headers={"X-Auth-Token": "demo:demo",
                 "Content-Type": "application/json",
                 "OpenStack-API-Version": "compute 2.37", **headers})
    with urllib.request.urlopen(req, timeout=30) as resp:
        assert resp.status == 202
        return (json.load(resp)["server"]["id"],
                resp.headers["x-openstack-request-id"])


def test_compute_log_lines_carry_the_api_request_id(pipeline_factory):
    dep = pipeline_factory("postgresql")
    [compute] = dep.start_all(HOST)
    api = dep.processes[-1]
    global_id = f"req-{uuid.uuid4()}"
    sid, local_id = _create(dep, {"X-OpenStack-Request-ID": global_id})
    assert local_id != global_id
    wait_status(dep.sdk_connection("user"), sid, "ACTIVE")
    compute.wait_output(f"{sid}] vm_state building -> active")

    lines = [line for line in compute.output().splitlines() if sid in line]
    # created on the API host's side; spawning, then active on compute's
    assert len(lines) >= 2, compute.output()[-3000:]
    for line in lines:
        assert f"[{global_id} {local_id} demo demo" in line, line
    # the API's access line names the same pair
    assert any(f"[{global_id} {local_id}" in line and "POST /v2.1/servers"
               in line for line in api.output().splitlines())

    # a malformed id is not taken: the compute lines show only the API's
    sid2, local2 = _create(dep, {"X-OpenStack-Request-ID": "req-forged"})
    wait_status(dep.sdk_connection("user"), sid2, "ACTIVE")
    compute.wait_output(f"{sid2}] vm_state building -> active")
    lines = [line for line in compute.output().splitlines() if sid2 in line]
    assert lines and all(f"[None {local2} demo demo" in line
                         for line in lines), lines
    assert "req-forged" not in compute.output()
