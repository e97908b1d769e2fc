"""One "host" of test_vxlan_hosts: a NetworkPlumber run inside a network
namespace the test made, driven by JSON lines on stdin.

Started by the test as ``ip netns exec <host> python -m
tests.privileged.vxlan_host <tunnel address>``. Each line is a command;
each answer is one JSON line. ``guest`` starts a sleeper in a fresh
network namespace and plugs it into its network (with the network's
VNI), ``tunnels`` programs a network's VXLAN entries, ``sync`` has the
compute side (``compute.tunnels``) program them from a database as
host ``host``, ``fdb`` shows a network's entries, ``unplug`` removes a port and
then its network's bridge if unused, ``links`` lists
the plumber's links, ``quit`` kills the guests, removes the networks and
answers with the links left (a leak check).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

from pyct_driver.compute.tunnels import TunnelEndpoints
from pyct_driver.db.engine import Database
from pyct_driver.virt.base import VifSpec
from pyct_driver.virt.network import bridge, vxlan


def _guest() -> subprocess.Popen:
    proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    own = os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if os.readlink(f"/proc/{proc.pid}/ns/net") != own:
                return proc
        except OSError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("guest did not get its own netns")


class _Driver:
    """The container driver's two tunnel methods, on this plumber."""

    def __init__(self, plumber: bridge.NetworkPlumber) -> None:
        self.plumber = plumber

    def tunnel_address(self) -> str:
        return self.plumber.tunnel_address

    def set_tunnels(self, network_id: str, ports: list) -> None:
        self.plumber.set_tunnels(network_id, [
            vxlan.RemotePort(mac, address) for mac, address in ports])


class _Compute(TunnelEndpoints):
    def __init__(self, url: str, host: str, driver: _Driver) -> None:
        self.db, self.host, self.driver = Database(url), host, driver


def main(tunnel_address: str) -> None:
    plumber = bridge.NetworkPlumber(metadata_port=0, dns_upstreams=None,
                                    tunnel_address=tunnel_address)
    guests: list[subprocess.Popen] = []
    networks: set[str] = set()
    try:
        for line in sys.stdin:
            cmd = json.loads(line)
            op = cmd.pop("op")
            if op == "guest":
                proc = _guest()
                guests.append(proc)
                vif = VifSpec(**cmd)
                networks.add(vif.network_id)
                plumber.plug_all(proc.pid, [vif])
                answer = {"pid": proc.pid,
                          "mtu": plumber.link_mtu(vif.mtu, vif.vni)}
            elif op == "tunnels":
                ports = [vxlan.RemotePort(mac, address)
                         for mac, address in cmd["ports"]]
                answer = {"done": plumber.set_tunnels(cmd["network_id"],
                                                      ports)}
            elif op == "sync":
                compute = _Compute(cmd["db"], cmd["host"], _Driver(plumber))
                compute.sync_tunnels()
                compute.db.dispose()
                answer = {"done": True}
            elif op == "fdb":
                name = vxlan.vxlan_name(cmd["network_id"])
                index = plumber.host.link_index(name)
                own, bridged = vxlan.entries(plumber.host, index)
                learning = subprocess.run(
                    ["bridge", "-d", "link", "show", "dev", name],
                    capture_output=True, text=True).stdout
                answer = {"self": sorted(own), "bridged": sorted(bridged),
                          "learning": "learning on" in learning}
            elif op == "unplug":  # the last port of a network goes
                plumber.unplug(VifSpec(mac="", ip="", prefixlen=24,
                                       gateway="", **cmd))
                plumber.remove_bridge_if_unused(cmd["network_id"])
                plumber.flush()
                answer = {"links": plumber.list_links()}
            elif op == "links":
                answer = {"links": plumber.list_links()}
            elif op == "quit":
                break
            else:
                answer = {"error": op}
            print(json.dumps(answer), flush=True)
    finally:
        for proc in guests:
            proc.kill()
            proc.wait()
        plumber.remove_networks(networks)
        plumber.flush()
        print(json.dumps({"links": plumber.list_links()}), flush=True)
        plumber.close()


if __name__ == "__main__":
    main(sys.argv[1])
