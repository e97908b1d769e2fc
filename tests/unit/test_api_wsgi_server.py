"""The built-in threaded server serves the app over real HTTP."""

from __future__ import annotations

import json
import threading
import urllib.request

from pyct_driver.api import policy, wsgi_server
from tests.unit.test_api_app import Harness


def test_serves_over_loopback_concurrently():
    h = Harness()
    server = wsgi_server.make_server(h.app, "127.0.0.1", 0, threads=4)
    port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
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
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


def test_policy_rules_listed_for_sample_generator():
    names = {r.name for r in policy.list_rules()}
    assert "os_compute_api:os-flavor-manage:create" in names
    assert "os_compute_api:servers:index:get_all_tenants" in names
    admin_only = {r.name for r in policy.list_rules()
                  if r.check_str == policy.ADMIN}
    assert {"os_compute_api:os-extended-server-attributes",
            "os_compute_api:servers:show:host_status",
            "os_compute_api:os-flavor-manage:delete"} <= admin_only
