"""The built-in threaded server serves the app over real HTTP."""

from __future__ import annotations

import contextlib
import http.client
import json
import logging
import threading
import time
import urllib.parse
import urllib.request
from typing import Iterator

import pytest

from pyct_driver.api import policy, wsgi_server
from pyct_driver.api.policies import base as policy_base
from tests.unit.test_api_app import Harness


@contextlib.contextmanager
def serving(app, threads: int = 4) -> Iterator[int]:
    """Serve ``app`` on a loopback port for the block; yields the port."""
    server = wsgi_server.make_server(app, "127.0.0.1", 0, threads=threads)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def call(port: int, method: str, path: str, token: str = "alice:p1",
         body: bytes | None = None) -> tuple[int, dict, float]:
    """(status, JSON body, seconds) of one request over a new connection."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    headers = {"X-Auth-Token": token, "Content-Type": "application/json",
               "OpenStack-API-Version": "compute 2.37"}
    start = time.monotonic()
    try:
        conn.request(method, path, body=body, headers=headers)
        resp = conn.getresponse()
        data = resp.read()
    finally:
        conn.close()
    return resp.status, json.loads(data) if data else {}, \
        time.monotonic() - start


def test_serves_over_loopback_concurrently():
    h = Harness()
    with serving(h.app) as port:
        results = []

        def fetch():
            req = urllib.request.Request(
                f"http://127.0.0.1:{port}/v2.1/flavors",
                headers={"X-Auth-Token": "alice:p1"})
            with urllib.request.urlopen(req, timeout=10) as resp:
                results.append((resp.status, json.loads(resp.read()),
                                resp.headers["x-openstack-request-id"]))
        workers = [threading.Thread(target=fetch) for _ in range(8)]
        for w in workers:
            w.start()
        for w in workers:
            w.join(10)
        assert len(results) == 8
        assert all(r[0] == 200 and r[1]["flavors"][0]["id"] == "1"
                   for r in results)
        assert results[0][1]["flavors"][0]["links"][0]["href"] == \
            f"http://127.0.0.1:{port}/v2.1/flavors/1"
        assert len({r[2] for r in results}) == 8


def test_catastrophic_name_filter_stalls_no_one():
    """``^(a+)+$`` against ``a…a!`` took Python's re 2**27 steps (5 s) with
    the GIL held, stalling another project's request as long. With RE2
    both answer at once, and the filter still means what it says."""
    h = Harness()
    h.add_host()
    h.boot("a" * 27 + "!")
    h.boot("aaaa")
    h.boot("theirs", token="bob:p2")
    evil = "/v2.1/servers?name=" + urllib.parse.quote("^(a+)+$")
    with serving(h.app) as port:
        call(port, "GET", "/v2.1/servers", "bob:p2")   # warm up
        # best of three rounds: a loaded CI machine may delay one request,
        # the backtracking engine delays every round by seconds
        for _ in range(3):
            got: dict[str, tuple] = {}
            attacker = threading.Thread(target=lambda: got.update(
                evil=call(port, "GET", evil)))
            attacker.start()
            time.sleep(0.02)        # the filter is running by now
            got["other"] = call(port, "GET", "/v2.1/servers/detail",
                                "bob:p2")
            attacker.join(120)
            if max(got["evil"][2], got["other"][2]) < 0.1:
                break
    status, body, evil_s = got["evil"]
    assert status == 200
    assert [s["name"] for s in body["servers"]] == ["aaaa"]
    status, body, other_s = got["other"]
    assert status == 200
    assert [s["name"] for s in body["servers"]] == ["theirs"]
    assert evil_s < 0.1, f"the filter took {evil_s:.3f} s"
    assert other_s < 0.1, f"another project waited {other_s:.3f} s"


# both under the 112 KiB body limit, both far past the recursion limit
DEEP = [b"[" * 50000 + b"]" * 50000,
        b'{"a":' * 18000 + b"1" + b"}" * 18000]


@pytest.mark.parametrize("method,path,body,code,fault", [
    ("POST", "/v2.1/servers", DEEP[0], 400, "badRequest"),
    ("POST", "/v2.1/servers", DEEP[1], 400, "badRequest"),
    ("POST", "/v2.1/servers/{sid}/action", DEEP[0], 400, "badRequest"),
    ("PUT", "/v2.1/servers/{sid}", DEEP[1], 400, "badRequest"),
    ("POST", "/v2.1/os-keypairs", DEEP[0], 400, "badRequest"),
    ("POST", "/v2.1/flavors", DEEP[0], 400, "badRequest"),
    # the Glance and Neutron routes read no body: the body is ignored
    ("GET", "/image/v2/images", DEEP[0], 200, None),
    ("GET", "/networking/v2.0/networks", DEEP[1], 200, None),
])
def test_deep_json_is_400_without_traceback(method, path, body, code, fault,
                                            caplog, capfd):
    h = Harness()
    h.add_host()
    sid = h.boot("vm")["id"]
    token = "admin:adminproj" if "flavors" in path else "alice:p1"
    caplog.set_level(logging.DEBUG)
    with serving(h.app) as port:
        status, payload, _ = call(port, method, path.format(sid=sid), token,
                                  body)
    assert status == code, payload
    if fault:
        assert payload == {fault: {"code": code,
                                   "message": "Malformed request body"}}
    assert "Traceback" not in caplog.text + capfd.readouterr().err
    assert not [r for r in caplog.records
                if r.exc_info or r.levelno >= logging.ERROR]


def test_policy_rules_listed_for_sample_generator():
    names = {r.name for r in policy.list_rules()}
    assert "os_compute_api:os-flavor-manage:create" in names
    assert "os_compute_api:servers:index:get_all_tenants" in names
    admin_only = {r.name for r in policy.list_rules()
                  if r.check_str == policy_base.ADMIN}
    assert {"os_compute_api:os-extended-server-attributes",
            "os_compute_api:servers:show:host_status",
            "os_compute_api:os-flavor-manage:delete"} <= admin_only
