"""End-to-end harness: real containers booted through pyct's API.

``E2E`` owns one deployment in a temp dir (path holds "pyct") with the
``container`` virt driver, SQLite and its own cgroup parent
``pyct-test-<rand>``. Tests drive it with the real openstack CLI
(``cli``/``cli_json``) and watch it with the real openstacksdk (``server``,
``wait_status``) and the host's own view: each instance's record.json,
cgroup files, mounts and loop devices (``leftovers``). ``exec`` runs a
command inside a guest through ``guest_tools.guest_exec`` (the process joins
the instance's cgroups, then ``nsenter -a`` into its init's namespaces).

``close`` tears everything down even after a failure, in the order the
product needs: delete every server through the API, stop the services by
pid, shut the launcher down, remove what the API left (reported as an
error), remove the parent cgroups, then assert that nothing of ours is left
on the host: no mount or loop device with our path, no cgroup, no process.
"""

from __future__ import annotations

import contextlib
import glob
import json
import os
import shutil
import subprocess
import tempfile
import time
import uuid as uuid_mod

from tests.privileged import guest_tools
from tests.services import Deployment, ServiceProcess
from tests.waiting import wait_for

CGROUP_ROOT = "/sys/fs/cgroup"


def timing(what: str, seconds: float) -> None:
    """Print a measured duration; run pytest with -s to see them."""
    print(f"\nE2E-TIMING {what}: {seconds:.3f}s")


def mounts_with(text: str) -> list[str]:
    with open("/proc/self/mounts") as f:
        return [line.split()[1] for line in f if text in line]


def loops_with(text: str) -> list[str]:
    found = []
    for backing in glob.glob("/sys/block/loop*/loop/backing_file"):
        with contextlib.suppress(OSError), open(backing) as f:
            if text in f.read():
                found.append(backing.split("/")[3])
    return found


def processes_with(text: str) -> list[str]:
    """Processes whose command line mentions ``text`` (not this one)."""
    found = []
    for entry in glob.glob("/proc/[0-9]*/cmdline"):
        pid = int(entry.split("/")[2])
        if pid == os.getpid():
            continue
        with contextlib.suppress(OSError), open(entry, "rb") as f:
            cmd = f.read().replace(b"\0", b" ").decode(errors="replace")
            if text in cmd:
                found.append(f"{pid}: {cmd[:200]}")
    return found


class E2E:
    """One all-in-one deployment with real containers, and its cleanup."""

    def __init__(self, tag: str, extra: dict | None = None) -> None:
        self.tmp = tempfile.mkdtemp(prefix=f"pyct-e2e-{tag}-")
        self.parent = f"pyct-test-{uuid_mod.uuid4().hex[:8]}"
        # the metadata service (a listener on each of the deployment's
        # bridges): only deployments that test it ask for it
        sections = {"container": {"cgroup_parent": self.parent,
                                  "soft_reboot_timeout": 10},
                    "metadata": {"port": 0},
                    # guests' DNS goes to loopback, never to the uplink
                    "network": {"dns_upstreams":
                                guest_tools.NO_DNS_UPSTREAM}}
        for section, values in (extra or {}).items():
            sections.setdefault(section, {}).update(values)
        self.dep = Deployment(self.tmp, f"sqlite:///{self.tmp}/pyct.sqlite",
                              virt_driver="container", extra=sections)
        self.state_path = os.path.join(self.tmp, "state")
        self.base_dir = os.path.join(self.state_path, "container")
        self.launcher_dir = os.path.join(self.base_dir, "launcher")
        self.service: ServiceProcess | None = None
        # every (pid, start time) of a guest init we saw, per instance
        self.seen_inits: dict[str, set[tuple[int, int]]] = {}
        self._driver = None
        self._sdk = None

    # -- set-up ---------------------------------------------------------------

    def prepare(self) -> None:
        """db sync, the busybox image and flavor m1.tiny (as `make run`)."""
        self.dep.manage("db", "sync")
        self.dep.manage("image", "create-busybox", "busybox")
        self.dep.manage("flavor", "create", "m1.tiny", "--id", "1",
                        "--vcpus", "1", "--ram", "512", "--disk", "1")

    def start(self) -> ServiceProcess:
        self.service = self.dep.start("pyct-all-in-one")
        self._sdk = None
        return self.service

    @property
    def driver(self):
        """A ContainerDriver on the same state, used only to *look* (and as
        the last-resort cleaner); it never starts a launcher itself."""
        if self._driver is None:
            from pyct_driver.virt.container import ContainerDriver
            self._driver = ContainerDriver(
                guest_tools.make_conf(self.state_path, self.parent))
        return self._driver

    # -- clients --------------------------------------------------------------

    def cli(self, *args: str, check: bool = True,
            timeout: float = 120) -> subprocess.CompletedProcess:
        return self.dep.openstack(*args, check=check, timeout=timeout)

    def cli_json(self, *args: str) -> dict:
        return json.loads(self.cli(*args, "-f", "json").stdout)

    @property
    def sdk(self):
        if self._sdk is None:
            self._sdk = self.dep.sdk_connection("user")
        return self._sdk

    def server(self, name_or_id: str):
        found = self.sdk.compute.find_server(name_or_id, ignore_missing=False)
        return self.sdk.compute.get_server(found.id)

    def wait_status(self, name_or_id: str, status: str,
                    timeout: float = 30.0, task_state_none: bool = True):
        """Poll the API until the server has ``status`` (and no task)."""
        last = {}

        def check():
            srv = self.server(name_or_id)
            last["s"] = (srv.status, srv.task_state, srv.power_state)
            if srv.status == "ERROR" and status != "ERROR":
                raise AssertionError(f"{name_or_id} went ERROR: {srv.fault}")
            if srv.status == status and (not task_state_none
                                         or srv.task_state is None):
                return srv
            return None
        try:
            return wait_for(check, timeout, interval=0.1,
                            what=f"{name_or_id} {status}")
        except AssertionError as err:
            raise AssertionError(f"{err}; last (status, task, power) = "
                                 f"{last.get('s')}") from None

    # -- the host's view ------------------------------------------------------

    def record_dir(self, uuid: str) -> str:
        return os.path.join(self.base_dir, "instances", uuid)

    def record(self, uuid: str) -> dict:
        with open(os.path.join(self.record_dir(uuid), "record.json")) as f:
            rec = json.load(f)
        if rec.get("pid"):
            self.seen_inits.setdefault(uuid, set()).add(
                (rec["pid"], rec["start_time"]))
        return rec

    def init_pid(self, uuid: str) -> int:
        rec = self.record(uuid)
        assert rec.get("pid"), f"{uuid} has no init: {rec}"
        return int(rec["pid"])

    def init_alive(self, uuid: str) -> bool:
        from pyct_driver.virt.process import guest
        rec = self.record(uuid)
        return bool(rec.get("pid")) and guest.is_same_process(
            rec["pid"], rec["start_time"])

    def console(self, uuid: str) -> str:
        with open(os.path.join(self.record_dir(uuid), "console.log"),
                  errors="replace") as f:
            return f.read()

    def group_dir(self, ctrl: str, uuid: str) -> str:
        return os.path.join(CGROUP_ROOT, ctrl, self.parent, uuid)

    def cgroup(self, ctrl: str, uuid: str, name: str) -> str:
        with open(os.path.join(self.group_dir(ctrl, uuid), name)) as f:
            return f.read().strip()

    def group_procs(self, uuid: str) -> dict[str, list[int]]:
        """Pids in the instance's group, per hierarchy that has one."""
        out = {}
        for path in glob.glob(os.path.join(CGROUP_ROOT, "*", self.parent,
                                           uuid, "cgroup.procs")):
            with open(path) as f:
                out[path.split("/")[4]] = [int(x) for x in f.read().split()]
        return out

    def exec(self, uuid: str, argv: list[str], **kwargs):
        self.record(uuid)
        return guest_tools.guest_exec(self.driver, uuid, argv, **kwargs)

    def leftovers(self, uuid: str) -> list[str]:
        """Everything of one instance still on the host (after a delete):
        its cgroups, mounts, loop devices, dirs and any init it had."""
        from pyct_driver.virt.process import guest
        found = [f"cgroup {p}" for p in glob.glob(
            os.path.join(CGROUP_ROOT, "*", self.parent, uuid))]
        found += [f"mount {m}" for m in mounts_with(uuid)]
        found += [f"loop {d}" for d in loops_with(uuid)]
        for path in (self.record_dir(uuid),
                     os.path.join(self.base_dir, "roots", "instances", uuid)):
            if os.path.exists(path):
                found.append(f"dir {path}")
        found += [f"init {pid} alive"
                  for pid, st in self.seen_inits.get(uuid, ())
                  if guest.is_same_process(pid, st)]
        return found

    # -- teardown -------------------------------------------------------------

    def _delete_all_through_api(self, errors: list[str]) -> None:
        if self.service is None:
            return  # nothing was ever booted
        try:
            if not self.service.alive():
                self.start()
            admin = self.dep.sdk_connection("admin")
            servers = list(admin.compute.servers(all_projects=True))
            for srv in servers:
                admin.compute.delete_server(srv)
            for srv in servers:
                admin.compute.wait_for_delete(srv, interval=0.2, wait=60)
        except Exception as err:  # noqa: BLE001 - keep cleaning up
            errors.append(f"API delete: {type(err).__name__}: {err}")

    def close(self) -> None:
        from pyct_driver.virt.process import guest
        from pyct_driver.virt.process.caller.client import LauncherClient
        errors: list[str] = []
        self._delete_all_through_api(errors)
        try:
            self.dep.stop_all()
        except Exception as err:  # noqa: BLE001
            errors.append(f"stop services: {err}")
        try:
            LauncherClient(self.launcher_dir).shutdown()
        except Exception as err:  # noqa: BLE001
            errors.append(f"launcher shutdown: {err}")
        if os.path.isdir(self.base_dir):
            left = set(self.driver.list_instances())
            with contextlib.suppress(Exception):
                left.update(self.driver.cgroups.list_groups())
            if left:
                errors.append(f"instances left after API delete: {left}")
        try:
            # destroys what the API left, shuts the launcher down again if
            # that started one, removes the parent groups and the temp dir
            guest_tools.cleanup_driver(self.driver, self.tmp, self.parent)
        except Exception as err:  # noqa: BLE001
            errors.append(f"fallback cleanup: {err}")
        shutil.rmtree(self.tmp, ignore_errors=True)
        leaks = self.host_leaks()
        alive = [f"init {pid}" for inits in self.seen_inits.values()
                 for pid, st in inits if guest.is_same_process(pid, st)]
        assert not (errors or leaks or alive), (errors, leaks, alive)

    def host_leaks(self, timeout: float = 5.0) -> list[str]:
        """What of ours is still on the host; waits a moment for lazily
        released mounts and loop devices."""
        def look():
            return ([f"mount {m}" for m in mounts_with(self.tmp)]
                    + [f"loop {d}" for d in loops_with(self.tmp)]
                    + [f"cgroup {p}" for p in glob.glob(
                        os.path.join(CGROUP_ROOT, "*", self.parent))]
                    + [f"process {p}" for p in processes_with(self.tmp)])
        deadline = time.monotonic() + timeout
        found = look()
        while found and time.monotonic() < deadline:
            time.sleep(0.1)
            found = look()
        return found



@contextlib.contextmanager
def deployment(tag: str, extra: dict | None = None):
    """A prepared, started all-in-one with real containers; always torn
    down (see ``E2E.close``)."""
    env = E2E(tag, extra)
    try:
        env.prepare()
        env.start()
        yield env
    finally:
        env.close()


def boot(env: E2E, name: str, *extra: str) -> tuple[dict, float]:
    """`openstack server create ... --wait NAME`; (server, seconds)."""
    t0 = time.monotonic()
    srv = env.cli_json("server", "create", "--image", "busybox",
                       "--flavor", "m1.tiny", "--nic", "none", *extra,
                       "--wait", name)
    return srv, time.monotonic() - t0
