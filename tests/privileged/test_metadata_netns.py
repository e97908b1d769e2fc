"""The metadata service seen from two guests' network namespaces: each
fetches http://<server>/openstack/latest/meta_data.json and sees only its
own instance, identified by its source address."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid as uuid_mod

import pytest

from pyct_driver.metadata.server import MetadataServer
from tests.fixtures import metadata_rows

NET = "10.241.250"
SERVER_IP = f"{NET}.254"  # on no link when the server binds: IP_FREEBIND


def ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], check=check, capture_output=True,
                          text=True)


def _range_is_free() -> None:
    routes = ip("route", "show", "table", "all").stdout
    if f"{NET}." in routes:
        pytest.fail(f"{NET}.0/24 overlaps a host route; pick another range")


@pytest.fixture
def guests():
    """Two namespaces, each behind its own veth pair to the host."""
    _range_is_free()
    tag = uuid_mod.uuid4().hex[:4]
    made_ns, made_links = [], []
    try:
        out = []
        for i, (host_ip, guest_ip) in enumerate(((f"{NET}.1", f"{NET}.2"),
                                                 (f"{NET}.9", f"{NET}.10"))):
            ns, hl = f"pyct-md-{tag}-{i}", f"pyct-md{tag}h{i}"
            ip("netns", "add", ns)
            made_ns.append(ns)
            ip("link", "add", hl, "type", "veth", "peer", "name", "eth0",
               "netns", ns)
            made_links.append(hl)
            ip("addr", "add", f"{host_ip}/29", "dev", hl)
            ip("link", "set", hl, "up")
            for cmd in (("addr", "add", f"{guest_ip}/29", "dev", "eth0"),
                        ("link", "set", "eth0", "up"),
                        ("link", "set", "lo", "up"),
                        ("route", "add", f"{SERVER_IP}/32", "via", host_ip)):
                ip("-n", ns, *cmd)
            out.append((ns, guest_ip, hl))
        yield out
    finally:
        for hl in made_links:
            ip("link", "del", hl, check=False)
        for ns in made_ns:
            ip("netns", "del", ns, check=False)
        assert f"pyct-md-{tag}" not in ip("netns", "list").stdout


FETCH = """
import http.client, json, sys
host, port, path, source = sys.argv[1:5]
conn = http.client.HTTPConnection(host, int(port), timeout=5,
                                  source_address=(source, 0) if source
                                  else None)
conn.request("GET", path, headers=dict(h.split(": ", 1)
                                       for h in sys.argv[5:]))
r = conn.getresponse()
print(json.dumps([r.status, r.read().decode()]))
"""


def fetch_in(ns: str, addr: tuple[str, int], path: str, *headers: str,
             source: str = "") -> tuple[int, str]:
    proc = subprocess.run(["ip", "netns", "exec", ns, sys.executable, "-c",
                           FETCH, addr[0], str(addr[1]), path, source,
                           *headers], capture_output=True,
                          text=True, timeout=30)
    assert proc.returncode == 0, proc.stderr
    status, body = json.loads(proc.stdout)
    return status, body


def test_each_namespace_sees_only_its_own_instance(guests):
    db = metadata_rows.make_db()
    uuids = [metadata_rows.add_instance(db, guest_ip, name=f"vm{i}")
             for i, (_, guest_ip, _) in enumerate(guests)]
    server = MetadataServer.from_db(db, SERVER_IP, 0, host="compute-a")
    server.start()  # before the address exists anywhere
    try:
        port = server.bound_address[1]
        ip("addr", "add", f"{SERVER_IP}/32", "dev", guests[0][2])
        addr = (SERVER_IP, port)
        path = "/openstack/latest/meta_data.json"
        for (ns, _, _), want in zip(guests, uuids):
            status, body = fetch_in(ns, addr, path)
            assert status == 200 and json.loads(body)["uuid"] == want
        # the second guest claims the first one's address and uuid
        other = guests[0][1]
        status, body = fetch_in(
            guests[1][0], addr, path + f"?ip={other}",
            f"X-Forwarded-For: {other}", f"X-Instance-ID: {uuids[0]}")
        assert status == 200 and json.loads(body)["uuid"] == uuids[1]
        # a source address no port holds gets nothing
        ip("-n", guests[1][0], "addr", "add", f"{NET}.11/29", "dev", "eth0")
        assert fetch_in(guests[1][0], addr, path,
                        source=f"{NET}.11") == (404, "Not Found\n")
    finally:
        server.stop()
        db.dispose()
