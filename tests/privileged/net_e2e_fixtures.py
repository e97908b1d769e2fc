"""Networking end to end: real guests on pyct's project networks.

``NetE2E`` wraps the container e2e harness (``e2e_fixtures.E2E``: an
all-in-one with the ``container`` driver, SQLite, its own cgroup parent)
with what network tests need:

- a subnet pool no host route and no existing interface address overlaps
  (``pick_pool``), so it cannot collide with the host or with another
  deployment's bridges running on this shared machine at the same time;
- ``[metadata] port = 80`` and proof that *this* deployment's process
  serves 169.254.169.254:80 on each of its bridges (``metadata_listeners``:
  one listener bound to each bridge, so other deployments' services on the
  same address and port, on their own bridges, do not matter);
- the real clients of two projects (``sdk`` is "demo", ``other`` is
  "other"), boot helpers, each server's fixed IPs/ports as the API shows them;
- actions inside guests: ``ping``, ``icmp_in_echos`` (what the target
  really received), ``http_get`` with busybox wget;
- a record of every network and port id the deployment ever had, so
  ``our_links`` can tell this deployment's ``pyb-``/``pyv-`` links apart
  from other deployments' ones, and ``close`` can prove none is left.
"""

from __future__ import annotations

import base64
import contextlib
import glob
import ipaddress
import os
import random
import re
import subprocess

from pyct_driver.api.host_routes import read_ipv4_routes
from pyct_driver.virt.network.bridge import bridge_name, veth_name
from tests.privileged.e2e_fixtures import E2E
from tests.waiting import wait_for, wait_gone

METADATA_IP = "169.254.169.254"
METADATA_PORT = 80
DNS = "198.51.100.53"  # written to resolv.conf only; no traffic goes there


def _host_addresses() -> list[ipaddress.IPv4Interface]:
    out = subprocess.run(["ip", "-4", "-o", "addr", "show"],
                         capture_output=True, text=True, check=True).stdout
    return [ipaddress.IPv4Interface(m) for m in
            re.findall(r"inet (\d+\.\d+\.\d+\.\d+/\d+)", out)]


def pick_pool() -> str:
    """A /16 of 10/8 that overlaps no route and no address of the host."""
    taken = read_ipv4_routes() + [a.network for a in _host_addresses()]
    candidates = list(range(200, 250))
    random.shuffle(candidates)
    for second in candidates:
        pool = ipaddress.IPv4Network(f"10.{second}.0.0/16")
        if not any(pool.overlaps(t) for t in taken):
            return str(pool)
    raise AssertionError(f"no free /16 in 10.200-249 (taken: {taken})")


def metadata_listeners(port: int = METADATA_PORT) -> dict[str, set[int]]:
    """device -> pids of the processes listening on the metadata address
    and ``port`` bound to that device ("" for one bound to none, which
    would take the address for every bridge of the host)."""
    out = subprocess.run(["ss", "-Hltnp", f"sport = :{port}"],
                         capture_output=True, text=True, check=True).stdout
    found: dict[str, set[int]] = {}
    for line in out.splitlines():
        fields = line.split()
        local = fields[3].rsplit(":", 1)[0]
        addr, _, device = local.partition("%")
        if addr not in (METADATA_IP, "0.0.0.0", "*", "[::]"):
            continue
        found.setdefault(device, set()).update(
            int(p) for p in re.findall(r"pid=(\d+)", line))
    return found


def dns_listeners(gateway: str) -> dict[int, str]:
    """pid -> command of every process with a UDP socket bound to
    ``gateway``:53 (the gateway's DNS forwarder)."""
    want = "%08X:0035" % int.from_bytes(
        ipaddress.IPv4Address(gateway).packed, "little")
    with open("/proc/net/udp") as f:
        inodes = [line.split()[9] for line in f.readlines()[1:]
                  if line.split()[1] == want]
    return _owners(inodes)


def _owners(socket_inodes) -> dict[int, str]:
    inodes = {f"socket:[{i}]" for i in socket_inodes}
    owners: dict[int, str] = {}
    if not inodes:
        return owners
    for fd_dir in glob.glob("/proc/[0-9]*/fd"):
        pid = int(fd_dir.split("/")[2])
        with contextlib.suppress(OSError):
            for fd in os.listdir(fd_dir):
                with contextlib.suppress(OSError):
                    if os.readlink(os.path.join(fd_dir, fd)) in inodes:
                        with open(f"/proc/{pid}/cmdline", "rb") as f:
                            owners[pid] = f.read().replace(b"\0", b" ") \
                                .decode(errors="replace")[:200]
    return owners


def links(prefixes: tuple[str, ...] = ("pyb-", "pyv-", "pyx-")) -> set[str]:
    """Names of the host's links starting with one of ``prefixes``."""
    out = subprocess.run(["ip", "-o", "link", "show"], capture_output=True,
                         text=True, check=True).stdout
    names = {line.split(":")[1].strip().split("@")[0]
             for line in out.splitlines()}
    return {n for n in names if n.startswith(prefixes)}


class NetE2E(E2E):
    """An all-in-one with real containers, networks and the metadata
    service on port 80, driven by the clients of two projects."""

    def __init__(self, tag: str, metadata_port: int = METADATA_PORT) -> None:
        self.pool = pick_pool()
        self.metadata_port = metadata_port
        super().__init__(tag, {
            "network": {"pool_cidr": self.pool, "dns_nameservers": DNS},
            "metadata": {"port": metadata_port},
        })
        self.network_ids: set[str] = set()
        self.port_ids: set[str] = set()
        self._other = None
        self.closed = False
        self.network_names: dict[str, str] = {}  # bridge -> network name
        self.netns_seen: set[str] = set()  # "net:[inode]" of our guests

    # -- set-up ---------------------------------------------------------------

    def start(self):
        """Start the all-in-one; once it serves, each of our bridges that
        exists (a restart) has a metadata listener bound to it, ours."""
        service = super().start()
        service.wait_output("compute service on", timeout=30)
        self.check_metadata_listeners()
        self._other = None
        return service

    def check_metadata_listeners(self) -> None:
        """Every bridge of ours has one metadata listener: this service's;
        none listens for every bridge at once."""
        def wrong():
            held = metadata_listeners(self.metadata_port)
            ours = links() & {bridge_name(n) for n in self.network_ids}
            return {dev: held.get(dev) for dev in ours | {""}
                    if held.get(dev) != ({self.service.pid} if dev
                                         else None)}
        bad = wait_gone(wrong, 10.0)
        assert not bad, f"metadata listeners by bridge: {bad}"

    @property
    def other(self):
        """The SDK of project "other"."""
        if self._other is None:
            self._other = self.dep.sdk_connection("other")
        return self._other

    def sdk_for(self, project: str):
        return self.other if project == "other" else self.sdk

    # -- servers --------------------------------------------------------------

    def create(self, name: str, project: str = "demo", **kwargs) -> str:
        """``create_server`` through the SDK (returns at once); the uuid."""
        conn = self.sdk_for(project)
        image = conn.image.find_image("busybox", ignore_missing=False)
        if "user_data" in kwargs:
            kwargs["user_data"] = base64.b64encode(
                kwargs["user_data"].encode()).decode()
        kwargs.setdefault("networks", "auto")
        srv = conn.compute.create_server(name=name, image_id=image.id,
                                         flavor_id="1", **kwargs)
        return srv.id

    def wait_active(self, uuid: str, project: str = "demo",
                    timeout: float = 60.0):
        conn = self.sdk_for(project)

        def check():
            srv = conn.compute.get_server(uuid)
            if srv.status == "ERROR":
                raise AssertionError(f"{uuid} went ERROR: {srv.fault}")
            return srv if (srv.status == "ACTIVE"
                           and srv.task_state is None) else None
        return wait_for(check, timeout, interval=0.1, what=f"{uuid} ACTIVE")

    def ports(self, uuid: str, project: str = "demo") -> list:
        """The server's ports (Neutron-lite), remembered for leak checks."""
        found = list(self.sdk_for(project).network.ports(device_id=uuid))
        for port in found:
            self.port_ids.add(port.id)
            self.network_ids.add(port.network_id)
        return found

    def fixed_ips(self, uuid: str, project: str = "demo") -> list[str]:
        """The server's addresses as the compute API shows them."""
        srv = self.sdk_for(project).compute.get_server(uuid)
        return [a["addr"] for net in srv.addresses.values() for a in net]

    def create_network(self, project_id: str, name: str) -> dict:
        """A second network for a project. The API offers no network
        create (only the project's default is made, on "auto"), so this
        goes through pyct's own IPAM on the deployment's database."""
        from pyct_driver.db import networks as db_networks
        from pyct_driver.db.engine import Database
        db = Database(self.dep.db_url)
        try:
            net = db_networks.create_network(
                db, project_id, name,
                db_networks.IpamSettings(pool_cidr=self.pool,
                                         dns_nameservers=(DNS,)),
                read_ipv4_routes)
        finally:
            db.dispose()
        self.network_ids.add(net["id"])
        self.network_names[bridge_name(net["id"])] = name
        return net

    # -- inside the guests ----------------------------------------------------

    def sh(self, uuid: str, script: str, check: bool = True,
           timeout: float = 30.0) -> subprocess.CompletedProcess:
        return self.exec(uuid, ["sh", "-c", script], check=check,
                         timeout=timeout)

    def ping(self, uuid: str, ip: str, count: int = 1,
             source: str | None = None) -> bool:
        """busybox ping from inside the guest; True when a reply came.
        (-W, not -w: Debian's static busybox 1.35 misses -w's deadline
        by ~8 s.)"""
        argv = ["ping", "-c", str(count), "-i", "0.2", "-W", "1"]
        if source:
            argv += ["-I", source]
        result = self.exec(uuid, argv + [ip], check=False, timeout=20)
        return result.returncode == 0

    def reaches(self, uuid: str, ip: str, tries: int = 5) -> bool:
        """A reply within a few tries (the first ping may wait for ARP)."""
        return any(self.ping(uuid, ip) for _ in range(tries))

    def icmp_in_echos(self, uuid: str) -> int:
        """Echo requests the guest's kernel received (its /proc/net/snmp)."""
        lines = [line.split() for line in self.exec(
            uuid, ["cat", "/proc/net/snmp"]).stdout.splitlines()
            if line.startswith("Icmp:")]
        return int(dict(zip(lines[0], lines[1]))["InEchos"])

    def http_get(self, uuid: str, path: str, host: str = METADATA_IP,
                 headers: tuple[str, ...] = ()) -> tuple[bool, str]:
        """busybox wget inside the guest; (ok, body or error text)."""
        # (no -T: Debian's static busybox 1.35 wget segfaults with it)
        argv = ["wget", "-O", "-"]
        for header in headers:
            argv += ["--header", header]
        result = self.exec(uuid, argv + [f"http://{host}{path}"],
                           check=False, timeout=20)
        return (result.returncode == 0,
                result.stdout if result.returncode == 0 else
                f"rc={result.returncode} {result.stdout!r} {result.stderr!r}")

    def guest_ipv4(self, uuid: str, dev: str) -> list[str]:
        """The addresses the guest itself has on ``dev`` ([] if none)."""
        result = self.exec(uuid, ["ip", "-4", "-o", "addr", "show", "dev",
                                  dev], check=False)
        return re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", result.stdout)

    # -- the host's view and teardown ----------------------------------------

    def our_links(self) -> set[str]:
        """This deployment's bridges and host-side veths still on the host."""
        mine = ({bridge_name(n) for n in self.network_ids}
                | {veth_name(p) for p in self.port_ids})
        return links() & mine

    def record(self, uuid: str) -> dict:
        """E2E.record, also noting the guest's network namespace."""
        rec = super().record(uuid)
        if rec.get("pid"):
            with contextlib.suppress(OSError):
                self.netns_seen.add(os.readlink(f"/proc/{rec['pid']}/ns/net"))
        return rec

    def netns_left(self) -> list[str]:
        """Network namespaces of our guests that still exist: held by a
        process, or bind-mounted somewhere (``ip netns`` style)."""
        found = []
        for link in glob.glob("/proc/[0-9]*/ns/net"):
            with contextlib.suppress(OSError):
                if os.readlink(link) in self.netns_seen:
                    with open(link.replace("ns/net", "cmdline"), "rb") as f:
                        cmd = f.read().replace(b"\0", b" ")[:200]
                    found.append(f"{link} -> {os.readlink(link)}: {cmd!r}")
        with open("/proc/self/mountinfo") as f:
            for line in f:
                fields = line.split()
                if fields[3] in self.netns_seen:
                    found.append(f"mount {fields[4]} of {fields[3]}")
        return found

    def close(self) -> None:
        """E2E.close (API deletes, services stopped, no mount, cgroup or
        process left), then no link and no network namespace of ours:
        deferred deletions are polled for, bounded."""
        if self.closed:
            return
        self.closed = True
        try:
            super().close()
        finally:
            # (after a failure above, still look: the report needs both)
            left = wait_gone(self.our_links, 15.0)
            netns = wait_gone(self.netns_left, 15.0)
        assert self.netns_seen or not self.service, "no netns was recorded"
        assert not left and not netns, (
            f"links left: {sorted(left)} (networks: {self.network_names}); "
            f"netns left: {netns}")
