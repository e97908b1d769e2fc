"""IPAM in the database: subnets from the pool, ports exactly once,
release, overlap with host routes, and the host route reader."""

from __future__ import annotations

import ipaddress
import threading

import pytest

from pyct_driver import exception
from pyct_driver.api import host_routes
from pyct_driver.db import models
from pyct_driver.db import networks as nets
from pyct_driver.db.engine import Database
from tests import dbchecks

SETTINGS = nets.IpamSettings(pool_cidr="10.241.0.0/16", subnet_prefixlen=24,
                             dns_nameservers=("192.0.2.53",))
NO_ROUTES = list


@pytest.fixture
def db(tmp_path):
    database = Database(f"sqlite:///{tmp_path}/ipam.sqlite")
    models.Base.metadata.create_all(database.engine)
    yield database
    database.dispose()


def test_networks_get_consecutive_subnets_and_first_host_gateway(db):
    a = nets.create_network(db, "p1", "a", SETTINGS, NO_ROUTES)
    b = nets.create_network(db, "p2", "b", SETTINGS, NO_ROUTES)
    assert (a["cidr"], a["gateway"]) == ("10.241.0.0/24", "10.241.0.1")
    assert (b["cidr"], b["gateway"]) == ("10.241.1.0/24", "10.241.1.1")
    assert a["dns_nameservers"] == ["192.0.2.53"] and a["mtu"] == 1500
    assert a["subnet_id"] != b["subnet_id"]


def test_subnet_pool_exhaustion_is_a_clear_conflict(db):
    small = nets.IpamSettings(pool_cidr="10.241.0.0/23", subnet_prefixlen=24)
    nets.create_network(db, "p", "a", small, NO_ROUTES)
    nets.create_network(db, "p", "b", small, NO_ROUTES)
    with pytest.raises(exception.Conflict, match="no free /24 subnet is "
                       "left in the pool 10.241.0.0/23"):
        nets.create_network(db, "p", "c", small, NO_ROUTES)


def test_pool_overlapping_a_host_route_is_refused(db):
    routes = [ipaddress.IPv4Network("10.241.7.0/24")]
    with pytest.raises(exception.InvalidInput,
                       match="overlaps the host route 10.241.7.0/24"):
        nets.create_network(db, "p", "a", SETTINGS, lambda: routes)
    supernet = [ipaddress.IPv4Network("10.0.0.0/8")]
    with pytest.raises(exception.InvalidInput, match="10.0.0.0/8"):
        nets.create_network(db, "p", "a", SETTINGS, lambda: supernet)
    assert nets.list_networks(db) == []
    # a route of one of our own subnets (its bridge) is not a conflict
    first = nets.create_network(db, "p", "a", SETTINGS, NO_ROUTES)
    own = [ipaddress.IPv4Network(first["cidr"]),
           ipaddress.IPv4Network("192.0.2.0/24")]
    second = nets.create_network(db, "p", "b", SETTINGS, lambda: own)
    assert second["cidr"] == "10.241.1.0/24"


def test_proc_route_parsing_skips_default_route():
    text = ("Iface\tDestination\tGateway\tFlags\tRefCnt\tUse\tMetric\tMask"
            "\tMTU\tWindow\tIRTT\n"
            "eth0\t00000000\t010200C0\t0003\t0\t0\t0\t00000000\t0\t0\t0\n"
            "eth0\t000200C0\t00000000\t0001\t0\t0\t0\t00FFFFFF\t0\t0\t0\n"
            "br0\t0000F10A\t00000000\t0001\t0\t0\t0\t0000FFFF\t0\t0\t0\n")
    assert host_routes.parse_proc_route(text) == [
        ipaddress.IPv4Network("192.0.2.0/24"),
        ipaddress.IPv4Network("10.241.0.0/16")]
    assert all(r.prefixlen > 0 for r in host_routes.read_ipv4_routes())


def _alloc(db, net, uuid, fixed_ip=None, in_use=exception.Invalid):
    def attempt():
        with db.session() as session:
            return nets.allocate_ports(
                session, uuid, "p", [nets.PortRequest(net["id"], fixed_ip)],
                in_use)[0]
    return nets.retrying(attempt)


def test_lowest_free_address_fixed_ip_checks_and_release(db):
    net = nets.create_network(db, "p", "a", SETTINGS, NO_ROUTES)
    first = _alloc(db, net, "i1")
    assert first["ip_address"] == "10.241.0.2"    # .1 is the gateway
    assert first["mac_address"].startswith("fa:16:3e:")
    assert first["device_index"] == 0
    fixed = _alloc(db, net, "i2", "10.241.0.9")
    assert fixed["ip_address"] == "10.241.0.9"
    for bad in ("10.241.1.5", "10.241.0.0", "10.241.0.1", "10.241.0.255",
                "not-an-ip"):
        with pytest.raises(exception.Invalid):
            _alloc(db, net, "i3", bad)
    with pytest.raises(exception.Invalid, match="already in use"):
        _alloc(db, net, "i3", "10.241.0.9")
    with pytest.raises(exception.Conflict, match="already in use"):
        nets.allocate_port(db, "i3", "p", net["id"], "10.241.0.9")
    extra = nets.allocate_port(db, "i1", "p", net["id"])
    assert (extra["ip_address"], extra["device_index"]) == ("10.241.0.3", 1)
    assert nets.release_ports(db, "i1") == 2
    assert nets.release_ports(db, "i1") == 0          # exactly once
    assert _alloc(db, net, "i4")["ip_address"] == "10.241.0.2"
    assert nets.release_port(db, fixed["id"]) is True
    assert nets.release_port(db, fixed["id"]) is False


def test_address_exhaustion_is_a_clear_conflict(db):
    tiny = nets.IpamSettings(pool_cidr="10.241.0.0/29", subnet_prefixlen=29)
    net = nets.create_network(db, "p", "a", tiny, NO_ROUTES)
    got = [_alloc(db, net, f"i{n}")["ip_address"] for n in range(5)]
    assert got == [f"10.241.0.{n}" for n in range(2, 7)]
    with pytest.raises(exception.Conflict,
                       match="No more IP addresses available"):
        _alloc(db, net, "late")


def test_ten_racing_threads_each_get_a_distinct_address(db):
    net = nets.create_network(db, "p", "a", SETTINGS, NO_ROUTES)
    results, errors = {}, []
    barrier = threading.Barrier(10)

    def worker(n):
        try:
            barrier.wait()
            results[n] = _alloc(db, net, f"inst-{n}")
        except Exception as err:  # noqa: BLE001 - reported below
            errors.append(err)

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(10)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert errors == []
    ips = sorted(ipaddress.IPv4Address(p["ip_address"])
                 for p in results.values())
    assert ips == [ipaddress.IPv4Address("10.241.0.2") + n
                   for n in range(10)]
    rows = nets.list_ports(db, network_id=net["id"])
    assert len(rows) == 10 and len({r["mac_address"] for r in rows}) == 10


def test_default_network_is_created_once_under_a_race(db):
    # the same check runs on PostgreSQL and MariaDB (test_db_backends.py)
    dbchecks.check_default_network_race(db)
