"""The operator's views through the real openstack CLI.

``pyct-api`` and two ``pyct-compute`` processes (compute-a, compute-b) on
PostgreSQL over the real RabbitMQ. As admin: ``compute service list``,
``compute service set --disable --disable-reason`` (the scheduler then
keeps new servers off that host), ``hypervisor list/show`` with the used
resources of the servers placed, ``aggregate create --zone``, ``aggregate
add host``, ``aggregate set --property``, ``availability zone list``,
booting into a zone (and a zone with no enabled host refused),
``server list --host``, ``server show`` with the host, ``usage list``;
as the project: ``usage show`` and ``availability zone list``.
"""

from __future__ import annotations

import json

from tests.integration.conftest import FLAVOR_ID, wait_until

HOSTS = ("compute-a", "compute-b")


def _cli(dep, *args, cloud="admin"):
    return json.loads(dep.openstack(*args, "-f", "json", cloud=cloud).stdout)


def _admin(dep, *args, check=True):
    return dep.openstack(*args, cloud="admin", check=check)


def _boot(dep, name, *extra):
    return _cli(dep, "server", "create", "--flavor", FLAVOR_ID, "--image",
                dep.image_id, "--nic", "none", *extra, "--wait", name,
                cloud="user")


def test_operator_cli(pipeline_factory):
    dep = pipeline_factory("postgresql")
    dep.start_all(*HOSTS)

    services = _cli(dep, "compute", "service", "list")
    assert sorted((s["Host"], s["Binary"], s["Zone"], s["Status"],
                   s["State"]) for s in services) == [
        (h, "nova-compute", "nova", "enabled", "up") for h in HOSTS]
    assert dep.openstack("compute", "service", "list",
                         check=False).returncode != 0   # members: 403

    hypervisors = _cli(dep, "hypervisor", "list")
    assert sorted(h["Hypervisor Hostname"] for h in hypervisors) == list(
        HOSTS)
    assert {h["Hypervisor Type"] for h in hypervisors} == {"fake"}

    # compute-b alone forms zone az1
    agg = _cli(dep, "aggregate", "create", "--zone", "az1", "agg1")
    assert (agg["name"], agg["availability_zone"]) == ("agg1", "az1")
    added = _cli(dep, "aggregate", "add", "host", "agg1", "compute-b")
    assert added["hosts"] == ["compute-b"]
    _admin(dep, "aggregate", "set", "--property", "ssd=true", "agg1")
    shown = _cli(dep, "aggregate", "show", "agg1")
    assert shown["properties"] == {"ssd": "true"}
    zones = _cli(dep, "availability", "zone", "list", "--compute",
                 cloud="user")
    assert sorted((z["Zone Name"], z["Zone Status"]) for z in zones) == [
        ("az1", "available"), ("nova", "available")]

    # compute-a out of service: zone "nova" has no host to boot on
    _admin(dep, "compute", "service", "set", "--disable",
                  "--disable-reason", "disk swap", "compute-a",
                  "nova-compute")
    listed = {s["Host"]: s for s in _cli(dep, "compute", "service", "list",
                                         "--long")}
    assert (listed["compute-a"]["Status"],
            listed["compute-a"]["Disabled Reason"]) == ("disabled",
                                                        "disk swap")
    refused = dep.openstack(
        "server", "create", "--flavor", FLAVOR_ID, "--image", dep.image_id,
        "--nic", "none", "--availability-zone", "nova", "nowhere",
        cloud="user", check=False)
    assert refused.returncode != 0
    assert "The requested availability zone is not available" in \
        refused.stderr
    in_zone = _boot(dep, "in-az1", "--availability-zone", "az1")
    anywhere = _boot(dep, "anywhere")
    for server in (in_zone, anywhere):
        assert server["status"] == "ACTIVE"
        assert server["OS-EXT-AZ:availability_zone"] == "az1"

    on_b = _cli(dep, "server", "list", "--all-projects", "--host",
                "compute-b")
    assert sorted(s["Name"] for s in on_b) == ["anywhere", "in-az1"]
    assert _cli(dep, "server", "list", "--all-projects", "--host",
                "compute-a") == []
    as_admin = _cli(dep, "server", "show", in_zone["id"])
    assert as_admin["OS-EXT-SRV-ATTR:host"] == "compute-b"
    assert as_admin["OS-EXT-SRV-ATTR:hypervisor_hostname"] == "compute-b"
    as_member = _cli(dep, "server", "show", in_zone["id"], cloud="user")
    # the CLI prints the SDK's every attribute; the API sent none of these
    # but the hostname, which every caller sees from 2.90 on
    assert not any(v for k, v in as_member.items()
                   if k.startswith("OS-EXT-SRV-ATTR")
                   and k != "OS-EXT-SRV-ATTR:hostname")
    assert as_member["OS-EXT-SRV-ATTR:hostname"] == "in-az1"

    # the capacity fields went at 2.88; 2.28 shows them whatever the
    # advertised maximum
    node = _cli(dep, "--os-compute-api-version", "2.28", "hypervisor",
                "show", "compute-b")
    assert (node["vcpus_used"], node["running_vms"], node["state"],
            node["status"]) == (2, 2, "up", "enabled"), node
    assert node["memory_mb_used"] == 1024
    service = node.get("service_host") or node["service"]["host"]
    assert service == "compute-b"
    idle = _cli(dep, "hypervisor", "show", "compute-a")
    assert (idle["state"], idle["status"]) == ("up", "disabled")

    usage = _cli(dep, "usage", "list")
    assert [u["Project"] for u in usage] == ["demo"]
    assert usage[0]["CPU Hours"] > 0 and usage[0]["RAM MB-Hours"] > 0
    # the SDK asks detailed=True, which Nova reads as not detailed ('1'
    # only): no server list, so no count, as against Nova
    assert usage[0]["Servers"] is None
    # (--project: the test clouds' admin_token login has no project)
    mine = _cli(dep, "usage", "show", "--project", "demo", cloud="user")
    assert len(mine["Servers"]) == 2 and mine["CPU Hours"] > 0

    # a host with servers cannot leave its zone nor be deleted
    moved = _admin(dep, "aggregate", "remove", "host", "agg1",
                          "compute-b", check=False)
    assert moved.returncode != 0
    svc_b = next(s for s in services if s["Host"] == "compute-b")
    gone = _admin(dep, "compute", "service", "delete", str(svc_b["ID"]),
                         check=False)
    assert gone.returncode != 0

    _admin(dep, "compute", "service", "set", "--enable", "compute-a",
                  "nova-compute")
    back = _boot(dep, "back", "--availability-zone", "nova")
    assert _cli(dep, "server", "show", back["id"])[
        "OS-EXT-SRV-ATTR:host"] == "compute-a"
    for name in ("in-az1", "anywhere", "back"):
        dep.openstack("server", "delete", "--wait", name, cloud="user")
    wait_until(lambda: not dep.live_instances(), 30, "servers to go")
