"""Cold migration and resize to another host through the whole in-process
pipeline (API → fake bus → two compute services → fake drivers), the
stream going over the real token channel on loopback: states, migration
records, instance actions, confirm and revert, the refusals that change
nothing, and live migration refused with the host and its reason."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
import webob

from pyct_driver import states
from pyct_driver.api import app as api_app
from pyct_driver.api.scheduler import Scheduler
from pyct_driver.cmd import host_drain
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.compute.service import ComputeService
from pyct_driver.compute import resize
from pyct_driver.db import actions, catalog, instances, resizes
from pyct_driver.db.models_hosts import Migration
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from tests.functional import compute_fixtures as fx
from tests.functional.compute_fixtures import TunnelDriver
from tests.waiting import wait_for

ADMIN = "admin:adminproj"
# VXLAN endpoints of the two hosts (recorded by the fake driver only)
HOSTS = {"host-a": "10.254.200.1", "host-b": "10.254.200.2"}


@pytest.fixture
def env(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    fx.seed_catalog(db, tmp_path)
    catalog.flavor_create(db, dict(flavorid="2", name="m1.small", vcpus=2,
                                   memory_mb=1024, root_gb=2))
    url = f"fake://{tmp_path.name}/"
    svcs = {}
    try:
        for host, address in HOSTS.items():
            transport = rpc_transport.get_transport(conf, url)
            manager = ComputeManager(db, TunnelDriver(conf, address), host,
                                     shutdown_timeout=1)
            manager.compute_rpc = rpc_client.ComputeClient(
                conf, transport, timeout=10)
            manager.migration_token_ttl = 5
            svcs[host] = ComputeService(manager, transport,
                                        report_interval=60,
                                        sync_interval=-1)
            svcs[host].start()
        client = rpc_client.ComputeClient(
            conf, rpc_transport.get_transport(conf, url), timeout=10)
        yield db, svcs, api_app.create_app(conf, db, client)
    finally:
        for service in svcs.values():
            service.stop()
        rpc_transport.cleanup()


def call(app, method, path, body=None, token=ADMIN, version="2.56"):
    req = webob.Request.blank(path, method=method)
    req.headers["X-Auth-Token"] = token
    req.headers["OpenStack-API-Version"] = f"compute {version}"
    if body is not None:
        req.body = json.dumps(body).encode()
        req.content_type = "application/json"
    return req.get_response(app)


def boot(app, db, host="host-a", networks="none"):
    image = catalog.image_list(db)[0]
    resp = call(app, "POST", "/v2.1/servers", {"server": {
        "name": "vm", "imageRef": image["id"], "flavorRef": "1",
        "networks": networks, "host": host}}, version="2.74")
    assert resp.status_int == 202, resp.text
    sid = resp.json["server"]["id"]
    fx.wait_for_row(db, sid, lambda r: r["vm_state"] == "active")
    return sid


def act(app, sid, body, **kw):
    return call(app, "POST", f"/v2.1/servers/{sid}/action", body, **kw)


def idle(db, sid, vm_state):
    return fx.wait_for_row(db, sid, lambda r: r["vm_state"] == vm_state
                           and r["task_state"] is None)


def guests(svcs) -> dict:
    return {h: sorted(s.manager.driver._instances) for h, s in svcs.items()}


def test_migrate_confirm_moves_files_and_cleans_the_source(env):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-a"].manager.driver._instances[sid]["files"] = {"/f": "kept"}
    assert act(app, sid, {"migrate": None}).status_int == 202
    row = idle(db, sid, states.RESIZED)
    assert row["host"] == "host-b"
    server = call(app, "GET", f"/v2.1/servers/{sid}").json["server"]
    assert server["status"] == "VERIFY_RESIZE"
    moved = svcs["host-b"].manager.driver._instances[sid]
    assert moved["files"] == {"/f": "kept"}
    assert moved["power_state"] == states.RUNNING
    assert sid in guests(svcs)["host-a"]  # kept until confirmed
    migs = call(app, "GET", "/v2.1/os-migrations").json["migrations"]
    assert [(m["source_compute"], m["dest_compute"], m["status"],
             m["migration_type"]) for m in migs] == [
        ("host-a", "host-b", "finished", "migration")]
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    idle(db, sid, states.ACTIVE)
    fx.wait_for_row(db, sid, lambda r: sid not in guests(svcs)["host-a"])
    assert guests(svcs) == {"host-a": [], "host-b": [sid]}
    migs = call(app, "GET", "/v2.1/os-migrations").json["migrations"]
    assert migs[0]["status"] == "confirmed"
    names = [a["action"] for a in actions.action_list(db, sid)]
    assert "migrate" in names and "confirmResize" in names


def test_migrate_revert_returns_to_the_source(env):
    db, svcs, app = env
    sid = boot(app, db)
    assert act(app, sid, {"migrate": {"host": "host-b"}}).status_int == 202
    idle(db, sid, states.RESIZED)
    assert act(app, sid, {"revertResize": None}).status_int == 202
    row = idle(db, sid, states.ACTIVE)
    assert row["host"] == "host-a"
    assert guests(svcs) == {"host-a": [sid], "host-b": []}
    assert svcs["host-a"].manager.driver._instances[sid]["power_state"] \
        == states.RUNNING
    migs = call(app, "GET", "/v2.1/os-migrations").json["migrations"]
    assert migs[0]["status"] == "reverted"


def test_resize_moves_when_the_own_host_is_full(env):
    db, svcs, app = env
    sid = boot(app, db)
    # host-a has no room left for the growth, host-b has
    with db.session() as session:
        session.execute(sa.text(
            "UPDATE compute_nodes SET memory_mb = 600 WHERE host = "
            "'host-a'"))
    resp = act(app, sid, {"resize": {"flavorRef": "2"}},
               token="alice:" + instances.get(db, sid)["project_id"])
    assert resp.status_int == 202, resp.text
    row = idle(db, sid, states.RESIZED)
    assert (row["host"], row["flavor_id"]) == ("host-b", "2")
    assert act(app, sid, {"confirmResize": None}).status_int == 204
    idle(db, sid, states.ACTIVE)
    migs = call(app, "GET", "/v2.1/os-migrations").json["migrations"]
    assert migs[0]["migration_type"] == "resize"


def _snapshot(db, sid):
    with db.engine.connect() as conn:
        migs = conn.execute(sa.select(sa.func.count()).select_from(
            Migration)).scalar()
    return instances.get(db, sid), migs, len(actions.action_list(db, sid))


@pytest.mark.parametrize("body,token,version,status,words", [
    ({"migrate": {"host": "host-a"}}, ADMIN, "2.56", 400,
     "Cannot migrate to the host where the server exists."),
    ({"migrate": {"host": "nowhere"}}, ADMIN, "2.56", 400,
     "Compute host nowhere could not be found."),
    ({"migrate": {"host": "host-b"}}, ADMIN, "2.55", 400, "Invalid input"),
    ({"migrate": {"host": "host-b", "x": 1}}, ADMIN, "2.56", 400,
     "Additional properties"),
    ({"migrate": None}, "alice:PROJECT", "2.56", 403, "Policy doesn't allow"),
], ids=["same-host", "unknown-host", "host-before-2.56", "extra-key",
        "not-admin"])
def test_bad_migrations_change_nothing(env, body, token, version, status,
                                       words):
    db, svcs, app = env
    sid = boot(app, db)
    token = token.replace("PROJECT", instances.get(db, sid)["project_id"])
    before = _snapshot(db, sid)
    resp = act(app, sid, body, token=token, version=version)
    assert resp.status_int == status, resp.text
    fault = next(iter(resp.json.values()))
    assert words in fault["message"], fault
    assert _snapshot(db, sid) == before


def test_disabled_target_and_wrong_state(env):
    db, svcs, app = env
    sid = boot(app, db)
    svc = next(s for s in call(app, "GET", "/v2.1/os-services",
                               version="2.53").json["services"]
               if s["host"] == "host-b")
    assert call(app, "PUT", f"/v2.1/os-services/{svc['id']}",
                {"status": "disabled"}, version="2.53").status_int == 200
    before = _snapshot(db, sid)
    resp = act(app, sid, {"migrate": {"host": "host-b"}})
    assert resp.status_int == 400
    assert "host-b is disabled" in resp.json["badRequest"]["message"]
    resp = act(app, sid, {"migrate": None})  # no other host is left
    assert resp.status_int == 400
    assert "No valid host was found" in resp.json["badRequest"]["message"]
    assert _snapshot(db, sid) == before
    instances.update(db, sid, {"task_state": states.POWERING_OFF})
    resp = act(app, sid, {"migrate": None})
    assert resp.status_int == 409 and "conflictingRequest" in resp.json


def test_live_migration_is_refused_naming_the_host(env):
    db, svcs, app = env
    sid = boot(app, db)
    before = _snapshot(db, sid)
    resp = act(app, sid, {"os-migrateLive": {
        "host": None, "block_migration": "auto"}}, version="2.25")
    assert resp.status_int == 400, resp.text
    msg = resp.json["badRequest"]["message"]
    assert "host host-a cannot checkpoint and restore guests" in msg
    assert "fake driver" in msg
    assert _snapshot(db, sid) == before


def test_a_failed_transfer_leaves_the_guest_on_the_source(env):
    db, svcs, app = env
    sid = boot(app, db)
    svcs["host-b"].manager.driver._fail = _failing("receive_guest")
    assert act(app, sid, {"migrate": None}).status_int == 202
    row = idle(db, sid, states.ACTIVE)
    assert row["host"] == "host-a"
    assert guests(svcs) == {"host-a": [sid], "host-b": []}
    assert svcs["host-a"].manager.driver._instances[sid]["power_state"] \
        == states.RUNNING
    migs = call(app, "GET", "/v2.1/os-migrations").json["migrations"]
    assert migs[0]["status"] == "error"
    server = call(app, "GET", f"/v2.1/servers/{sid}").json["server"]
    assert server["status"] == "ACTIVE"
    migrate = next(a for a in actions.action_list(db, sid)
                   if a["action"] == "migrate")
    events = actions.action_get(db, sid, migrate["request_id"])["events"]
    assert [(e["event"], e["result"]) for e in events] == [
        ("compute_resize_instance", "Error")]
    assert "injected receive_guest failure" in events[0]["traceback"]


def _failing(step):
    from pyct_driver import exception

    def fail(instance, name):
        if name == step:
            raise exception.VirtError(reason=f"injected {step} failure")
    return fail


def test_drain_moves_every_server_away(env):
    db, svcs, app = env
    sids = [boot(app, db) for _ in range(2)]
    call(app, "POST", f"/v2.1/servers/{sids[1]}/action",
         {"os-stop": None}, version="2.1")
    idle(db, sids[1], states.STOPPED)
    client = svcs["host-a"].manager.compute_rpc
    said: list[str] = []
    sched = Scheduler(db, 16.0, 1.0, 1.0, 0, 60)
    assert host_drain.drain(db, client, sched, "host-a", 60,
                            said.append) == 0
    assert guests(svcs) == {"host-a": [], "host-b": sorted(sids)}
    assert [instances.get(db, s)["vm_state"] for s in sids] == [
        states.ACTIVE, states.STOPPED]
    assert said[0] == "host host-a disabled; moving its servers"
    assert sum("moved to host-b, confirmed" in line for line in said) == 2
    assert said[-1] == "host host-a is empty"
    svc = next(s for s in call(app, "GET", "/v2.1/os-services").json[
        "services"] if s["host"] == "host-a")
    assert (svc["status"], svc["disabled_reason"]) == ("disabled",
                                                      "draining")
    # nothing can take a server from host-b now: reported, exit 1
    said.clear()
    assert host_drain.drain(db, client, sched, "host-b", 60,
                            said.append) == 1
    assert all("not moved: No valid host" in line for line in said[1:-1])
    assert guests(svcs)["host-b"] == sorted(sids)


def test_a_restart_mid_move_puts_the_guest_back(env):
    db, svcs, app = env
    sid = boot(app, db)
    inst = instances.get(db, sid)
    change = resizes.start(db, inst, inst["flavor_id"], inst["flavor"],
                           None, None, "host-b", "migration")
    instances.update(db, sid, {"task_state": states.RESIZE_MIGRATING})
    manager = svcs["host-a"].manager
    manager.driver.power_off(manager.spec(inst), 0)  # cut after the stop
    resize.recover(manager, instances.get(db, sid))
    row = instances.get(db, sid)
    assert (row["host"], row["vm_state"], row["task_state"]) == (
        "host-a", states.ACTIVE, None)
    assert manager.driver._instances[sid]["power_state"] == states.RUNNING
    assert resizes.move_of(db, change["migration_uuid"])["status"] == \
        "error"
    assert guests(svcs)["host-b"] == []


def test_the_port_moves_with_the_server(env):
    db, svcs, app = env
    for service in svcs.values():
        service.report()  # the tunnel addresses into the services table
    moving = boot(app, db, "host-a", "auto")
    staying = boot(app, db, "host-b", "auto")
    ports = {p["device_id"]: p for p in call(
        app, "GET", "/networking/v2.0/ports").json["ports"]}
    net = ports[moving]["network_id"]
    assert act(app, moving, {"migrate": {"host": "host-b"}}).status_int \
        == 202
    idle(db, moving, states.RESIZED)
    both_on_b = sorted((ports[s]["mac_address"], HOSTS["host-b"])
                       for s in (moving, staying))
    drivers = {h: s.manager.driver for h, s in svcs.items()}
    wait_for(lambda: all(d.tunnels.get(net) == both_on_b
                         for d in drivers.values()), 10,
             "both hosts' entries to put the port on host-b")
    port = call(app, "GET", f"/networking/v2.0/ports/"
                f"{ports[moving]['id']}").json["port"]
    assert (port["status"], port["device_id"]) == ("ACTIVE", moving)
