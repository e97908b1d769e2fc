"""VXLAN segments in the database: each network's VNI (unique, lowest
free), the compute services' tunnel addresses, where each network's
ports are (``db.tunnels``), and what the compute side makes of them
(``compute.tunnels``) with a recording driver. SQLite here; the
migration's columns are checked on PostgreSQL and MariaDB by
tests/integration/test_db_backends.py."""

from __future__ import annotations

import threading
import uuid as uuid_mod

import pytest

from pyct_driver.compute.tunnels import TunnelEndpoints
from pyct_driver.db import instances as db_instances
from pyct_driver.db import models
from pyct_driver.db import networks as nets
from pyct_driver.db import services as db_services
from pyct_driver.db import tunnels as db_tunnels
from pyct_driver.db.engine import Database
from pyct_driver.metadata import content, lookup
from tests.functional import compute_fixtures as fx
from tests.functional.compute_fixtures import TunnelDriver
from tests.server_rows import FLAVOR

SETTINGS = nets.IpamSettings(pool_cidr="10.245.0.0/16")


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/tunnels.sqlite")
    models.Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def _server(db: Database, net: dict, host: str, mac: str,
            deleted: bool = False) -> str:
    uuid = str(uuid_mod.uuid4())
    with db.session() as session:
        session.add(models.Instance(
            uuid=uuid, name="s", hostname="s", project_id=net["project_id"],
            user_id="u", host=host, image_ref="i", flavor_id="1",
            flavor=FLAVOR, vm_state="active", power_state=1,
            reservation_id="r-1",
            deleted=1 if deleted else 0))
        session.add(models.Port(
            id=str(uuid_mod.uuid4()), network_id=net["id"],
            project_id=net["project_id"], instance_uuid=uuid,
            mac_address=mac, ip_address=f"10.245.0.{int(mac[-2:], 16)}",
            device_index=0, status="ACTIVE"))
    return uuid


def test_networks_get_the_lowest_free_vni(db):
    a = nets.create_network(db, "p1", "a", SETTINGS, list)
    b = nets.create_network(db, "p2", "b", SETTINGS, list)
    c = nets.get_or_create_default(db, "p3", SETTINGS, list)
    assert [a["vni"], b["vni"], c["vni"]] == [1, 2, 3]
    with db.session() as session:
        session.query(models.Network).filter_by(id=b["id"]).delete()
    assert nets.create_network(db, "p4", "d", SETTINGS, list)["vni"] == 2


def test_racing_creates_get_distinct_vnis(db):
    got: list[int] = []

    def create(i: int) -> None:
        got.append(nets.create_network(db, f"p{i}", "n", SETTINGS,
                                       list)["vni"])
    threads = [threading.Thread(target=create, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(got) == list(range(1, 9))


def test_heartbeat_records_the_tunnel_address(db):
    db_services.heartbeat(db, "h1", "pyct-compute", "t", "10.244.0.1")
    db_services.heartbeat(db, "h2", "pyct-compute", "t", "")
    rows = {s["host"]: s for s in db_services.service_list(db)}
    assert rows["h1"]["tunnel_address"] == "10.244.0.1"
    assert rows["h2"]["tunnel_address"] is None
    db_services.heartbeat(db, "h1", "pyct-compute", "t", None)
    assert db_services.service_list(db)[0]["tunnel_address"] is None


def test_ports_by_network_with_their_hosts_tunnel_addresses(db):
    net = nets.create_network(db, "p1", "a", SETTINGS, list)
    other = nets.create_network(db, "p2", "b", SETTINGS, list)
    db_services.heartbeat(db, "h1", "pyct-compute", "t", "10.244.0.1")
    db_services.heartbeat(db, "h2", "pyct-compute", "t", "10.244.0.2")
    _server(db, net, "h1", "fa:16:3e:00:00:0a")
    _server(db, net, "h2", "fa:16:3e:00:00:0b")
    _server(db, net, "h3", "fa:16:3e:00:00:0c")  # no service row: ""
    _server(db, net, "h2", "fa:16:3e:00:00:0d", deleted=True)
    _server(db, other, "h2", "fa:16:3e:00:00:0e")
    assert db_tunnels.host_networks(db, "h1") == {net["id"]}
    assert db_tunnels.host_networks(db, "h2") == {net["id"], other["id"]}
    ports = db_tunnels.network_ports(db, [net["id"]])
    assert sorted(ports[net["id"]]) == [
        ("fa:16:3e:00:00:0a", "10.244.0.1"),
        ("fa:16:3e:00:00:0b", "10.244.0.2"), ("fa:16:3e:00:00:0c", "")]
    assert db_tunnels.hosts_of_networks(db, [net["id"]]) == {
        "h1", "h2", "h3"}
    assert db_tunnels.hosts_of_networks(db, [other["id"]]) == {"h2"}
    assert db_tunnels.network_ports(db, []) == {}


class _Rpc:
    def __init__(self) -> None:
        self.casts: list[tuple[str, list]] = []

    def refresh_tunnels(self, ctxt, host: str, network_ids: list) -> None:
        self.casts.append((host, network_ids))


class _Manager(TunnelEndpoints):
    def __init__(self, db: Database, host: str, address: str) -> None:
        self.db, self.host = db, host
        self.driver = TunnelDriver(fx.make_conf(), address)
        self.compute_rpc = _Rpc()


def test_compute_syncs_its_networks_and_tells_the_other_hosts(db):
    net = nets.create_network(db, "p1", "a", SETTINGS, list)
    lonely = nets.create_network(db, "p2", "b", SETTINGS, list)
    db_services.heartbeat(db, "h1", "pyct-compute", "t", "10.244.0.1")
    db_services.heartbeat(db, "h2", "pyct-compute", "t", "10.244.0.2")
    _server(db, net, "h1", "fa:16:3e:00:00:0a")
    _server(db, net, "h2", "fa:16:3e:00:00:0b")
    _server(db, lonely, "h2", "fa:16:3e:00:00:0c")
    h1 = _Manager(db, "h1", "10.244.0.1")
    h1.sync_tunnels()
    assert h1.driver.tunnels == {net["id"]: [
        ("fa:16:3e:00:00:0a", "10.244.0.1"),
        ("fa:16:3e:00:00:0b", "10.244.0.2")]}
    h1.tunnels_changed(None, [net["id"], net["id"]])
    assert h1.compute_rpc.casts == [("h2", [net["id"]])]
    # a cast naming a network: only that one is reprogrammed
    h2 = _Manager(db, "h2", "10.244.0.2")
    h2.refresh_tunnels(None, [lonely["id"]])
    assert list(h2.driver.tunnels) == [lonely["id"]]


def test_without_tunnel_address_nothing_is_done(db):
    net = nets.create_network(db, "p1", "a", SETTINGS, list)
    _server(db, net, "h1", "fa:16:3e:00:00:0a")
    _server(db, net, "h2", "fa:16:3e:00:00:0b")
    h1 = _Manager(db, "h1", "")
    h1.sync_tunnels()
    h1.tunnels_changed(None, [net["id"]])
    assert h1.driver.tunnels == {} and h1.compute_rpc.casts == []


def test_metadata_gives_guests_the_tunnelled_mtu(db):
    """What cloud-init applies (network_data.json, the NoCloud seed) is
    the MTU the guest's link has: the network's less the VXLAN overhead
    on a host with a tunnel address, the network's without one."""
    net = nets.create_network(db, "p1", "a", SETTINGS, list)
    uuid = _server(db, net, "h1", "fa:16:3e:00:00:0a")
    inst = db_instances.get(db, uuid)
    tunnelled = lookup.source_for_instance(db, inst, overhead=50)
    plain = lookup.source_for_instance(db, inst)
    assert content.network_data(tunnelled)["links"][0]["mtu"] == 1450
    assert content.network_data(plain)["links"][0]["mtu"] == 1500
    seed = content.nocloud_network_config(tunnelled)
    assert [e["mtu"] for e in seed["ethernets"].values()] == [1450]
