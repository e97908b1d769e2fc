"""The metadata HTTP server on loopback: a guest is known by its TCP source
address and by nothing it sends."""

from __future__ import annotations

import http.client
import json
import socket

import pytest

from pyct_driver.metadata import lookup
from pyct_driver.metadata.server import MetadataServer


def _source(uuid: str, name: str) -> lookup.Source:
    return lookup.Source(instance={
        "uuid": uuid, "name": name, "hostname": name, "project_id": "p",
        "id": 1, "launch_index": 0, "metadata": {}, "user_data": None})


A = _source("aaaaaaaa-0000-0000-0000-000000000001", "a")
B = _source("bbbbbbbb-0000-0000-0000-000000000002", "b")


class Resolver:
    """Maps source addresses to instances, recording what it was asked."""

    def __init__(self, table: dict[str, lookup.Source]) -> None:
        self.table = table
        self.asked: list[str] = []

    def __call__(self, address: str) -> lookup.Source | None:
        self.asked.append(address)
        return self.table.get(address)


@pytest.fixture
def serve():
    servers = []

    def start(table):
        resolver = Resolver(table)
        srv = MetadataServer("127.0.0.1", 0, resolver)
        srv.start()
        servers.append(srv)
        return srv, resolver

    yield start
    for srv in servers:
        srv.stop()


def fetch(srv, path, source="127.0.0.1", headers=None, method="GET"):
    host, port = srv.bound_address
    conn = http.client.HTTPConnection(host, port, timeout=5,
                                      source_address=(source, 0))
    try:
        conn.request(method, path, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def test_unknown_source_gets_404(serve):
    srv, resolver = serve({})
    assert fetch(srv, "/openstack/latest/meta_data.json")[0] == 404
    assert fetch(srv, "/latest/meta-data/")[0] == 404
    assert resolver.asked == ["127.0.0.1", "127.0.0.1"]


def test_each_source_sees_only_its_own(serve):
    srv, _ = serve({"127.0.0.1": A, "127.0.0.2": B})
    for source, want in (("127.0.0.1", A), ("127.0.0.2", B)):
        status, body = fetch(srv, "/openstack/latest/meta_data.json", source)
        assert status == 200
        assert json.loads(body)["uuid"] == want.instance["uuid"]


@pytest.mark.parametrize("headers,query", [
    ({"X-Forwarded-For": "127.0.0.2"}, ""),
    ({"X-Real-IP": "127.0.0.2", "Forwarded": "for=127.0.0.2"}, ""),
    ({"Host": "127.0.0.2"}, ""),
    ({}, "?source=127.0.0.2&uuid=" + B.instance["uuid"]),
    ({"X-Instance-ID": B.instance["uuid"],
      "X-Forwarded-For": "127.0.0.2, 127.0.0.2"}, "?ip=127.0.0.2"),
])
def test_claims_in_the_request_are_ignored(serve, headers, query):
    srv, resolver = serve({"127.0.0.1": A, "127.0.0.2": B})
    status, body = fetch(srv, "/openstack/latest/meta_data.json" + query,
                         "127.0.0.1", headers)
    assert status == 200
    assert json.loads(body)["uuid"] == A.instance["uuid"]
    assert resolver.asked == ["127.0.0.1"]


def test_claims_cannot_reach_an_instance_from_an_unknown_source(serve):
    srv, _ = serve({"127.0.0.2": B})
    status, _ = fetch(srv, "/openstack/latest/meta_data.json?ip=127.0.0.2",
                      "127.0.0.1", {"X-Forwarded-For": "127.0.0.2"})
    assert status == 404


def test_only_reads_are_served(serve):
    srv, _ = serve({"127.0.0.1": A})
    assert fetch(srv, "/latest/meta-data/", method="POST")[0] == 405
    assert fetch(srv, "/latest/meta-data/", method="HEAD")[0] == 200


def test_a_failing_lookup_is_a_500_and_the_server_lives(serve):
    srv, resolver = serve({"127.0.0.1": A})
    resolver.table = None  # .get raises AttributeError
    assert fetch(srv, "/latest/meta-data/")[0] == 500
    resolver.table = {"127.0.0.1": A}
    assert fetch(srv, "/latest/meta-data/hostname") == (200, b"a")


def test_binds_an_address_that_does_not_exist_yet():
    # 192.0.2.0/24 is TEST-NET-1 locally, but pick one no interface has
    addrs = socket.gethostbyname_ex(socket.gethostname())[2]
    target = next(f"198.51.100.{i}" for i in range(200, 254)
                  if f"198.51.100.{i}" not in addrs)
    srv = MetadataServer(target, 0, lambda ip: None)
    srv.start()
    try:
        assert srv.bound_address[0] == target
    finally:
        srv.stop()
