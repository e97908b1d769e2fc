"""The compute manager driven over the in-process bus with the fake driver."""

from __future__ import annotations

import inspect

import pytest

from pyct_driver import context, exception, states
from pyct_driver.cmd import compute as compute_cmd
from pyct_driver.compute import recovery, rpc_api
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.db import actions, instances, services
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from tests.functional import compute_fixtures as fx


@pytest.fixture(params=["fake", "inproc"])
def env(tmp_path, request):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    url = f"{request.param}://{tmp_path.name}/"
    service = fx.start_compute(conf, db, "host-a", url)
    client = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf, url), timeout=10)
    yield conf, db, service, client
    service.stop()
    rpc_transport.cleanup()


def ctxt(project="p1"):
    return context.RequestContext("u", project, ["member"])


def test_client_and_server_agree_on_version_and_methods():
    # the versions themselves: tests/unit/test_rpc_versions.py
    assert ComputeManager.target.version == rpc_api.RPC_API_VERSION
    for name, _ in inspect.getmembers(rpc_client.ComputeClient,
                                      inspect.isfunction):
        if name.startswith("_") or name == "can_send_version":
            continue
        endpoint = getattr(ComputeManager, name)
        client_params = set(inspect.signature(getattr(
            rpc_client.ComputeClient, name)).parameters) - {"self", "host"}
        server_params = set(inspect.signature(endpoint).parameters) - {
            "self"}
        assert client_params == server_params, name


def test_build_reboot_stop_start_pause_delete(env, tmp_path):
    conf, db, service, client = env
    flavor, image = fx.seed_catalog(db, tmp_path)
    inst = fx.new_instance(db, flavor, image, "host-a")
    c = ctxt()
    actions.action_start(db, inst["uuid"], "create", c.request_id, "u", "p1")
    client.build_and_run_instance(c, "host-a", inst["uuid"])
    row = fx.wait_for_row(db, inst["uuid"],
                          lambda r: r["vm_state"] == "active")
    assert row["task_state"] is None and row["power_state"] == states.RUNNING
    assert row["launched_at"] is not None
    action = actions.action_get(db, inst["uuid"], c.request_id)
    assert [e["event"] for e in action["events"]] == [
        "compute_build_and_run_instance"]
    assert action["events"][0]["result"] == "Success"

    for task, method, args, vm_state in [
            (states.REBOOTING_HARD, client.reboot_instance, ("HARD",),
             states.ACTIVE),
            (states.POWERING_OFF, client.stop_instance, (), states.STOPPED),
            (states.POWERING_ON, client.start_instance, (), states.ACTIVE),
            (states.PAUSING, client.pause_instance, (), states.PAUSED),
            (states.UNPAUSING, client.unpause_instance, (), states.ACTIVE)]:
        instances.update(db, inst["uuid"], {"task_state": task},
                         expected_task_state=None)
        method(c, "host-a", inst["uuid"], *args)
        row = fx.wait_for_row(db, inst["uuid"],
                              lambda r: r["task_state"] is None)
        assert row["vm_state"] == vm_state, method.__name__
    assert "reboot" in client.get_console_output(c, "host-a", inst["uuid"], 5)

    instances.update(db, inst["uuid"], {"task_state": states.DELETING},
                     expected_task_state=None)
    client.terminate_instance(c, "host-a", inst["uuid"])
    row = fx.wait_for_row(db, inst["uuid"], lambda r: r["deleted"] != 0)
    assert row["vm_state"] == states.DELETED
    assert service.manager.driver.list_instances() == []


def test_failed_spawn_leaves_error_and_fault(env, tmp_path):
    conf, db, service, client = env
    flavor, image = fx.seed_catalog(db, tmp_path, {"fake_fail": "spawn"})
    inst = fx.new_instance(db, flavor, image, "host-a")
    c = ctxt()
    actions.action_start(db, inst["uuid"], "create", c.request_id, "u", "p1")
    client.build_and_run_instance(c, "host-a", inst["uuid"])
    row = fx.wait_for_row(db, inst["uuid"], lambda r: r["vm_state"] == "error")
    assert row["task_state"] is None
    fault = actions.fault_latest(db, [inst["uuid"]])[inst["uuid"]]
    assert "injected spawn failure" in fault["message"]
    action = actions.action_get(db, inst["uuid"], c.request_id)
    assert action["events"][0]["result"] == "Error"
    assert service.manager.driver.list_instances() == []


def test_heartbeat_and_resource_report(env):
    conf, db, service, client = env
    svc = services.service_list(db, "pyct-compute")
    assert [s["host"] for s in svc] == ["host-a"]
    assert services.is_up(svc[0], 60)
    nodes = services.compute_node_list(db)
    assert nodes[0]["vcpus"] == conf.fake_driver.vcpus
    # what os-hypervisors shows besides capacity, and the 2.53 ids
    assert nodes[0]["hypervisor_version"] > 3_000_000   # this kernel's
    assert nodes[0]["host_ip"] and " up " in nodes[0]["uptime"]
    assert nodes[0]["hypervisor_type"] == "container"
    assert len(nodes[0]["uuid"]) == len(svc[0]["uuid"]) == 36


def test_restart_recovers_transitional_states(tmp_path):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    flavor, image = fx.seed_catalog(db, tmp_path)
    building = fx.new_instance(db, flavor, image, "host-r")
    deleting = fx.new_instance(db, flavor, image, "host-r")
    instances.update(db, deleting["uuid"], {
        "vm_state": states.ACTIVE, "task_state": states.DELETING})
    stopping = fx.new_instance(db, flavor, image, "host-r")
    instances.update(db, stopping["uuid"], {
        "vm_state": states.ACTIVE, "task_state": states.POWERING_OFF})
    service = fx.start_compute(conf, db, "host-r", f"fake://{tmp_path.name}/")
    try:
        row = instances.get(db, building["uuid"])
        assert (row["vm_state"], row["task_state"]) == (states.ERROR, None)
        assert "interrupted" in actions.fault_latest(
            db, [building["uuid"]])[building["uuid"]]["message"]
        with pytest.raises(exception.InstanceNotFound):
            instances.get(db, deleting["uuid"])
        row = instances.get(db, stopping["uuid"])
        assert row["task_state"] is None
    finally:
        service.stop()
        rpc_transport.cleanup()


def test_power_sync_notices_guest_that_stopped(env, tmp_path):
    conf, db, service, client = env
    flavor, image = fx.seed_catalog(db, tmp_path)
    inst = fx.new_instance(db, flavor, image, "host-a")
    client.build_and_run_instance(ctxt(), "host-a", inst["uuid"])
    fx.wait_for_row(db, inst["uuid"], lambda r: r["vm_state"] == "active")
    service.manager.driver.simulate_crash(inst["uuid"])
    assert recovery.sync_power_states(service.manager) == 1
    row = instances.get(db, inst["uuid"])
    assert row["vm_state"] == states.STOPPED
    assert row["power_state"] == states.SHUTDOWN


@pytest.mark.parametrize("port", [0, 8775])
def test_metadata_port_zero_starts_no_listener(tmp_path, port):
    """[metadata] port = 0 is "off": the compute service gets no metadata
    server at all (the container driver then sets nothing of it up)."""
    conf = fx.make_conf()
    conf.set_override("transport_url", "fake://")
    conf.set_override("port", port, group="metadata")
    db = fx.make_db(tmp_path)
    try:
        service = compute_cmd.build_service(conf, db)
        server = service.metadata_server
        assert (server is None) if port == 0 else (server.port == port)
    finally:
        conf.clear_override("transport_url")
        conf.clear_override("port", group="metadata")
        rpc_transport.cleanup()
