"""Project networks across hosts, compute side, over a real RPC
transport (oslo.messaging's fake driver and pyct's in-process one): two
compute services, each with a driver that has a tunnel address and
records the forwarding entries it is given. A build on one host
programs its own entries and casts ``refresh_tunnels`` (RPC 1.10) to the
other host of the network, whose entries then name the new port; a
delete takes it out again. The kernel side: tests/privileged/
test_vxlan_hosts.py."""

from __future__ import annotations

import pytest

from pyct_driver import context
from pyct_driver.compute.manager import ComputeManager
from pyct_driver.compute.service import ComputeService
from pyct_driver.db import actions
from pyct_driver.db import networks as db_networks
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport
from tests.functional import compute_fixtures as fx
from tests.functional.compute_fixtures import TunnelDriver
from tests.waiting import wait_for

ADDRESSES = {"host-a": "10.244.0.1", "host-b": "10.244.0.2"}


@pytest.fixture(params=["fake", "inproc"])
def env(tmp_path, request):
    conf = fx.make_conf()
    db = fx.make_db(tmp_path)
    url = f"{request.param}://{tmp_path.name}/"
    services = {}
    try:
        for host, address in ADDRESSES.items():
            transport = rpc_transport.get_transport(conf, url)
            manager = ComputeManager(db, TunnelDriver(conf, address), host,
                                     shutdown_timeout=1)
            manager.compute_rpc = rpc_client.ComputeClient(conf, transport,
                                                           timeout=10)
            services[host] = ComputeService(manager, transport,
                                            report_interval=60,
                                            sync_interval=-1)
            services[host].start()
        client = rpc_client.ComputeClient(
            conf, rpc_transport.get_transport(conf, url), timeout=10)
        yield db, services, client
    finally:
        for service in services.values():
            service.stop()
        rpc_transport.cleanup()


def _build(db, client, flavor, image, net, host) -> tuple[dict, dict]:
    inst = fx.new_instance(db, flavor, image, host)
    port = db_networks.allocate_port(db, inst["uuid"], "p1", net["id"])
    c = context.RequestContext("u", "p1", ["member"])
    actions.action_start(db, inst["uuid"], "create", c.request_id, "u", "p1")
    client.build_and_run_instance(c, host, inst["uuid"])
    fx.wait_for_row(db, inst["uuid"], lambda r: r["vm_state"] == "active")
    return inst, port


def test_builds_and_deletes_reach_the_other_hosts_entries(env, tmp_path):
    db, services, client = env
    flavor, image = fx.seed_catalog(db, tmp_path)
    net = db_networks.create_network(
        db, "p1", "n", db_networks.IpamSettings(pool_cidr="10.246.0.0/16"),
        list)
    for service in services.values():
        service.report()  # the tunnel addresses into the services table
    drivers = {h: s.manager.driver for h, s in services.items()}
    _, port_b = _build(db, client, flavor, image, net, "host-b")
    assert drivers["host-b"].tunnels[net["id"]] == [
        (port_b["mac_address"], "10.244.0.2")]
    inst_a, port_a = _build(db, client, flavor, image, net, "host-a")
    both = sorted([(port_a["mac_address"], "10.244.0.1"),
                   (port_b["mac_address"], "10.244.0.2")])
    assert drivers["host-a"].tunnels[net["id"]] == both
    # host-b heard of host-a's port through the cast
    wait_for(lambda: drivers["host-b"].tunnels.get(net["id"]) == both,
             10, "host-b's entries to name host-a's port")
    client.terminate_instance(
        context.RequestContext("u", "p1", ["member"]), "host-a",
        inst_a["uuid"])
    wait_for(lambda: drivers["host-b"].tunnels.get(net["id"]) == [
        (port_b["mac_address"], "10.244.0.2")], 10,
        "host-b's entries to lose the deleted server's port")
