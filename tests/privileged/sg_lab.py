"""A private lab for security-group enforcement: one "host" network
namespace holding a Linux bridge named like pyct's, and "guest" namespaces
plugged into it through veths named like pyct's ports, all on
10.248.0.0/16 and all inside namespaces this lab creates (the host's own
tables and links are never touched). ``apply`` runs pyct's compiler and
libnftables binding inside the host namespace; ``connect`` opens a real
TCP connection between guests.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import uuid

from pyct_driver.virt.network.names import veth_name
from pyct_driver.virt.port_filter import FilterRule, PortFilter

GATEWAY = "10.248.1.1"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
_APPLY = """
import json, sys, time
from pyct_driver.virt.network import secgroup_nft
from pyct_driver.virt.port_filter import FilterRule, PortFilter
body = json.load(sys.stdin)
ports = [PortFilter(p["port_id"], p["ip"], p["gateway"],
                    tuple(FilterRule(**r) for r in p["rules"]))
         for p in body["ports"]]
start = time.perf_counter()
secgroup_nft.apply(ports, body["previous"])
print(time.perf_counter() - start)
"""
# the compute service's path: one long-lived FilterState, so each apply
# after the first writes only what changed
_STATEFUL = """
import json, sys
from pyct_driver.virt.network import secgroup_delta
from pyct_driver.virt.port_filter import FilterRule, PortFilter
state = secgroup_delta.FilterState(sys.argv[1])
for line in sys.stdin:
    body = json.loads(line)
    state.apply([PortFilter(p["port_id"], p["ip"], p["gateway"],
                            tuple(FilterRule(**r) for r in p["rules"]))
                 for p in body["ports"]])
    print("done", flush=True)
"""
_SERVE = """
import socket, sys
s = socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
s.bind(("0.0.0.0", int(sys.argv[1]))); s.listen(16)
print("ready", flush=True)
while True:
    c, _ = s.accept()
    while True:
        data = c.recv(4096)
        if not data:
            break
        c.sendall(data)
    c.close()
"""


def _ports(filters: dict[Guest, list[FilterRule]]) -> dict:
    return {"ports": [{"port_id": g.port_id, "ip": g.ip, "gateway": GATEWAY,
                       "rules": [r.__dict__ for r in rules]}
                      for g, rules in filters.items()]}


def run(*argv: str, check: bool = True, **kw) -> subprocess.CompletedProcess:
    return subprocess.run(list(argv), capture_output=True, text=True,
                          check=check, **kw)


class Guest:
    def __init__(self, lab: "SgLab", index: int) -> None:
        self.port_id = str(uuid.uuid4())
        self.ip = f"10.248.1.{10 + index}"
        self.ns = f"{lab.tag}-g{index}"
        self.veth = veth_name(self.port_id)
        self.servers: list[subprocess.Popen] = []

    def exec(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.ns, *argv, **kw)

    def serve(self, port: int) -> None:
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.ns, sys.executable, "-c", _SERVE,
             str(port)], stdout=subprocess.PIPE, text=True)
        self.servers.append(proc)
        assert proc.stdout.readline().strip() == "ready"


class SgLab:
    def __init__(self, guests: int = 3) -> None:
        self.tag = "sg" + uuid.uuid4().hex[:6]
        self.host = f"{self.tag}-h"
        self.guests: list[Guest] = []
        self.applied: set[str] = set()  # the port ids last filtered
        try:
            self._build(guests)
        except BaseException:
            self.close()
            raise

    def host_exec(self, *argv: str, **kw) -> subprocess.CompletedProcess:
        return run("ip", "netns", "exec", self.host, *argv, **kw)

    def _build(self, count: int) -> None:
        run("ip", "netns", "add", self.host)
        self.host_exec("ip", "link", "set", "lo", "up")
        self.host_exec("ip", "link", "add", "pyb-lab", "type", "bridge",
                       "nf_call_iptables", "1")
        self.host_exec("ip", "addr", "add", GATEWAY + "/24", "dev",
                       "pyb-lab")
        self.host_exec("ip", "link", "set", "pyb-lab", "up")
        for index in range(count):
            guest = Guest(self, index)
            self.guests.append(guest)
            run("ip", "netns", "add", guest.ns)
            self.host_exec("ip", "link", "add", guest.veth, "type", "veth",
                           "peer", "name", "eth0", "netns", guest.ns)
            self.host_exec("ip", "link", "set", guest.veth, "master",
                           "pyb-lab", "up")
            guest.exec("ip", "link", "set", "lo", "up")
            guest.exec("ip", "addr", "add", guest.ip + "/24", "dev", "eth0")
            guest.exec("ip", "link", "set", "eth0", "up")
            guest.exec("ip", "route", "add", "default", "via", GATEWAY)

    def apply(self, filters: dict[Guest, list[FilterRule]]) -> float:
        """Enforce ``filters`` (guests not named are unfiltered); the
        seconds the kernel transaction took."""
        body = dict(_ports(filters), previous=sorted(self.applied))
        out = self.host_exec(sys.executable, "-c", _APPLY,
                             input=json.dumps(body),
                             env=dict(os.environ, PYTHONPATH=ROOT))
        self.applied = {g.port_id for g in filters}
        return float(out.stdout)

    @contextlib.contextmanager
    def stateful(self, path: str):
        """An ``apply(filters)`` served by one long-lived filter state in
        the host namespace, as the compute service keeps it."""
        proc = subprocess.Popen(
            ["ip", "netns", "exec", self.host, sys.executable, "-c",
             _STATEFUL, path], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True,
            env=dict(os.environ, PYTHONPATH=ROOT))

        def apply(filters: dict[Guest, list[FilterRule]]) -> None:
            proc.stdin.write(json.dumps(_ports(filters)) + "\n")
            proc.stdin.flush()
            assert proc.stdout.readline().strip() == "done"
        try:
            yield apply
        finally:
            proc.stdin.close()
            proc.wait(timeout=10)

    def handles(self, chain: str) -> list[str]:
        """The kernel's rule handles in one of pyct's bridge chains (a
        rewritten chain has new ones)."""
        out = self.host_exec("nft", "-a", "list", "chain", "bridge",
                             "pyct_sg", chain).stdout
        return [line.rsplit("# handle ", 1)[1] for line in out.splitlines()
                if "# handle " in line and "chain " not in line]

    def remove(self) -> None:
        """Drop pyct's tables (no filtering, no conntrack for them)."""
        self.host_exec(sys.executable, "-c", "from pyct_driver.virt."
                       "network import secgroup_nft; secgroup_nft.remove()",
                       env=dict(os.environ, PYTHONPATH=ROOT))
        self.applied = set()

    def ruleset(self) -> str:
        return self.host_exec("nft", "list", "ruleset").stdout

    def close(self) -> None:
        for guest in self.guests:
            for proc in guest.servers:
                proc.kill()
                proc.wait()
            run("ip", "netns", "del", guest.ns, check=False)
        run("ip", "netns", "del", self.host, check=False)


_CONNECT = """
import socket, sys
try:
    s = socket.create_connection((sys.argv[1], int(sys.argv[2])),
                                 timeout=float(sys.argv[3]))
    s.sendall(b"ping"); ok = s.recv(16) == b"ping"
except OSError:
    ok = False
print("open" if ok else "closed")
"""
_HOLD = """
import socket, sys
s = socket.create_connection((sys.argv[1], int(sys.argv[2])), timeout=2)
print("connected", flush=True)
for line in sys.stdin:
    s.settimeout(1)
    try:
        s.sendall(b"x"); ok = s.recv(16) == b"x"
    except OSError:
        ok = False
    print("open" if ok else "closed", flush=True)
"""


def connect(src: Guest, dst_ip: str, port: int,
            timeout: float = 0.5) -> bool:
    """A new TCP connection from ``src`` to ``dst_ip:port`` echoes."""
    out = src.exec(sys.executable, "-c", _CONNECT, dst_ip, str(port),
                   str(timeout))
    return out.stdout.strip() == "open"


class Held:
    """One TCP connection kept open from ``src``; ``alive`` sends a byte
    and waits for its echo."""

    def __init__(self, src: Guest, dst_ip: str, port: int) -> None:
        self.proc = subprocess.Popen(
            ["ip", "netns", "exec", src.ns, sys.executable, "-c", _HOLD,
             dst_ip, str(port)], stdin=subprocess.PIPE,
            stdout=subprocess.PIPE, text=True)
        src.servers.append(self.proc)
        assert self.proc.stdout.readline().strip() == "connected"

    def alive(self) -> bool:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()
        return self.proc.stdout.readline().strip() == "open"
