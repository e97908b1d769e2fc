"""Evacuation with real guests on two namespaced hosts (``evac_cloud``).

A server boots on host-a (host-b disabled meanwhile: the scheduler must
avoid it). Evacuation is refused while host-a is up, and for a member,
an unknown or the same host. Then host-a's pyct-compute is killed (its
guest runs on), forced down with the real openstack CLI, and the server
evacuated: it runs on host-b with the same port, MAC and address and is
reachable there, an ``evacuation`` migration says so. host-a's
pyct-compute starts again and destroys its copy (no init, cgroup,
mount, loop device, state or link left) while the server keeps running
on host-b.
"""

from __future__ import annotations

import pytest

from tests.privileged import evac_cloud

EVACUATE = ("--os-compute-api-version", "2.29", "server", "evacuate")


def _ip(server: dict) -> str:
    addresses = server["addresses"]
    if isinstance(addresses, dict):
        return next(iter(addresses.values()))[0]
    return addresses.split("=", 1)[1].split(",")[0].strip()


def _ports(cloud, sid) -> list[tuple]:
    admin = cloud.dep.sdk_connection("admin")
    return sorted((p.id, p.mac_address, p.fixed_ips[0]["ip_address"])
                  for p in admin.network.ports(device_id=sid))


def _migrations(cloud, sid) -> list[tuple]:
    admin = cloud.dep.sdk_connection("admin")
    found = admin.compute.get("/os-migrations", microversion="2.59").json()
    return [(m["migration_type"], m["source_compute"], m["dest_compute"],
             m["status"]) for m in found["migrations"]
            if m["instance_uuid"] == sid]


def _refused(cloud, *args: str, cloud_name: str = "admin") -> str:
    out = cloud.cli(*EVACUATE, *args, cloud=cloud_name, check=False)
    assert out.returncode != 0, out.stdout
    return out.stderr


@pytest.fixture(scope="module")
def cloud():
    with evac_cloud.cloud() as env:
        yield env


def test_evacuate_then_the_dead_host_returns(cloud):
    c = cloud
    c.set_host("host-b", "--disable")
    sid = c.boot("evac-1")
    c.set_host("host-b", "--enable")
    server = c.server(sid)
    assert server["OS-EXT-SRV-ATTR:host"] == "host-a"
    ip, ports = _ip(server), _ports(c, sid)
    assert c.reaches("host-a", ip)
    a_init = c.init_alive("host-a", sid)
    assert a_init
    # host-a is up: Nova's 400, nothing moves
    assert "is still in use" in _refused(c, sid)
    assert c.server(sid)["OS-EXT-SRV-ATTR:host"] == "host-a"
    assert _migrations(c, sid) == []

    c.kill_compute("host-a")
    assert c.init_alive("host-a", sid) == a_init  # the guest lives on
    c.set_host("host-a", "--down")
    assert "Compute host nowhere not found" in _refused(
        c, "--host", "nowhere", sid)
    assert "can't be the same one" in _refused(c, "--host", "host-a", sid)
    member = c.cli(*EVACUATE, sid, cloud="user", check=False)
    assert member.returncode != 0 and "403" in member.stderr
    assert _migrations(c, sid) == []

    c.cli(*EVACUATE, sid)
    server = c.wait_settled(sid)
    assert (server["OS-EXT-SRV-ATTR:host"], server["status"]) == (
        "host-b", "ACTIVE")
    assert (_ip(server), _ports(c, sid)) == (ip, ports)
    b_init = c.init_alive("host-b", sid)
    assert b_init
    shown = evac_cloud.run("nsenter", "-t", str(b_init[0]), "-n", "ip",
                           "-o", "addr").stdout
    assert f" {ip}/" in shown
    assert ports[0][1] in evac_cloud.run(
        "nsenter", "-t", str(b_init[0]), "-n", "ip", "-o", "link").stdout
    assert c.reaches("host-b", ip)
    # until host-a's service returns, its copy runs (pyct's guests
    # outlive it; fencing the dead host is the operator's part)
    assert c.init_alive("host-a", sid) == a_init
    assert _migrations(c, sid) == [("evacuation", "host-a", "host-b",
                                    "done")]

    c.start_compute("host-a")
    c.set_host("host-a", "--up")
    assert c.init_alive("host-a", sid) is None
    assert c.leftovers("host-a", sid, [p[0] for p in ports]) == []
    assert _migrations(c, sid) == [("evacuation", "host-a", "host-b",
                                    "completed")]
    server = c.server(sid)
    assert (server["OS-EXT-SRV-ATTR:host"], server["status"]) == (
        "host-b", "ACTIVE")
    assert c.init_alive("host-b", sid) == b_init
    assert c.reaches("host-b", ip)
