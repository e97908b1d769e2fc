"""PostgreSQL outages and mid-stream drops, through a ``FaultProxy``.

``pyct-api`` and ``pyct-compute`` reach the real PostgreSQL through the
proxy. While the database is away (connections cut, new ones refused) a
create, a delete and a list are answered 503 with ``Retry-After`` and
Nova's ``serviceUnavailable`` body, and nothing is written; the compute
service keeps its guests running through its failing power syncs, and a
build that was spawning when the database went finishes once it is back.
Then creates meet connections reset mid-stream: each either is answered
and becomes ACTIVE, or failed whole (no instance row without its create
action); one whose commit landed but whose answer was lost is not left
in BUILD: the stuck-work task fails it after the build timeout.
"""

from __future__ import annotations

import contextlib
import random
import time

from tests.integration.conftest import FLAVOR_ID, wait_status, wait_until
from tests.integration.faulty_pipeline import (DriverCalls, api_request,
                                               live_rows, open_faulty)

BOOT = {"server": {"name": "x", "imageRef": None, "flavorRef": FLAVOR_ID,
                   "networks": "none"}}


def _boot_body(dep, name: str) -> dict:
    body = {"server": dict(BOOT["server"], name=name,
                           imageRef=dep.image_id)}
    return body


def _assert_unavailable(resp) -> None:
    assert resp.status_code == 503, resp.text
    assert int(resp.headers["Retry-After"]) > 0
    fault = resp.json()["serviceUnavailable"]
    assert fault["code"] == 503
    assert "database is unavailable" in fault["message"]


def test_db_outage_and_resets(tmp_path):
    with contextlib.ExitStack() as stack:
        f = open_faulty(stack, str(tmp_path / "dep"), bus=False, db=True,
                        extra={"DEFAULT": {"instance_build_timeout": 8,
                                           "stuck_work_interval": 1}})
        dep = f.dep
        compute, = dep.start_all(
            "compute-a", extra={"fake_driver": {"spawn_delay": 2}})
        conn = dep.sdk_connection("user")
        running = [conn.compute.create_server(
            name=f"run{i}", image_id=dep.image_id, flavor_id=FLAVOR_ID,
            networks="none") for i in range(2)]
        running = [wait_status(conn, s.id, "ACTIVE") for s in running]
        inflight = conn.compute.create_server(
            name="inflight", image_id=dep.image_id, flavor_id=FLAVOR_ID,
            networks="none")
        wait_until(lambda: conn.compute.get_server(inflight.id).task_state
                   == "spawning", 10, "the build to reach spawning")
        before = len(live_rows(dep, "SELECT id FROM instances"))

        with f.db.outage():
            _assert_unavailable(api_request(dep, "POST", "/servers",
                                            _boot_body(dep, "refused")))
            _assert_unavailable(api_request(
                dep, "DELETE", f"/servers/{running[0].id}"))
            _assert_unavailable(api_request(dep, "GET", "/servers/detail"))
            time.sleep(5)  # the spawn ends; power syncs fail meanwhile
        # nothing of the refused requests was written
        assert len(live_rows(dep, "SELECT id FROM instances")) == before
        # the build in flight catches up; the running guests ran on
        wait_status(conn, inflight.id, "ACTIVE", timeout=30)
        for s in running:
            server = conn.compute.get_server(s.id)
            assert (server.status, server.power_state) == ("ACTIVE", 1)
        calls = DriverCalls(f.call_log)
        for s in running + [inflight]:
            assert calls.count("spawn", s.id) == 1
            assert calls.count("power_off", s.id) == 0
            assert calls.count("destroy", s.id) == 0
        assert "compute service on compute-a" not in compute.output(
            ).split("started", 1)[1]  # it did not restart or stop
        assert compute.alive()

        # connections reset in the middle of a request
        rng = random.Random(17)
        answers = []
        for i in range(10):
            f.db.reset_after(rng.randrange(40, 3000))
            resp = api_request(dep, "POST", "/servers",
                               _boot_body(dep, f"reset{i}"))
            assert resp.status_code in (202, 503), resp.text
            if resp.status_code == 503:
                _assert_unavailable(resp)
            answers.append(resp)
        accepted = {r.json()["server"]["id"] for r in answers
                    if r.status_code == 202}
        assert any(r.status_code == 503 for r in answers)
        rows = live_rows(dep, "SELECT uuid FROM instances WHERE name "
                              "LIKE 'reset%' AND deleted = 0")
        made = {r["uuid"] for r in rows}
        assert accepted <= made
        for uuid in made:
            acts = live_rows(dep, "SELECT action FROM instance_actions "
                                  f"WHERE instance_uuid = '{uuid}'")
            assert [a["action"] for a in acts] == ["create"], uuid
        for uuid in made:
            status = "ACTIVE" if uuid in accepted else "ERROR"
            wait_status(conn, uuid, status, timeout=40)
        for uuid in made:
            conn.compute.delete_server(uuid)
        for s in running + [inflight]:
            conn.compute.delete_server(s)
        wait_until(lambda: dep.live_instances() == [], 30,
                   "every server to be deleted")
        assert compute.alive()
