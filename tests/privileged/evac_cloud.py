"""A two-host cloud with real guests: evacuation's test and benchmark.

``Cloud`` runs ``pyct-api`` on the machine and one ``pyct-compute`` per
"host", each in a network namespace the harness makes (``evh-a-*``,
``evh-b-*``; nsenter switches only the network namespace, so cgroups,
mounts and files are the machine's, and the test sees them), with its
own state directory and cgroup parent, its VXLAN endpoint on an underlay
veth between the namespaces (10.255.200.0/24), and project networks from
10.255.0.0/17. They share a fresh PostgreSQL database and RabbitMQ vhost
(``tests.dbfixtures``, ``tests.integration.conftest``), which each
namespace reaches on its own loopback (``netns_forward``). Processes are
stopped by pid; ``close`` deletes every server through the API, shuts
the hosts' launchers down, destroys what is left (reported as an error),
removes the namespaces and asserts that nothing of the cloud remains.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
import uuid as uuid_mod

from tests.privileged import guest_tools
from tests.privileged.e2e_fixtures import (CGROUP_ROOT, loops_with,
                                           mounts_with, processes_with)
from tests.privileged.netns_forward import Forwarder
from tests.services import Deployment, ServiceProcess
from tests.waiting import wait_for, wait_gone

UNDERLAY = {"host-a": "10.255.200.1", "host-b": "10.255.200.2"}
POOL = "10.255.0.0/17"
_BUS_AND_DB = (5672, 5432)


def run(*cmd: str, check: bool = True) -> subprocess.CompletedProcess:
    out = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    if check and out.returncode != 0:
        raise AssertionError(f"{cmd} failed: {out.stderr}")
    return out


class Cloud:
    def __init__(self, db_url: str, rabbit_url: str, extra: dict) -> None:
        self.tag = uuid_mod.uuid4().hex[:6]
        self.tmp = tempfile.mkdtemp(prefix=f"pyct-evac-{self.tag}-")
        self.netns = {h: f"evh-{h[-1]}-{self.tag}" for h in UNDERLAY}
        self.parents = {h: f"pyct-test-{self.tag}{h[-1]}" for h in UNDERLAY}
        self.forwarders: list[Forwarder] = []
        self.computes: dict[str, ServiceProcess] = {}
        self._made_netns: list[str] = []
        self._drivers: dict = {}
        sections = {"container": {"cgroup_parent": f"pyct-test-{self.tag}m",
                                  "soft_reboot_timeout": 10},
                    "metadata": {"port": 0},
                    "network": {"dns_upstreams":
                                guest_tools.NO_DNS_UPSTREAM,
                                "pool_cidr": POOL}}
        for section, values in extra.items():
            sections.setdefault(section, {}).update(values)
        self.dep = Deployment(self.tmp, db_url, rabbit_url,
                              virt_driver="container", extra=sections)

    # -- set-up ---------------------------------------------------------------

    def up(self) -> None:
        for netns in self.netns.values():
            run("ip", "netns", "add", netns)
            self._made_netns.append(netns)
        a, b = (f"evu-{h[-1]}-{self.tag}" for h in UNDERLAY)
        run("ip", "link", "add", a, "netns", self.netns["host-a"], "type",
            "veth", "peer", "name", b, "netns", self.netns["host-b"])
        for (host, netns), link in zip(self.netns.items(), (a, b)):
            run("ip", "-n", netns, "addr", "add", f"{UNDERLAY[host]}/24",
                "dev", link)
            run("ip", "-n", netns, "link", "set", link, "up")
            run("ip", "-n", netns, "link", "set", "lo", "up")
            self.forwarders.append(Forwarder(netns, _BUS_AND_DB))
        self.dep.manage("db", "sync")
        self.dep.manage("image", "create-busybox", "busybox")
        self.dep.manage("flavor", "create", "m1.tiny", "--id", "1",
                        "--vcpus", "1", "--ram", "64", "--disk", "1")
        self.dep.start("pyct-api")
        for host in UNDERLAY:
            self.start_compute(host)

    def state_path(self, host: str) -> str:
        return os.path.join(self.tmp, host)

    def start_compute(self, host: str) -> ServiceProcess:
        conf = self.dep.conf_for_host(host, {
            "DEFAULT": {"state_path": self.state_path(host)},
            "container": {"cgroup_parent": self.parents[host]},
            "network": {"tunnel_address": UNDERLAY[host]}})
        proc = ServiceProcess(
            "pyct-compute", conf,
            os.path.join(self.tmp, f"pyct-compute-{host}.log"),
            prefix=["nsenter", f"--net=/run/netns/{self.netns[host]}"])
        self.dep.processes.append(proc)
        self.computes[host] = proc
        proc.wait_output(f"compute service on {host} started", 90)
        return proc

    def kill_compute(self, host: str) -> None:
        """SIGKILL the host's compute service (by its pid): its guests
        and launcher live on, as after a crash."""
        proc = self.computes.pop(host)
        proc.kill()
        self.dep.processes.remove(proc)
        proc.stop()

    # -- clients --------------------------------------------------------------

    def cli(self, *args: str, cloud: str = "admin", check: bool = True
            ) -> subprocess.CompletedProcess:
        return self.dep.openstack(*args, cloud=cloud, check=check)

    def cli_json(self, *args: str, cloud: str = "admin"):
        return json.loads(self.cli(*args, "-f", "json", cloud=cloud).stdout)

    def server(self, uuid: str) -> dict:
        return self.cli_json("--os-compute-api-version", "2.47", "server",
                             "show", uuid)

    def wait_settled(self, uuid: str, timeout: float = 120) -> dict:
        """The server once it has no task; the hosts' logs if not."""
        def settled():
            server = self.server(uuid)
            return server if server["OS-EXT-STS:task_state"] is None \
                else None
        try:
            return wait_for(settled, timeout, interval=0.5,
                            what=f"{uuid} to settle")
        except AssertionError as err:
            logs = "".join(proc.output()[-3000:]
                           for proc in self.computes.values())
            raise AssertionError(f"{err}\n{logs}") from None

    def set_host(self, host: str, *flags: str) -> None:
        """``openstack compute service set`` on ``host``'s service."""
        self.cli("--os-compute-api-version", "2.11", "compute", "service",
                 "set", *flags, host, "nova-compute")

    def boot(self, name: str) -> str:
        srv = self.cli_json("server", "create", "--image", "busybox",
                            "--flavor", "m1.tiny", "--nic", "auto",
                            "--wait", name, cloud="user")
        return srv["id"]

    # -- the hosts' view ------------------------------------------------------

    def driver(self, host: str):
        """A container driver on ``host``'s state, only to look (and as
        the last-resort cleaner)."""
        if host not in self._drivers:
            from pyct_driver.virt.container import ContainerDriver
            self._drivers[host] = ContainerDriver(guest_tools.make_conf(
                self.state_path(host), self.parents[host]))
        return self._drivers[host]

    def record(self, host: str, uuid: str) -> dict:
        path = os.path.join(self.state_path(host), "container", "instances",
                            uuid, "record.json")
        with open(path) as f:
            return json.load(f)

    def init_alive(self, host: str, uuid: str) -> tuple[int, int] | None:
        from pyct_driver.virt.process import guest
        try:
            rec = self.record(host, uuid)
        except OSError:
            return None
        if rec.get("pid") and guest.is_same_process(rec["pid"],
                                                    rec["start_time"]):
            return rec["pid"], rec["start_time"]
        return None

    def in_netns(self, host: str, *cmd: str) -> subprocess.CompletedProcess:
        return run("nsenter", f"--net=/run/netns/{self.netns[host]}", *cmd,
                   check=False)

    def reaches(self, host: str, ip: str, tries: int = 10) -> bool:
        return any(self.in_netns(host, "busybox", "ping", "-c", "1", "-W",
                                 "1", ip).returncode == 0
                   for _ in range(tries))

    def links(self, host: str) -> str:
        return self.in_netns(host, "ip", "-o", "link", "show").stdout

    def leftovers(self, host: str, uuid: str, port_ids: list[str]
                  ) -> list[str]:
        """What of one instance ``host`` still has: process, cgroups,
        mounts, loop devices, state, links of its ports."""
        found = [f"cgroup {p}" for p in glob.glob(os.path.join(
            CGROUP_ROOT, "*", self.parents[host], uuid))]
        found += [f"mount {m}" for m in mounts_with(uuid)
                  if self.state_path(host) in m]
        found += [f"loop {d}" for d in loops_with(
            os.path.join(self.state_path(host), ""))
            if uuid in d]
        found += [f"dir {p}" for p in glob.glob(os.path.join(
            self.state_path(host), "container", "*", uuid))]
        found += [f"dir {p}" for p in glob.glob(os.path.join(
            self.state_path(host), "container", "roots", "instances", uuid))]
        links = self.links(host)
        found += [f"link for port {p}" for p in port_ids if p[:11] in links]
        return found

    # -- teardown -------------------------------------------------------------

    def close(self) -> None:
        from pyct_driver.virt.process.caller.client import LauncherClient
        errors: list[str] = []
        try:
            for host in UNDERLAY:
                if host not in self.computes:
                    self.start_compute(host)
            self.set_host("host-a", "--up")
            ids = [s["ID"] for s in self.cli_json(
                "server", "list", "--all-projects")]
            if ids:
                self.cli("server", "delete", "--wait", *ids)
        except Exception as err:  # noqa: BLE001 - keep cleaning up
            errors.append(f"API delete: {err}")
        try:
            self.dep.stop_all()
        except Exception as err:  # noqa: BLE001
            errors.append(f"stop services: {err}")
        for forwarder in self.forwarders:
            forwarder.close()
        for host in UNDERLAY:
            launcher = os.path.join(self.state_path(host), "container",
                                    "launcher")
            with contextlib.suppress(Exception):
                LauncherClient(launcher).shutdown()
            if os.path.isdir(os.path.join(self.state_path(host),
                                          "container")):
                left = set(self.driver(host).list_instances())
                if left:
                    errors.append(f"{host}: instances left: {left}")
                try:
                    guest_tools.cleanup_driver(self.driver(host),
                                               self.state_path(host),
                                               self.parents[host])
                except Exception as err:  # noqa: BLE001
                    errors.append(f"{host} fallback cleanup: {err}")
        for netns in self._made_netns:  # their links and bridges go too
            run("ip", "netns", "del", netns, check=False)
        shutil.rmtree(self.tmp, ignore_errors=True)
        leaks = wait_gone(self._host_leaks, 5.0)
        assert not (errors or leaks), (errors, leaks)

    def _host_leaks(self) -> list[str]:
        return ([f"mount {m}" for m in mounts_with(self.tmp)]
                + [f"loop {d}" for d in loops_with(self.tmp)]
                + [f"cgroup {p}" for parent in self.parents.values()
                   for p in glob.glob(os.path.join(CGROUP_ROOT, "*",
                                                   parent))]
                + [f"process {p}" for p in processes_with(self.tmp)])


@contextlib.contextmanager
def cloud(extra: dict | None = None):
    """A running two-host cloud (``extra`` options added), always torn
    down."""
    from tests.dbfixtures import make_postgres_url
    from tests.integration.conftest import rabbit_transport
    with make_postgres_url() as db_url, \
            rabbit_transport() as (rabbit_url, bus_extra):
        for section, values in (extra or {}).items():
            bus_extra.setdefault(section, {}).update(values)
        env = Cloud(db_url, rabbit_url, bus_extra)
        try:
            env.up()
            yield env
        finally:
            env.close()
