"""Security groups end to end: real busybox guests of one all-in-one
(container driver, SQLite) on 10.248.0.0/16, groups and rules through
the real openstack CLI and SDK, traffic checked from inside the guests
with busybox ``nc``.

``a1`` and ``a2`` are in project demo's ``default`` group, ``w1`` (demo,
booted by ``server create --security-group web``) only in ``web``, ``b1``
in project other. The default group lets members in and nobody else;
a rule opens a port to a CIDR within a second and its removal closes it
again while an established connection keeps flowing; removing the egress
rules blocks outbound connections; another project's guest gets nowhere.
"""

from __future__ import annotations

import subprocess
import time

import pytest

from tests.privileged import net_e2e_fixtures
from tests.privileged.e2e_fixtures import timing
from tests.privileged.net_e2e_fixtures import NetE2E
from tests.waiting import wait_for

POOL = "10.248.0.0/16"
PORT = 7000


@pytest.fixture(scope="module")
def net():
    chosen = net_e2e_fixtures.pick_pool
    net_e2e_fixtures.pick_pool = lambda: POOL
    try:
        env = NetE2E("sg")
    finally:
        net_e2e_fixtures.pick_pool = chosen
    try:
        env.prepare()
        env.start()
        yield env
    finally:
        env.close()


@pytest.fixture(scope="module")
def vms(net):
    """name -> {uuid, ip, project}, all ACTIVE, each serving PORT."""
    a1 = net.create("a1")  # makes demo's network "private"
    a2 = net.create("a2")
    b1 = net.create("b1", project="other")
    net.cli("security", "group", "create", "web")
    w1 = net.cli_json("server", "create", "--image", "busybox", "--flavor",
                      "m1.tiny", "--network", "private", "--security-group",
                      "web", "w1")["id"]
    out = {}
    for name, uuid, project in (("a1", a1, "demo"), ("a2", a2, "demo"),
                                ("w1", w1, "demo"), ("b1", b1, "other")):
        net.wait_active(uuid, project)
        out[name] = {"uuid": uuid, "project": project,
                     "ip": net.fixed_ips(uuid, project)[0]}
        net.ports(uuid, project)
        # a persistent echo server (-ll: it keeps listening)
        net.sh(uuid, f"nc -ll -p {PORT} -e /bin/cat "
               "</dev/null >/dev/null 2>&1 &")
    return out


def _connects(net, src: dict, dst: dict, port: int = PORT) -> bool:
    """A TCP connection from ``src`` to ``dst`` opens (-w 1: give up after
    a second, which is plenty on one bridge)."""
    result = net.sh(src["uuid"], f"nc -w 1 {dst['ip']} {port} </dev/null",
                    check=False)
    return result.returncode == 0


def test_default_group_lets_members_in_and_nobody_else(net, vms):
    a1, a2, w1 = vms["a1"], vms["a2"], vms["w1"]
    assert wait_for(lambda: _connects(net, a1, a2), 5, what="a1 -> a2")
    assert _connects(net, a2, a1)
    assert not _connects(net, w1, a1)  # another group
    assert not _connects(net, a1, w1)  # web lets nobody in
    groups = net.cli_json("server", "show", w1["uuid"])["security_groups"]
    assert [g["name"] for g in groups] == ["web"]


def test_another_projects_guest_is_denied(net, vms):
    b1, a1 = vms["b1"], vms["a1"]
    assert not _connects(net, b1, a1)
    assert not _connects(net, a1, b1)


def _in_kernel(net, uuid: str, text: str) -> bool:
    """``text`` is in the ingress chain of the server's port."""
    port = net.ports(uuid)[0].id
    out = subprocess.run(["nft", "list", "chain", "bridge", "pyct_sg",
                          f"in-{port}"], capture_output=True, text=True)
    return text in out.stdout


def test_rule_opens_within_a_second_and_removal_closes(net, vms):
    a1, w1 = vms["a1"], vms["w1"]
    assert not _in_kernel(net, w1["uuid"], f"dport {PORT}")
    rule = net.cli_json("security", "group", "rule", "create", "--ingress",
                        "--protocol", "tcp", "--dst-port", str(PORT),
                        "--remote-ip", POOL, "web")
    created = time.monotonic()
    wait_for(lambda: _in_kernel(net, w1["uuid"], f"dport {PORT}"), 5,
             interval=0.01, what="the rule in the kernel")
    applied = time.monotonic() - created
    timing("security group rule: API answer -> in the kernel", applied)
    assert applied < 1.0, applied
    assert wait_for(lambda: _connects(net, a1, w1), 5,
                    what="a1 -> w1 after the rule")
    # an established connection from a1 to w1 keeps flowing
    net.sh(a1["uuid"], "printf 'while :; do echo x; sleep 0.2; done' "
           ">/tmp/tick; (sh /tmp/tick | nc "
           f"{w1['ip']} {PORT} >/tmp/held 2>/tmp/held.err) "
           "</dev/null >/dev/null 2>&1 &")
    try:
        wait_for(lambda: net.sh(a1["uuid"], "wc -c </tmp/held").stdout
                 .strip() not in ("", "0"), 5,
                 what="the held connection's echoes")
    except AssertionError:
        raise AssertionError(net.sh(a1["uuid"], "ps; cat /tmp/held.err",
                                    check=False).stdout) from None
    net.cli("security", "group", "rule", "delete", rule["id"])
    deleted = time.monotonic()
    wait_for(lambda: not _in_kernel(net, w1["uuid"], f"dport {PORT}"), 5,
             interval=0.01, what="the rule gone from the kernel")
    assert time.monotonic() - deleted < 1.0
    wait_for(lambda: not _connects(net, a1, w1), 3, interval=0.05,
             what="a1 -> w1 closed after the rule went")
    before = int(net.sh(a1["uuid"], "wc -c </tmp/held").stdout)
    time.sleep(1.0)
    after = int(net.sh(a1["uuid"], "wc -c </tmp/held").stdout)
    assert after > before, "the established connection stopped"


def test_egress_removal_blocks_outbound(net, vms):
    a1, w1 = vms["a1"], vms["w1"]
    rules = net.cli_json("security", "group", "rule", "list", "web")
    egress = [r for r in rules if r["Direction"] == "egress"]
    assert egress
    assert _connects(net, w1, vms["a2"]) is False  # a2's default group
    net.cli("security", "group", "rule", "create", "--ingress",
            "--protocol", "tcp", "--dst-port", str(PORT), "--remote-ip",
            w1["ip"] + "/32", "default")
    wait_for(lambda: _connects(net, w1, a1), 5, what="w1 -> a1 allowed")
    for rule in egress:
        net.cli("security", "group", "rule", "delete", rule["ID"])
    wait_for(lambda: not _connects(net, w1, a1), 3, interval=0.05,
             what="w1's outbound blocked")
