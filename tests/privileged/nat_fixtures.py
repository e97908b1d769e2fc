"""An "outside" for NAT tests: a network namespace playing the internet.

``Outside`` starts a ``sleep`` in a fresh network namespace (killed by
pid, so no /run/netns entry) and joins it to the host by a veth: the host
end ``pyx<hex>`` is the test's external interface, the namespace end is
``eth0``. Addresses are a random /28 of 203.0.113.0/24 (TEST-NET-3) that
no host route overlaps; the real uplink is never used. ``Sleepers`` are
plain guests (fresh network namespaces) for ``NetworkPlumber.plug``.
Everything is removed in ``close``, also after a failure.
"""

from __future__ import annotations

import ipaddress
import os
import random
import subprocess
import time

from pyct_driver.api.host_routes import read_ipv4_routes

OUTSIDE_NET = ipaddress.IPv4Network("203.0.113.0/24")


def run(*argv: str, check: bool = True, timeout: float = 20,
        **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True,
                          check=check, timeout=timeout, **kw)


def in_ns(pid: int, *argv: str, check: bool = False,
          timeout: float = 20) -> subprocess.CompletedProcess:
    return run("nsenter", "-t", str(pid), "-n", *argv, check=check,
               timeout=timeout)


def free_block(prefixlen: int = 28) -> ipaddress.IPv4Network:
    """A block of 203.0.113.0/24 no host route overlaps."""
    taken = read_ipv4_routes()
    blocks = list(OUTSIDE_NET.subnets(new_prefix=prefixlen))
    random.shuffle(blocks)
    for block in blocks:
        if not any(block.overlaps(t) for t in taken if t.prefixlen):
            return block
    raise AssertionError(f"no free /{prefixlen} in {OUTSIDE_NET}")


class Sleepers:
    """``sleep`` processes in fresh network namespaces; killed in close."""

    def __init__(self) -> None:
        self.procs: list[subprocess.Popen] = []

    def new(self) -> int:
        own = os.readlink("/proc/self/ns/net")
        proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
        self.procs.append(proc)
        deadline = time.monotonic() + 5
        while True:
            try:
                if os.readlink(f"/proc/{proc.pid}/ns/net") != own:
                    return proc.pid
            except OSError:
                pass
            assert time.monotonic() < deadline, "unshare did not happen"
            time.sleep(0.005)

    def close(self) -> None:
        for proc in self.procs:
            proc.kill()
            proc.wait()
        self.procs = []


class Outside:
    """The simulated internet; ``host_ip`` is the host's external address,
    ``ip`` the outside server's."""

    def __init__(self) -> None:
        self.sleepers = Sleepers()
        self.block = free_block()
        hosts = list(self.block.hosts())
        self.host_ip, self.ip = str(hosts[0]), str(hosts[1])
        self.spare = [str(h) for h in hosts[2:]]  # floating IPs
        self.ifname = f"pyx{os.urandom(4).hex()}"
        self.pid = 0

    def start(self) -> "Outside":
        self.pid = self.sleepers.new()
        plen = self.block.prefixlen
        run("ip", "link", "add", self.ifname, "type", "veth", "peer",
            "name", "eth0", "netns", str(self.pid))
        run("ip", "addr", "add", f"{self.host_ip}/{plen}", "dev",
            self.ifname)
        run("ip", "link", "set", self.ifname, "up")
        for argv in (("ip", "link", "set", "lo", "up"),
                     ("ip", "link", "set", "eth0", "up"),
                     ("ip", "addr", "add", f"{self.ip}/{plen}", "dev",
                      "eth0")):
            in_ns(self.pid, *argv, check=True)
        return self

    def route_to_host(self, dst: str) -> None:
        """Route ``dst`` (a floating IP, say) to the host's external
        address, as an upstream router would."""
        in_ns(self.pid, "ip", "route", "replace", dst, "via", self.host_ip,
              check=True)

    def close(self) -> None:
        subprocess.run(["ip", "link", "del", self.ifname],
                       capture_output=True)
        self.sleepers.close()


def serve_in(pid: int, port: int) -> subprocess.Popen:
    """The same one-shot server in any network namespace; waits until it
    listens."""
    proc = subprocess.Popen(
        ["nsenter", "-t", str(pid), "-n", "python3", "-c",
         "import socket,sys\n"
         "s=socket.socket();s.setsockopt(1,2,1)\n"
         f"s.bind(('0.0.0.0',{port}));s.listen();s.settimeout(20)\n"
         "print('ready',flush=True)\n"
         "c,a=s.accept();c.sendall(b'hello\\n');c.close()\n"
         "print(a[0],flush=True)\n"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "ready", proc.stderr.read()
    return proc


def connect(pid: int, ip: str, port: int, timeout: int = 3) -> str:
    """What a TCP connection from ``pid``'s namespace to ip:port reads
    ("" when it cannot connect)."""
    result = in_ns(pid, "python3", "-c",
                   "import socket\n"
                   f"s=socket.create_connection(('{ip}',{port}),{timeout})\n"
                   "print(s.recv(100).decode().strip())\n",
                   timeout=timeout + 10)
    return result.stdout.strip() if result.returncode == 0 else ""


def finish(proc: subprocess.Popen) -> str:
    """The address a one-shot server saw ("" if none came)."""
    try:
        out, _ = proc.communicate(timeout=25)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        return ""
    return out.strip()  # ("ready" was read by serve_in)


def nft_tables() -> set[str]:
    out = run("nft", "list", "tables").stdout
    return {line.split()[-1] for line in out.splitlines() if line.strip()}
