"""End to end: a real container booted through the API, and its lifecycle.

One all-in-one (container driver, SQLite) for the module. ``vm1`` is booted
with the real openstack CLI exactly as a user would; the tests then look at
it from the host (cgroup files, record.json, mounts, loop devices) and from
inside (a process that joined its cgroups and nsenter'd its namespaces),
drive it through reboot/stop/start/pause/unpause/delete with the CLI, and
boot images whose init cannot start.
"""

from __future__ import annotations

import contextlib
import os
import tarfile
import time
import uuid as uuid_mod

import pytest

from pyct_driver import conf as pyct_conf
from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
from tests.privileged.e2e_fixtures import boot, deployment, timing
from tests.waiting import wait_for

BANNER = "pyct busybox guest booting"
SHUTDOWN_BANNER = "pyct busybox guest shutting down"


@pytest.fixture(scope="module")
def env():
    with deployment("server") as e:
        yield e


@pytest.fixture(scope="module")
def vm1(env):
    srv, seconds = boot(env, "vm1")
    timing("CLI server create --wait -> ACTIVE (vm1)", seconds)
    assert srv["status"] == "ACTIVE", srv
    return srv["id"]


def test_server_runs_with_flavor_limits_and_isolation(env, vm1):
    uuid = vm1
    shown = env.cli_json("server", "show", "vm1")
    assert shown["status"] == "ACTIVE" and shown["OS-EXT-STS:power_state"] \
        in ("Running", 1), shown
    assert env.init_alive(uuid)

    # The cgroup limits are the flavor's (m1.tiny: 1 vcpu, 512 MiB).
    assert int(env.cgroup("memory", uuid, "memory.limit_in_bytes")) \
        == 512 * 1024 ** 2
    assert int(env.cgroup("cpu", uuid, "cpu.shares")) == 1024 * 1
    period = int(env.cgroup("cpu", uuid, "cpu.cfs_period_us"))
    assert int(env.cgroup("cpu", uuid, "cpu.cfs_quota_us")) == 1 * period
    default_pids = next(o.default for o in pyct_conf.container_opts
                        if o.name == "default_pids_max")
    assert env.cgroup("pids", uuid, "pids.max") == str(default_pids)
    # ...and the init really is in that group.
    init = env.init_pid(uuid)
    for ctrl, pids in env.group_procs(uuid).items():
        assert init in pids, (ctrl, pids)

    # PID 1 inside is the image's init, the hostname is the server's name.
    assert env.exec(uuid, ["readlink", "/proc/1/exe"]).stdout.strip() \
        == "/bin/busybox"
    # (busybox init rewrites its argv[0] to "init")
    assert env.exec(uuid, ["cat", "/proc/1/cmdline"]).stdout \
        .split("\0")[0].endswith("init")
    assert env.exec(uuid, ["hostname"]).stdout.strip() == "vm1"

    # Host processes are invisible: /proc inside lists init and the `ls`.
    host_pids = [p for p in os.listdir("/proc") if p.isdigit()]
    inside = [p for p in env.exec(uuid, ["ls", "/proc"]).stdout.split()
              if p.isdigit()]
    # (init, its console's askfirst waiter -- also "init" -- and the ls)
    assert "1" in inside and len(inside) <= 3, inside
    assert len(host_pids) > 20
    ps = env.exec(uuid, ["ps", "-o", "pid,args"]).stdout.splitlines()[1:]
    assert {line.split(None, 1)[1] for line in ps} \
        == {"init", "ps -o pid,args"}, ps

    # The console log through the API.
    log = env.cli("console", "log", "show", "vm1").stdout
    assert BANNER in log and "hostname: vm1" in log, log
    last = env.cli("console", "log", "show", "--lines", "1", "vm1").stdout
    # the console's own last words: the shell it offers (askfirst)
    assert last.strip() == "Please press Enter to activate this console.", \
        repr(last)
    assert len(last.strip().splitlines()) == 1


def _cpu_ns(env, uuid) -> int:
    return int(env.cgroup("cpuacct", uuid, "cpuacct.usage"))


def _wait_cpu_progress(env, uuid, what: str) -> None:
    """The guest's CPU time grows by 20 ms (the busy loop runs)."""
    a = _cpu_ns(env, uuid)
    wait_for(lambda: _cpu_ns(env, uuid) - a > 20_000_000, 10, what=what)


def test_lifecycle_through_cli(env, vm1):
    uuid = vm1
    pid0 = env.init_pid(uuid)
    assert env.console(uuid).count(BANNER) == 1

    # Soft reboot: init is asked to shut down (its shutdown actions run),
    # then a new init boots.
    t0 = time.monotonic()
    env.cli("server", "reboot", "vm1")
    env.wait_status("vm1", "ACTIVE", timeout=30)
    wait_for(lambda: env.console(uuid).count(BANNER) == 2, 10,
             what="second boot banner")
    timing("soft reboot -> ACTIVE", time.monotonic() - t0)
    pid1 = env.init_pid(uuid)
    assert pid1 != pid0 and env.init_alive(uuid)
    log = env.cli("console", "log", "show", "vm1").stdout
    assert log.count(BANNER) == 2, log
    assert log.count(SHUTDOWN_BANNER) == 1, log  # it was a clean, soft one

    # Hard reboot: killed, not asked -- no shutdown banner this time.
    t0 = time.monotonic()
    env.cli("server", "reboot", "--hard", "vm1")
    env.wait_status("vm1", "ACTIVE", timeout=30)
    wait_for(lambda: env.console(uuid).count(BANNER) == 3, 10,
             what="third boot banner")
    timing("hard reboot -> ACTIVE", time.monotonic() - t0)
    pid2 = env.init_pid(uuid)
    assert pid2 not in (pid0, pid1) and env.init_alive(uuid)
    assert env.console(uuid).count(SHUTDOWN_BANNER) == 1

    # A file written inside survives stop/start.
    token = uuid_mod.uuid4().hex
    env.exec(uuid, ["sh", "-c", f"echo {token} > /root/marker && sync"])
    t0 = time.monotonic()
    env.cli("server", "stop", "vm1")
    srv = env.wait_status("vm1", "SHUTOFF", timeout=30)
    timing("stop -> SHUTOFF", time.monotonic() - t0)
    assert srv.power_state == 4, srv.power_state
    assert not env.init_alive(uuid)
    procs = env.group_procs(uuid)
    assert all(not pids for pids in procs.values()), procs
    assert not [m for m in open("/proc/self/mounts").read().splitlines()
                if uuid in m.split()[1]], "root still mounted while SHUTOFF"

    t0 = time.monotonic()
    env.cli("server", "start", "vm1")
    env.wait_status("vm1", "ACTIVE", timeout=30)
    timing("start -> ACTIVE", time.monotonic() - t0)
    assert env.init_alive(uuid)
    assert env.exec(uuid, ["cat", "/root/marker"]).stdout.strip() == token

    # Pause freezes the guest: a busy loop inside stops using CPU.
    busy = env.exec(uuid, ["sh", "-c", "n=0; while [ ! -e /tmp/stop ] && "
                           "[ $n -lt 3000000 ]; do n=$((n+1)); done"],
                    background=True)
    try:
        # (the host is shared: wait for progress rather than a CPU share)
        _wait_cpu_progress(env, uuid, "busy loop running")
        env.cli("server", "pause", "vm1")
        srv = env.wait_status("vm1", "PAUSED", timeout=30)
        assert srv.power_state == 3
        assert env.cgroup("freezer", uuid, "freezer.state") == "FROZEN"
        a = _cpu_ns(env, uuid)
        time.sleep(0.5)
        assert _cpu_ns(env, uuid) == a, "a paused guest used CPU"
        assert busy.poll() is None

        env.cli("server", "unpause", "vm1")
        env.wait_status("vm1", "ACTIVE", timeout=30)
        assert env.cgroup("freezer", uuid, "freezer.state") == "THAWED"
        _wait_cpu_progress(env, uuid, "guest running again")
        env.exec(uuid, ["touch", "/tmp/stop"])
        busy.wait(timeout=20)
    finally:
        if busy.poll() is None:
            # after a failure the guest may be frozen; deleting it at
            # teardown kills the loop (and its nsenter parent) anyway
            with contextlib.suppress(Exception):
                env.exec(uuid, ["touch", "/tmp/stop"], check=False,
                         timeout=5)
                busy.wait(timeout=20)

    # Delete leaves nothing of the instance on the host.
    env.record(uuid)
    t0 = time.monotonic()
    env.cli("server", "delete", "--wait", "vm1")
    timing("CLI server delete --wait", time.monotonic() - t0)
    assert env.cli("server", "show", "vm1", check=False).returncode != 0
    assert env.leftovers(uuid) == []


def _tar_without_init(path: str, full: str) -> None:
    """The busybox image minus /sbin/init."""
    with tarfile.open(full) as src, tarfile.open(path, "w") as dst:
        for member in src.getmembers():
            if member.name.lstrip("./") == "sbin/init":
                continue
            dst.addfile(member, src.extractfile(member)
                        if member.isfile() else None)


@pytest.mark.parametrize("case", ["command_line", "no_init"])
def test_spawn_failure_is_error_with_fault_and_no_leftovers(env, case):
    tar = os.path.join(env.tmp, "busybox.tar")
    if not os.path.exists(tar):
        build_busybox_rootfs(tar)
    name = f"broken-{case}"
    if case == "command_line":
        env.dep.manage("image", "import", name, tar,
                       "--property", "os_command_line=/nope")
        cause = "/nope"
    else:
        broken = os.path.join(env.tmp, "noinit.tar")
        _tar_without_init(broken, tar)
        env.dep.manage("image", "import", name, broken)
        cause = "/sbin/init"
    t0 = time.monotonic()
    env.cli("server", "create", "--image", name, "--flavor", "m1.tiny",
            "--nic", "none", f"vm-{case}")
    env.wait_status(f"vm-{case}", "ERROR", timeout=30)
    timing(f"API create -> ERROR ({case})", time.monotonic() - t0)
    shown = env.cli_json("server", "show", f"vm-{case}")
    assert shown["status"] == "ERROR", shown
    fault = shown.get("fault") or {}
    message = fault.get("message", "") + " " + str(fault.get("details", ""))
    print(f"\nE2E-FAULT {case}: {fault.get('message')!r}")
    assert cause in message, fault
    assert "No such file" in message or "not found" in message.lower() \
        or "ENOENT" in message, fault
    assert env.leftovers(shown["id"]) == []
    env.cli("server", "delete", "--wait", f"vm-{case}")
