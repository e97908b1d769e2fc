"""One "host" of test_vxlan_hosts: a NetworkPlumber run inside a network
namespace the test made, driven by JSON lines on stdin.

Started by the test as ``ip netns exec <host> python -m
tests.privileged.vxlan_host <tunnel address>``. Each line is a command;
each answer is one JSON line. ``guest`` starts a sleeper in a fresh
network namespace and plugs it into its network (with the network's
VNI), ``tunnels`` programs a network's VXLAN entries, ``links`` lists
the plumber's links, ``quit`` kills the guests, removes the networks and
answers with the links left (a leak check).
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

from pyct_driver.virt.base import VifSpec
from pyct_driver.virt.network import bridge, vxlan


def _guest() -> subprocess.Popen:
    proc = subprocess.Popen(["unshare", "--net", "sleep", "600"])
    own = bridge.os.readlink("/proc/self/ns/net")
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            if bridge.os.readlink(f"/proc/{proc.pid}/ns/net") != own:
                return proc
        except OSError:
            pass
        time.sleep(0.01)
    proc.kill()
    raise RuntimeError("guest did not get its own netns")


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
