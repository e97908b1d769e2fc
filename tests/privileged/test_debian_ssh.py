"""The flagship: boot a real Debian guest through the API and SSH into it.

What a new user does after ``make run``, with the real openstack CLI
against a real ``pyct-all-in-one`` (container driver): import the Debian
image (``pyct-manage image create-debian``; debootstrap'ed once per machine
and cached under /var/cache/pyct/images), ``openstack keypair create k >
k.pem``, ``openstack server create --image debian --flavor m1.small
--key-name k --user-data ud.sh --nic auto --wait``, then ``ssh -i k.pem
root@<fixed ip>``. The SSH client runs in a test network namespace
(``ProjectNetns``) whose veth is enslaved to the project network's bridge,
with the subnet's last host address (IPAM hands out the lowest ones). The
guest's key, hostname and user data come through pyct's own paths
(injection and the metadata service); the test checks them from inside the
guest over SSH, plus that PID 1 is systemd and multi-user.target is active,
and that the guest resolves names: its resolv.conf names the network's DNS
server (by default the gateway, where pyct's forwarder answers; its
upstream here is a DNS server the test runs on loopback) and glibc's
resolver gets answers through it. A busybox guest on the same network is
told the same.

The deployment's subnet pool is a random /24 of 10.244.0.0/16 so that it
overlaps no host route and no other test's network. The test namespace and
its veth go first at teardown (a foreign port would keep pyct's bridge
alive), then the E2E harness deletes servers and checks for leftovers.
``ProjectNetns`` and ``ssh_banner`` are reused by tools/bench/debian_ssh.py.
"""

from __future__ import annotations

import ipaddress
import os
import random
import socket
import subprocess
import sys
import time
import uuid as uuid_mod

import pytest

from tests.fixtures import dns_upstream
from tests.fixtures.dns_upstream import upstream  # noqa: F401 - fixture
from tests.privileged import e2e_fixtures
from tests.waiting import wait_for

USER_DATA = "#!/bin/sh\necho pyct-ud > /root/ud-ran\n"
BANNER_PROBE = ("import sys; sys.path.insert(0, %r); "
                "from tests.privileged.test_debian_ssh import ssh_banner; "
                "print(ssh_banner(sys.argv[1], 3.0).decode(errors='replace'))"
                % os.path.dirname(os.path.dirname(os.path.dirname(
                    os.path.abspath(__file__)))))
SSH_OPTS = ["-o", "StrictHostKeyChecking=no",
            "-o", "UserKnownHostsFile=/dev/null", "-o", "BatchMode=yes",
            "-o", "ConnectTimeout=3", "-o", "LogLevel=ERROR"]


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(["ip", *args], capture_output=True, text=True,
                         timeout=30)
    if check and out.returncode != 0:
        raise AssertionError(f"ip {' '.join(args)}: {out.stderr.strip()}")
    return out


def host_routes() -> list[ipaddress.IPv4Network]:
    """Every IPv4 destination in any routing table of the host."""
    routes = []
    for line in _ip("-4", "route", "show", "table", "all").stdout.splitlines():
        words = line.split()
        if words and words[0] in ("local", "broadcast", "unicast", "anycast",
                                  "multicast", "blackhole", "unreachable",
                                  "prohibit", "throw", "nat"):
            words = words[1:]
        if words and words[0] != "default":
            try:
                routes.append(ipaddress.IPv4Network(words[0], strict=False))
            except ValueError:
                pass
    return routes


def free_pool() -> str:
    """A /24 of 10.244.0.0/16 that no host route overlaps."""
    routes = host_routes()
    for _ in range(100):
        net = ipaddress.IPv4Network(f"10.244.{random.randrange(256)}.0/24")
        if not any(net.overlaps(r) for r in routes):
            return str(net)
    raise AssertionError("no free /24 in 10.244.0.0/16")


class ProjectNetns:
    """A network namespace ``pyct-ssh-<rand>`` attached to a project
    network's bridge: veth ``pytsh<rand>`` on the bridge, ``eth0`` with
    ``address`` inside. Removed by ``close`` (idempotent)."""

    def __init__(self, bridge: str, address: str) -> None:
        tag = uuid_mod.uuid4().hex[:8]
        self.name = f"pyct-ssh-{tag}"
        self.host_end = f"pytsh{tag}"
        self.bridge = bridge
        self.address = address
        _ip("netns", "add", self.name)
        try:
            _ip("link", "add", self.host_end, "type", "veth", "peer", "name",
                "eth0", "netns", self.name)
            _ip("link", "set", self.host_end, "master", bridge, "up")
            self.run("ip", "link", "set", "lo", "up", check=True)
            self.run("ip", "addr", "add", address, "dev", "eth0", check=True)
            self.run("ip", "link", "set", "eth0", "up", check=True)
        except BaseException:
            self.close()
            raise

    def run(self, *argv: str, check: bool = False, timeout: float = 30
            ) -> subprocess.CompletedProcess:
        return subprocess.run(["ip", "netns", "exec", self.name, *argv],
                              capture_output=True, text=True, check=check,
                              timeout=timeout)

    def enter(self) -> int:
        """An fd of the namespace, for ``setns`` from a thread."""
        return os.open(f"/run/netns/{self.name}", os.O_RDONLY)

    def close(self) -> None:
        _ip("link", "del", self.host_end, check=False)
        _ip("netns", "del", self.name, check=False)

    def __enter__(self) -> "ProjectNetns":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def ssh_banner(ip: str, timeout: float = 1.0) -> bytes:
    """Connect to ip:22 (in the caller's netns) and read the banner; b""
    when nothing accepted or said hello yet."""
    try:
        with socket.create_connection((ip, 22), timeout=timeout) as s:
            s.settimeout(timeout)
            return s.recv(64)
    except OSError:
        return b""


def project_network(env: e2e_fixtures.E2E
                    ) -> tuple[str, ipaddress.IPv4Network]:
    """(bridge, subnet) of the project's only network."""
    nets = env.cli_json("network", "list")
    assert len(nets) == 1, nets
    subnets = nets[0]["Subnets"]
    subnet = env.cli_json("subnet", "show", subnets[0]
                          if isinstance(subnets, list) else subnets)
    return "pyb-" + nets[0]["ID"][:11], ipaddress.IPv4Network(subnet["cidr"])


def fixed_ip(srv: dict) -> str:
    addresses = srv["addresses"]
    if isinstance(addresses, str):  # older OSC: "net=10.x.y.z"
        return addresses.split("=", 1)[1].split(",")[0].strip()
    return next(iter(addresses.values()))[0]


def pyct_links() -> list[str]:
    out = _ip("-o", "link", "show").stdout
    return [line.split(":")[1].strip().split("@")[0]
            for line in out.splitlines()
            if line.split(":")[1].strip().startswith(("pyb-", "pyv-"))]


def metadata_port_taken() -> bool:
    out = subprocess.run(["ss", "-Hltn", "src", "169.254.169.254:80"],
                         capture_output=True, text=True).stdout
    return bool(out.strip())


def own_metadata_service(env: e2e_fixtures.E2E, attempts: int = 4) -> None:
    """Make sure our all-in-one serves 169.254.169.254:80. There is one
    metadata service per host; another all-in-one running right now
    (another test) would answer our guest with 404s, so wait for it to
    go and restart ours (bounded)."""
    for _ in range(attempts):
        env.service.wait_output("compute service on", timeout=30)
        log = env.service.output()[env.service.log_offset:]
        if "metadata service not started" not in log:
            return
        env.dep.stop_all()
        wait_for(lambda: not metadata_port_taken(), timeout=120,
                 interval=0.5, what="169.254.169.254:80 free")
        env.start()
    raise AssertionError("another pyct keeps 169.254.169.254:80")


@pytest.fixture(scope="module")
def env(upstream):
    pool = free_pool()
    # [network] dns_nameservers left at its default: the gateway
    with e2e_fixtures.deployment(
            "ssh", {"network": {"pool_cidr": pool,
                                "dns_upstreams": upstream.address},
                    "metadata": {"port": 80}}) as env:
        env.pool = pool
        env.dep.manage("flavor", "create", "m1.small", "--id", "2",
                       "--vcpus", "1", "--ram", "2048", "--disk", "20")
        t0 = time.monotonic()
        env.dep.manage("image", "create-debian", "debian", "--if-missing")
        e2e_fixtures.timing("image create-debian (cache or build) + import",
                            time.monotonic() - t0)
        own_metadata_service(env)
        yield env


def test_boot_debian_and_ssh_in(env):
    tmp = env.tmp
    pem = os.path.join(tmp, "k.pem")
    with open(pem, "w") as f:
        f.write(env.cli("keypair", "create", "k").stdout)
    os.chmod(pem, 0o600)
    ud = os.path.join(tmp, "ud.sh")
    with open(ud, "w") as f:
        f.write(USER_DATA)

    # as a cloud user does: the default group lets in only its members
    env.cli("security", "group", "rule", "create", "--ingress", "--protocol",
            "tcp", "--dst-port", "22", "default")
    name = f"deb-{uuid_mod.uuid4().hex[:6]}"
    t0 = time.monotonic()
    srv = env.cli_json("--os-compute-api-version", "2.37", "server",
                       "create", "--image", "debian", "--flavor", "m1.small",
                       "--key-name", "k", "--user-data", ud, "--nic", "auto",
                       "--wait", name)
    e2e_fixtures.timing("CLI server create --wait (debian, network)",
                        time.monotonic() - t0)
    assert srv["status"] == "ACTIVE", srv
    ip = fixed_ip(env.cli_json("server", "show", name))
    bridge, subnet = project_network(env)
    assert ipaddress.IPv4Address(ip) in subnet, (ip, subnet)
    mine = f"{subnet.broadcast_address - 1}/{subnet.prefixlen}"
    assert mine.split("/")[0] != ip

    with ProjectNetns(bridge, mine) as ns:
        def ssh(cmd: str, check: bool = True) -> str:
            out = ns.run("ssh", "-i", pem, *SSH_OPTS, f"root@{ip}", cmd,
                         timeout=20)
            if check:
                assert out.returncode == 0, (cmd, out.stdout, out.stderr)
            return out.stdout.strip()

        last = {}

        def hostname():
            t1 = time.monotonic()
            out = ns.run("ssh", "-i", pem, *SSH_OPTS, f"root@{ip}",
                         "hostname", timeout=20)
            last["out"] = out
            last.setdefault("tries", []).append(
                (round(time.monotonic() - t1, 2), out.returncode,
                 out.stderr.strip()[-80:]))
            return out.returncode == 0 and out.stdout.strip()
        try:
            got = wait_for(hostname, timeout=90, interval=0.2,
                           what="ssh root@guest accepting the key")
        except AssertionError:
            console = env.cli("console", "log", "show", name,
                              check=False).stdout
            raise AssertionError(f"ssh never worked: {last.get('out')}\n"
                                 f"console:\n{console[-3000:]}") from None
        e2e_fixtures.timing("server create -> ssh hostname works",
                            time.monotonic() - t0)
        print(f"ssh attempts (s, rc, stderr): {last['tries']}")
        assert got == name
        t1 = time.monotonic()
        ssh("true")
        e2e_fixtures.timing("one ssh login + command", time.monotonic() - t1)
        assert ssh("ps -p 1 -o comm=") == "systemd"
        state = ssh("systemctl is-active multi-user.target", check=False)
        assert state == "active", state
        # user data runs in its own unit, which does not hold up boot
        ran = wait_for(lambda: ssh("cat /root/ud-ran 2>/dev/null",
                                   check=False), timeout=30,
                       what="user data's file")
        assert ran == "pyct-ud"
        console = env.cli("console", "log", "show", name).stdout
        assert f"metadata source: metadata-service, instance-id: " \
               f"{srv['id']}" in console, console[-3000:]
        # names resolve: the network's DNS server (the gateway's
        # forwarder), through the metadata service and the agent too
        gateway = str(subnet.network_address + 1)
        assert ssh("cat /etc/resolv.conf").splitlines() == [
            f"nameserver {gateway}"]
        assert f"pyct-agent: nameservers: {gateway}" in console
        assert ssh("getent hosts www.pyct.test").split()[0] == \
            dns_upstream.ZONE["www.pyct.test"]
        # the guest really has the fixed IP on eth0 and pyct's gateway
        addr = ssh("ip -4 -o addr show dev eth0")
        assert f"{ip}/{subnet.prefixlen}" in addr, addr
        assert ssh("ip route show default").startswith(
            f"default via {subnet.network_address + 1}")
        # what a client sees first: OpenSSH's banner
        banner = ns.run(sys.executable, "-c", BANNER_PROBE, ip, timeout=10)
        assert banner.stdout.startswith("SSH-2.0-OpenSSH"), banner
        # the host holds the gateway address: the README's plain `ssh`
        assert ssh_banner(ip, 3.0).startswith(b"SSH-2.0-OpenSSH")

    uuid = srv["id"]
    ports = env.cli_json("port", "list")
    veths = {"pyv-" + p["ID"][:11] for p in ports}
    assert len(veths) == 1, ports
    t0 = time.monotonic()
    env.cli("server", "delete", "--wait", name)
    e2e_fixtures.timing("CLI server delete --wait", time.monotonic() - t0)
    assert not env.leftovers(uuid)
    # pyct removes the port's veth and then the bridge nobody uses
    wait_for(lambda: not set(pyct_links()) & (veths | {bridge}),
             timeout=15, what=f"{veths} and {bridge} removed")


def test_busybox_guest_is_told_the_gateway_and_resolves(env, upstream):
    """The issue's busybox side: with no nameservers configured, a guest
    got an empty resolv.conf. Now it names the gateway, and the guest's
    own resolver (busybox nslookup, run the confined way) gets answers."""
    srv = env.cli_json("server", "create", "--image", "busybox", "--flavor",
                       "m1.tiny", "--nic", "auto", "--wait", "bb-dns")
    try:
        _bridge, subnet = project_network(env)
        gateway = str(subnet.network_address + 1)
        resolv = env.exec(srv["id"], ["cat", "/etc/resolv.conf"]).stdout
        assert resolv.splitlines() == [f"nameserver {gateway}"], resolv
        upstream.clear()
        out = env.exec(srv["id"], ["nslookup", "db.pyct.test"]).stdout
        assert dns_upstream.ZONE["db.pyct.test"] in out, out
        assert "db.pyct.test" in {q["name"] for q in upstream.questions()}
    finally:
        env.cli("server", "delete", "--wait", "bb-dns")
