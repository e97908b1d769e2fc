"""RabbitMQ faults with casts and calls in flight: nothing lost, nothing
doubled.

``pyct-api`` and two ``pyct-compute`` reach the real RabbitMQ through a
``FaultProxy``. Boots go out while every bus connection is cut; reboots
are sent during a short outage (connections cut, new ones refused) that
the API's send retries outlast; one reboot meets an outage longer than
the retries and is answered 503 with ``Retry-After`` and its task state
given back; a console call crosses a cut; deletes go out between cuts.
The services reconnect by themselves, and the count check at the end
holds: each accepted boot spawned once, each accepted reboot rebooted
once, the refused one not at all, each delete destroyed once; every
request claim was done, and went with its server.
"""

from __future__ import annotations

import contextlib
import threading
import time

from tests.integration.conftest import FLAVOR_ID, wait_status
from tests.integration.faulty_pipeline import (DriverCalls, api_request,
                                               live_rows, open_faulty)

N = 6


def test_bus_cuts_and_outages_lose_and_double_nothing(tmp_path):
    with contextlib.ExitStack() as stack:
        f = open_faulty(stack, str(tmp_path / "dep"), bus=True)
        dep = f.dep
        dep.start_all("compute-a", "compute-b")
        conn = dep.sdk_connection("user")

        created = []
        for i in range(N):
            created.append(conn.compute.create_server(
                name=f"vm{i}", image_id=dep.image_id, flavor_id=FLAVOR_ID,
                networks="none"))
            if i % 2 == 0:
                assert f.bus.cut() > 0  # the API's and computes' links
        servers = [wait_status(conn, s.id, "ACTIVE", timeout=60)
                   for s in created]

        # reboots sent while the bus is away for less than the retries
        codes: dict[str, int] = {}

        def reboot(server_id: str) -> None:
            codes[server_id] = api_request(
                dep, "POST", f"/servers/{server_id}/action",
                {"reboot": {"type": "SOFT"}}).status_code

        rebooted = servers[:4]
        with f.bus.outage():
            threads = [threading.Thread(target=reboot, args=(s.id,))
                       for s in rebooted]
            for t in threads:
                t.start()
            time.sleep(2)
        for t in threads:
            t.join(timeout=60)
        assert codes == {s.id: 202 for s in rebooted}
        for s in rebooted:
            wait_status(conn, s.id, "ACTIVE", timeout=60)

        # an outage longer than the retries: a clear 503, nothing changed
        refused = servers[4]
        with f.bus.outage():
            resp = api_request(dep, "POST", f"/servers/{refused.id}/action",
                               {"reboot": {"type": "SOFT"}})
        assert resp.status_code == 503, resp.text
        assert resp.headers["Retry-After"] == "5"
        fault = resp.json()["serviceUnavailable"]
        assert fault["code"] == 503
        assert "message bus is unavailable" in fault["message"]
        server = conn.compute.get_server(refused.id)
        assert (server.status, server.task_state) == ("ACTIVE", None)

        # a call across a cut: the answer, or a clear error
        f.bus.cut()
        resp = api_request(dep, "POST", f"/servers/{servers[0].id}/action",
                           {"os-getConsoleOutput": {"length": 5}})
        assert resp.status_code in (200, 503), resp.text
        if resp.status_code == 200:
            assert "reboot" in resp.json()["output"]
        else:
            assert "retry later" in resp.json()["serviceUnavailable"][
                "message"].lower()

        claims = live_rows(dep, "SELECT method, state FROM request_claims")
        assert {c["state"] for c in claims} == {"done"}
        assert len(claims) == N + len(rebooted)

        for i, s in enumerate(servers):
            conn.compute.delete_server(s)
            if i % 2:
                f.bus.cut()
        for s in servers:
            conn.compute.wait_for_delete(s, interval=0.3, wait=60)
        assert dep.live_instances() == []

        calls = DriverCalls(f.call_log)
        for s in servers:
            assert calls.count("spawn", s.id) == 1, s.id
            assert calls.count("reboot", s.id) == (s in rebooted), s.id
            assert calls.count("destroy", s.id) == 1, s.id
        # the claims went with the rows
        assert live_rows(dep, "SELECT id FROM request_claims") == []
        for proc in dep.processes:
            assert proc.alive(), proc.output()[-3000:]
