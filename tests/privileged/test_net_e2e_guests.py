"""End to end: busybox guests on pyct's project networks, through the API.

One all-in-one (container driver, SQLite, its own subnet pool, the metadata
service on 169.254.169.254:80, on each of its bridges by it). Three
servers: ``a1``
(project demo, booted with the real openstack CLI with ``--key-name`` and
``--user-data``), ``a2`` (demo, SDK, ``networks="auto"``, config drive) and
``b1`` (project other, SDK). Everything is checked from inside the guests
(``guest_exec``): who reaches whom, what a spoofing guest gets through,
what the metadata service and config drive tell each guest, the injected
files, hot-plugged interfaces, and that addresses and reachability survive
reboots, stop/start and a SIGKILL of pyct-compute. The last test deletes
everything and proves nothing is left on the host.
"""

from __future__ import annotations

import ipaddress
import json
import os
import signal
import time

import pytest

from pyct_driver.virt.network.bridge import bridge_name, veth_name
from tests.privileged.e2e_fixtures import timing
from tests.privileged.net_e2e_fixtures import (
    DNS, NetE2E, dns_listeners, links)
from tests.waiting import wait_for

USER_DATA = "#!/bin/sh\necho raw user data \x01 ok\n"


@pytest.fixture(scope="module")
def net():
    env = NetE2E("net")
    try:
        env.prepare()
        env.start()
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def vms(net):
    """name -> {uuid, ip, mac, project}, all ACTIVE."""
    t0 = time.monotonic()
    # a2 first: "auto" makes the project's network "private" that a1 names
    a2 = net.create("a2", config_drive=True)
    b1 = net.create("b1", project="other")
    net.cli("keypair", "create", "k")  # the CLI generates the key
    ud = os.path.join(net.tmp, "user-data")
    with open(ud, "w") as f:
        f.write(USER_DATA)
    # the CLI where it is the point; no --wait (it polls every 5 s)
    a1 = net.cli_json("server", "create", "--image", "busybox", "--flavor",
                      "m1.tiny", "--network", "private", "--key-name", "k",
                      "--user-data", ud, "a1")["id"]
    out = {}
    for name, uuid, project in (("a1", a1, "demo"), ("a2", a2, "demo"),
                                ("b1", b1, "other")):
        net.wait_active(uuid, project)
        ports = net.ports(uuid, project)
        assert len(ports) == 1, ports
        out[name] = {"uuid": uuid, "project": project, "port": ports[0],
                     "ip": ports[0].fixed_ips[0]["ip_address"],
                     "mac": ports[0].mac_address}
    timing("boot a1 (CLI) + a2, b1 (SDK) -> all ACTIVE",
           time.monotonic() - t0)
    return out


def _pair_reachable(net, vms) -> None:
    a1, a2 = vms["a1"], vms["a2"]
    assert net.reaches(a1["uuid"], a2["ip"]), "a1 cannot reach a2"
    assert net.reaches(a2["uuid"], a1["ip"]), "a2 cannot reach a1"


def test_plumbing_matches_the_api(net, vms):
    a1, a2, b1 = vms["a1"], vms["a2"], vms["b1"]
    assert a1["port"].network_id == a2["port"].network_id
    assert b1["port"].network_id != a1["port"].network_id
    host_links = links()
    for vm in vms.values():
        port = vm["port"]
        # the guest has the port's address and MAC on eth0, nothing else
        assert net.guest_ipv4(vm["uuid"], "eth0") == [vm["ip"]]
        assert net.fixed_ips(vm["uuid"], vm["project"]) == [vm["ip"]]
        mac = net.exec(vm["uuid"], ["cat", "/sys/class/net/eth0/address"]
                       ).stdout.strip()
        assert mac == vm["mac"].lower()
        ifaces = net.exec(vm["uuid"], ["ls", "/sys/class/net"]).stdout.split()
        assert sorted(ifaces) == ["eth0", "lo"], ifaces
        # host side: the veth pyv-<port[:11]> is a port of pyb-<net[:11]>
        assert {bridge_name(port.network_id), veth_name(port.id)} \
            <= host_links
        master = os.path.basename(os.readlink(
            f"/sys/class/net/{veth_name(port.id)}/master"))
        assert master == bridge_name(port.network_id)


def test_same_project_reaches_other_project_does_not(net, vms):
    a1, a2, b1 = vms["a1"], vms["a2"], vms["b1"]
    t0 = time.monotonic()
    _pair_reachable(net, vms)
    timing("a1<->a2 first pings", time.monotonic() - t0)
    echos = net.icmp_in_echos(a1["uuid"]), net.icmp_in_echos(a2["uuid"])
    # b1 -> a1/a2 and a1 -> b1: 100% loss, and nothing even arrives
    for src, dst in ((b1, a1), (b1, a2), (a1, b1)):
        result = net.exec(src["uuid"], ["ping", "-c", "3", "-i", "0.2",
                                         "-W", "1", dst["ip"]], check=False)
        assert result.returncode != 0 and "100% packet loss" in \
            result.stdout, (src["ip"], dst["ip"], result.stdout)
    assert (net.icmp_in_echos(a1["uuid"]),
            net.icmp_in_echos(a2["uuid"])) == echos
    assert net.icmp_in_echos(b1["uuid"]) == 0


def test_spoofing_guest_gets_nothing_through(net, vms):
    a1, a2 = vms["a1"], vms["a2"]
    target, spoofer = a1["uuid"], a2["uuid"]
    assert net.reaches(spoofer, a1["ip"])
    before = net.icmp_in_echos(target)

    # another source address: a1's own one is not a2's, nor is a free one
    free_ip = a2["ip"].rsplit(".", 1)[0] + ".200"
    net.sh(spoofer, f"ip addr add {free_ip}/24 dev eth0")
    try:
        assert not net.ping(spoofer, a1["ip"], count=3,
                            source=free_ip)
    finally:
        net.sh(spoofer, f"ip addr del {free_ip}/24 dev eth0")
    assert net.icmp_in_echos(target) == before, \
        "a packet with a spoofed source address reached a1"

    # another MAC with its own address: dropped as well
    net.sh(spoofer, "ip link set eth0 down; "
                    "ip link set eth0 address 02:00:de:ad:be:ef; "
                    "ip link set eth0 up; "
                    f"ip route add default via "
                    f"{a2['ip'].rsplit('.', 1)[0]}.1 dev eth0 || true")
    try:
        assert not net.ping(spoofer, a1["ip"], count=3)
        assert net.icmp_in_echos(target) == before, \
            "a frame with a spoofed MAC reached a1"
    finally:
        net.sh(spoofer, f"ip link set eth0 down; "
                        f"ip link set eth0 address {a2['mac']}; "
                        f"ip link set eth0 up; "
                        f"ip route add default via "
                        f"{a2['ip'].rsplit('.', 1)[0]}.1 dev eth0 || true; "
                        f"ip route add 169.254.169.254/32 dev eth0 "
                        f"scope link || true")
    # the honest guest is fine again
    assert net.reaches(spoofer, a1["ip"])
    assert net.icmp_in_echos(target) > before


def test_metadata_each_guest_sees_only_its_own(net, vms):
    a1, a2, b1 = vms["a1"], vms["a2"], vms["b1"]
    path = "/openstack/latest/meta_data.json"
    for name, vm in vms.items():
        ok, body = net.http_get(vm["uuid"], path)
        assert ok, (name, body)
        meta = json.loads(body)
        assert meta["uuid"] == vm["uuid"] and meta["name"] == name, meta
    # a guest cannot ask for another's data: headers are ignored
    ok, body = net.http_get(b1["uuid"], path, headers=(
        f"X-Forwarded-For: {a1['ip']}", f"X-Instance-ID: {a1['uuid']}"))
    assert ok and json.loads(body)["uuid"] == b1["uuid"], body
    ok, body = net.http_get(a2["uuid"], path + f"?ip={a1['ip']}")
    assert ok and json.loads(body)["uuid"] == a2["uuid"], body

    # user data is served raw (the API stored it base64-encoded)
    ok, body = net.http_get(a1["uuid"], "/openstack/latest/user_data")
    assert ok and body == USER_DATA, repr(body)
    ok, _ = net.http_get(a2["uuid"], "/openstack/latest/user_data")
    assert not ok  # 404: a2 has none
    ok, body = net.http_get(a1["uuid"], "/latest/user-data")
    assert ok and body == USER_DATA, repr(body)
    # the EC2 tree
    for name, vm in vms.items():
        ok, body = net.http_get(vm["uuid"], "/latest/meta-data/instance-id")
        assert ok and body.strip().startswith("i-"), (name, body)
    ids = {net.http_get(v["uuid"], "/latest/meta-data/instance-id")[1]
           for v in vms.values()}
    assert len(ids) == 3, ids
    ok, body = net.http_get(a1["uuid"], "/latest/meta-data/local-ipv4")
    assert ok and body.strip() == a1["ip"], body
    # a1's key is in both trees
    ok, body = net.http_get(a1["uuid"], "/openstack/latest/meta_data.json")
    assert json.loads(body)["public_keys"] == {"k": _public_key(net)}


def _public_key(net) -> str:
    return net.cli("keypair", "show", "--public-key", "k").stdout.strip()


def test_config_drive_is_read_only_and_own(net, vms):
    a1, a2 = vms["a1"], vms["a2"]
    body = net.exec(a2["uuid"], [
        "cat", "/mnt/config/openstack/latest/meta_data.json"]).stdout
    assert json.loads(body)["uuid"] == a2["uuid"]
    for script in ("echo x > /mnt/config/openstack/latest/meta_data.json",
                   "touch /mnt/config/new",
                   "rm /mnt/config/openstack/latest/meta_data.json"):
        result = net.sh(a2["uuid"], script, check=False)
        assert result.returncode != 0, script
        assert "Read-only" in result.stderr, (script, result.stderr)
    assert json.loads(net.exec(a2["uuid"], [
        "cat", "/mnt/config/openstack/latest/meta_data.json"]).stdout
    )["uuid"] == a2["uuid"]
    # a1 was booted without one
    assert net.sh(a1["uuid"], "test -e /mnt/config/openstack",
                  check=False).returncode != 0


def test_key_hostname_hosts_and_resolv_conf(net, vms):
    a1 = vms["a1"]
    key = _public_key(net)
    assert key.startswith("ssh-")
    keys = net.exec(a1["uuid"], ["cat", "/root/.ssh/authorized_keys"]).stdout
    assert key in keys.splitlines(), keys
    for name, vm in vms.items():
        assert net.exec(vm["uuid"], ["hostname"]).stdout.strip() == name
        hosts = net.exec(vm["uuid"], ["cat", "/etc/hosts"]).stdout
        assert f"{vm['ip']}\t{name}" in hosts.splitlines(), hosts
        resolv = net.exec(vm["uuid"], ["cat", "/etc/resolv.conf"]).stdout
        assert resolv.split() == ["nameserver", DNS], resolv


def test_hotplug_interface(net, vms):
    a1, a2 = vms["a1"], vms["a2"]
    net2 = net.create_network("demo", "net2")
    t0 = time.monotonic()
    net.cli("server", "add", "network", "a1", net2["id"])
    ports = wait_for(lambda: [p for p in net.ports(a1["uuid"])
                              if p.network_id == net2["id"]], 20,
                     what="a port on net2")
    ip2 = ports[0].fixed_ips[0]["ip_address"]
    wait_for(lambda: net.guest_ipv4(a1["uuid"], "eth1") == [ip2], 20,
             what="eth1 with its address inside a1")
    timing("server add network -> eth1 up inside", time.monotonic() - t0)
    assert ip2 in net.fixed_ips(a1["uuid"])
    mac = net.exec(a1["uuid"], ["cat", "/sys/class/net/eth1/address"]
                   ).stdout.strip()
    assert mac == ports[0].mac_address.lower()
    host_veth = veth_name(ports[0].id)
    assert os.path.basename(os.readlink(
        f"/sys/class/net/{host_veth}/master")) == bridge_name(net2["id"])
    # eth0 is untouched, the gateway of net2 answers on eth1
    assert net.guest_ipv4(a1["uuid"], "eth0") == [a1["ip"]]
    assert net.reaches(a1["uuid"], net2["gateway"])
    assert net.reaches(a1["uuid"], a2["ip"])

    t0 = time.monotonic()
    net.cli("server", "remove", "network", "a1", net2["id"])
    wait_for(lambda: net.sh(a1["uuid"], "test -e /sys/class/net/eth1",
                            check=False).returncode != 0, 20,
             what="eth1 gone from a1")
    timing("server remove network -> eth1 gone", time.monotonic() - t0)
    # its veth goes, and net2's bridge with it (no other port is on it)
    wait_for(lambda: not {host_veth, bridge_name(net2["id"])} & links(), 15,
             what=f"{host_veth} and net2's bridge deleted on the host")
    assert net.fixed_ips(a1["uuid"]) == [a1["ip"]]
    assert not [p for p in net.ports(a1["uuid"])
                if p.network_id == net2["id"]]
    assert net.reaches(a1["uuid"], a2["ip"])


def _assert_addresses_and_pings(net, vms, what: str) -> None:
    for name, vm in vms.items():
        assert net.guest_ipv4(vm["uuid"], "eth0") == [vm["ip"]], (what, name)
        assert net.fixed_ips(vm["uuid"], vm["project"]) == [vm["ip"]], what
    t0 = time.monotonic()
    _pair_reachable(net, vms)
    timing(f"pings after {what}", time.monotonic() - t0)
    ok, body = net.http_get(vms["a1"]["uuid"],
                            "/openstack/latest/meta_data.json")
    assert ok and json.loads(body)["uuid"] == vms["a1"]["uuid"], (what, body)


def test_addresses_survive_reboots_stop_start_and_compute_restart(net, vms):
    a1, a2 = vms["a1"]["uuid"], vms["a2"]["uuid"]
    sdk = net.sdk

    def act(what, call, uuid, status="ACTIVE"):
        t0 = time.monotonic()
        pid = net.record(uuid).get("pid")
        call()
        if status == "ACTIVE":
            # the action is done when a new init runs and the API is idle
            try:
                wait_for(lambda: net.record(uuid).get("pid")
                         not in (None, pid), 40, interval=0.1,
                         what=f"{what}: new init")
            except AssertionError as err:
                srv = sdk.compute.get_server(uuid)
                raise AssertionError(
                    f"{err}; server {srv.status}/{srv.task_state} "
                    f"{srv.fault}; record {net.record(uuid)}; log:\n"
                    f"{net.service.output()[-4000:]}") from None
        net.wait_status(uuid, status, timeout=40)
        timing(f"{what} -> {status}", time.monotonic() - t0)

    act("soft reboot a1", lambda: sdk.compute.reboot_server(a1, "SOFT"), a1)
    _assert_addresses_and_pings(net, vms, "soft reboot")
    act("hard reboot a2", lambda: sdk.compute.reboot_server(a2, "HARD"), a2)
    _assert_addresses_and_pings(net, vms, "hard reboot")

    for uuid in (a1, a2):
        act("stop", lambda u=uuid: sdk.compute.stop_server(u), uuid,
            "SHUTOFF")
    for uuid in (a1, a2):
        act("start", lambda u=uuid: sdk.compute.start_server(u), uuid)
    _assert_addresses_and_pings(net, vms, "stop/start")

    inits = {u: net.init_pid(u) for u in (a1, a2)}
    net.service.kill(signal.SIGKILL)
    t0 = time.monotonic()
    net.start()  # also proves it serves its bridges' metadata again
    timing("all-in-one SIGKILL -> restarted, metadata bound",
           time.monotonic() - t0)
    for uuid in (a1, a2):
        net.wait_status(uuid, "ACTIVE", timeout=20)
        assert net.init_pid(uuid) == inits[uuid], "guest was restarted"
    _assert_addresses_and_pings(net, vms, "compute restart")
    # its first power sync serves the running guests' networks' DNS again
    for name in ("a1", "b1"):
        gateway = str(ipaddress.IPv4Interface(f"{vms[name]['ip']}/24")
                      .network.network_address + 1)
        wait_for(lambda g=gateway: list(dns_listeners(g)) ==
                 [net.service.pid], 20, what=f"DNS on {gateway} again")
    # the restarted service still plugs: a reboot after re-adoption
    act("soft reboot a1 after restart",
        lambda: sdk.compute.reboot_server(a1, "SOFT"), a1)
    _assert_addresses_and_pings(net, vms, "reboot after restart")


def test_zz_delete_leaves_nothing_on_the_host(net, vms):
    """Deleting the servers removes their links (asynchronously: polled);
    then the whole deployment goes and nothing of it is left."""
    assert net.our_links()
    t0 = time.monotonic()
    servers = [(net.sdk_for(vm["project"]).compute,
                net.sdk_for(vm["project"]).compute.get_server(vm["uuid"]))
               for vm in vms.values()]
    for compute, srv in servers:
        compute.delete_server(srv)
    for compute, srv in servers:
        compute.wait_for_delete(srv, interval=0.2, wait=60)
    timing("delete x3 -> gone from the API", time.monotonic() - t0)
    for vm in vms.values():
        assert net.leftovers(vm["uuid"]) == []
    wait_for(lambda: not net.our_links(), 20, interval=0.2,
             what=f"links to go: {net.our_links()}")
    timing("delete x3 -> every link gone", time.monotonic() - t0)
    net.close()  # raises if any mount, cgroup, process or link is left
