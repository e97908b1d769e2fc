"""End to end: rescue and suspend of real guests through the real
openstack CLI and openstacksdk.

One all-in-one (container driver, SQLite, the power-state sync every
second). ``vm1`` (busybox, a port on the project network): a file written
before ``server rescue`` is at /mnt inside the rescue guest (the guest
exec path), root's password there is the one asked for, the IP is the
same; a file written at /mnt is in the root after ``server unrescue``; a
hard reboot of a rescued server and an unrescue of one not in rescue are
409s. ``pyct-all-in-one`` SIGKILLed and started again while the server
is rescued keeps it rescued (same rescue init, /mnt there) and unrescue
works after. ``server suspend``: a busy loop in the guest stops using CPU
(cpuacct does not move over 1 s), the 2.84 event says the mode (freeze:
this host's criu is absent or fails ``criu check``), a restart keeps it
suspended and frozen, ``server resume`` keeps its init. Deleting a
rescued server leaves neither root on the host.
"""

from __future__ import annotations

import json
import os
import signal
import time

import pytest

from tests.privileged.e2e_fixtures import deployment, mounts_with, timing
from tests.privileged.test_debian_ssh import free_pool
from tests.privileged.test_e2e_resize import vm1  # noqa: F401 - fixture
from tests.privileged.test_e2e_root_password import \
    _matches as password_matches
from tests.waiting import wait_for

BUSY = ["/bin/sh", "-c", "while :; do :; done"]


@pytest.fixture(scope="module")
def env():
    with deployment("rescue", {"network": {"pool_cidr": free_pool()},
                               "DEFAULT": {"sync_power_state_interval": 1,
                                           "shutdown_timeout": 5}}) as e:
        yield e


def ip_of(env, uuid: str) -> str:
    return env.exec(uuid, ["sh", "-c", "ip -4 -o addr show eth0"]
                    ).stdout.split()[3].split("/")[0]


def usage(env, uuid: str) -> int:
    return int(env.cgroup("cpuacct", uuid, "cpuacct.usage"))


def restart(env) -> None:
    """SIGKILL the all-in-one (its compute service) and start it again."""
    env.service.kill(signal.SIGKILL)
    env.start()


def test_rescue_and_unrescue_through_the_cli(env, vm1):
    env.exec(vm1, ["sh", "-c", "echo before > /before-rescue"])
    addresses, ip = env.server(vm1).addresses, ip_of(env, vm1)
    t0 = time.monotonic()
    env.cli("server", "rescue", "--password", "Rescue-pw1", "vm1")
    env.wait_status(vm1, "RESCUE", timeout=60)
    timing("CLI rescue -> RESCUE", time.monotonic() - t0)
    assert env.exec(vm1, ["cat", "/mnt/before-rescue"]).stdout == "before\n"
    assert env.exec(vm1, ["test", "-e", "/before-rescue"],
                    check=False).returncode == 1
    hashed = env.exec(vm1, ["grep", "^root:", "/etc/shadow"]
                      ).stdout.split(":")[1]
    assert password_matches("Rescue-pw1", hashed)
    assert ip_of(env, vm1) == ip and env.server(vm1).addresses == addresses
    env.exec(vm1, ["sh", "-c", "echo fixed > /mnt/during-rescue"])
    # Nova: no hard reboot of a rescued server, no second rescue
    for args in (("server", "reboot", "--hard", "vm1"),
                 ("server", "rescue", "vm1")):
        res = env.cli(*args, check=False)
        assert res.returncode != 0 and "409" in res.stderr + res.stdout
    t0 = time.monotonic()
    env.sdk.compute.unrescue_server(vm1)
    env.wait_status(vm1, "ACTIVE", timeout=60)
    timing("SDK unrescue -> ACTIVE", time.monotonic() - t0)
    assert env.exec(vm1, ["cat", "/during-rescue", "/before-rescue"]
                    ).stdout == "fixed\nbefore\n"
    assert ip_of(env, vm1) == ip and env.server(vm1).addresses == addresses
    res = env.cli("server", "unrescue", "vm1", check=False)
    assert res.returncode != 0 and "409" in res.stderr + res.stdout


def test_compute_restart_keeps_a_rescued_server_rescued(env, vm1):
    env.exec(vm1, ["sh", "-c", "echo mine > /mine"])
    env.sdk.compute.rescue_server(vm1, admin_pass="Rescue-pw2")
    env.wait_status(vm1, "RESCUE", timeout=60)
    pid = env.init_pid(vm1)
    restart(env)
    time.sleep(3)  # recovery and a few power syncs
    env.wait_status(vm1, "RESCUE", timeout=60)
    assert env.init_pid(vm1) == pid and env.init_alive(vm1)
    assert env.exec(vm1, ["cat", "/mnt/mine"]).stdout == "mine\n"
    env.exec(vm1, ["sh", "-c", "echo after-restart > /mnt/kept"])
    env.cli("server", "unrescue", "vm1")
    env.wait_status(vm1, "ACTIVE", timeout=60)
    assert env.exec(vm1, ["cat", "/kept"]).stdout == "after-restart\n"


def _admin_json(env, *args: str):
    """``-f json`` output of the CLI as the admin (events' ``details``
    are the admin's, as in Nova)."""
    return json.loads(env.dep.openstack(
        "--os-compute-api-version", "2.84", *args, "-f", "json",
        cloud="admin").stdout)


def _suspend_event(env, uuid: str) -> dict:
    acts = _admin_json(env, "server", "event", "list", uuid)
    req = next(a["Request ID"] for a in acts if a["Action"] == "suspend")
    shown = _admin_json(env, "server", "event", "show", uuid, req)
    events = shown["events"]
    if isinstance(events, str):
        events = json.loads(events)
    return events[0]


def test_suspend_freezes_survives_restart_and_resumes(env, vm1):
    busy = env.exec(vm1, BUSY, background=True)
    try:
        before = usage(env, vm1)
        # the loop runs (a loaded host gives it less than a CPU: 76 ms in
        # 0.5 s was seen at load 26, so wait for 100 ms of it)
        wait_for(lambda: usage(env, vm1) - before > 100_000_000, 10,
                 "the busy loop to run")
        pid = env.init_pid(vm1)
        env.sdk.compute.suspend_server(vm1)
        srv = env.wait_status(vm1, "SUSPENDED", timeout=30)
        assert srv.power_state == 7  # Nova's SUSPENDED
        assert env.cgroup("freezer", vm1, "freezer.state") == "FROZEN"
        used = usage(env, vm1)
        time.sleep(1.0)
        assert usage(env, vm1) == used
        event = _suspend_event(env, vm1)
        assert event["event"] == "compute_suspend_instance"
        assert event["result"] == "Success"
        assert event["details"].startswith("frozen"), event
        assert "criu" in event["details"].lower(), event  # why not CRIU
        # and pyct-compute's log says it too, at INFO
        assert f"suspended {vm1}: frozen" in env.service.output()
        # a paused-or-suspended table: no pause of a suspended server
        res = env.cli("server", "pause", "vm1", check=False)
        assert res.returncode != 0 and "409" in res.stderr + res.stdout

        restart(env)
        time.sleep(3)  # recovery and a few power syncs
        env.wait_status(vm1, "SUSPENDED", timeout=60)
        assert env.cgroup("freezer", vm1, "freezer.state") == "FROZEN"
        assert usage(env, vm1) == used

        env.cli("server", "resume", "vm1")
        env.wait_status(vm1, "ACTIVE", timeout=30)
        assert env.init_pid(vm1) == pid
        wait_for(lambda: usage(env, vm1) > used + 50_000_000, 5,
                 "the loop runs again")
    finally:
        # by its pidfd (a frozen loop dies when thawed); its exec session's
        # launcher went with the restart, so its end is seen in /proc
        busy.kill()
        if env.server(vm1).status == "SUSPENDED":
            env.sdk.compute.resume_server(vm1)
            env.wait_status(vm1, "ACTIVE", timeout=30)
        wait_for(lambda: not os.path.exists(f"/proc/{busy.pid}"), 10,
                 "the busy loop gone")
        busy.close()


def test_delete_of_a_rescued_server_cleans_both_roots(env):
    srv = env.cli_json("server", "create", "--image", "busybox", "--flavor",
                       "m1.tiny", "--nic", "auto", "--wait", "vm2")
    uuid = srv["id"]
    env.cli("server", "rescue", "vm2")
    env.wait_status(uuid, "RESCUE", timeout=60)
    rescue_root = os.path.join(env.base_dir, "roots", "instances",
                               uuid + "-rescue")
    assert os.path.isdir(rescue_root)
    env.cli("server", "delete", "--wait", "vm2")
    assert env.leftovers(uuid) == []
    assert not os.path.exists(rescue_root)
    assert not mounts_with(uuid)
