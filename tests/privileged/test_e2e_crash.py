"""End to end: real guests survive a crash of the compute service.

Two servers run under an all-in-one (SQLite with the in-process bus cannot
be shared by separate api/compute processes). The all-in-one is SIGKILLed;
the guests' inits keep running; a fresh all-in-one re-adopts them (same
inits, still ACTIVE/Running after several power syncs, and it can act on
them). Then one guest's init is killed behind pyct's back: the power sync
(every 2 s) shows it SHUTOFF, and `server start` brings it back. A guest
that runs `reboot` is brought back by the power sync (a "reboot" action in
its events), as the same server.
"""

from __future__ import annotations

import os
import signal
import time

import pytest

from tests.privileged.e2e_fixtures import deployment, timing
from tests.waiting import wait_for

SYNC = 2  # sync_power_state_interval, seconds


@pytest.fixture(scope="module")
def env():
    with deployment("crash", {"DEFAULT": {"sync_power_state_interval": SYNC}}
                    ) as e:
        yield e


def _boot_via_sdk(env, names):
    image = env.sdk.image.find_image("busybox", ignore_missing=False)
    t0 = time.monotonic()
    servers = [env.sdk.compute.create_server(
        name=n, image_id=image.id, flavor_id="1", networks="none")
        for n in names]
    for srv in servers:
        env.wait_status(srv.id, "ACTIVE", timeout=30)
    timing(f"SDK create x{len(names)} -> all ACTIVE (100 ms polling)",
           time.monotonic() - t0)
    return [srv.id for srv in servers]


def test_guests_survive_compute_crash_and_power_sync(env):
    uuids = _boot_via_sdk(env, ["crash1", "crash2"])
    inits = {u: (env.init_pid(u), env.record(u)["start_time"]) for u in uuids}

    # SIGKILL the whole service; the guests must not notice.
    old = env.service
    old.kill(signal.SIGKILL)
    assert not old.alive()
    time.sleep(0.5)
    for u in uuids:
        assert env.init_alive(u), f"guest {u} died with pyct-compute"

    t0 = time.monotonic()
    env.start()
    timing("all-in-one restart -> API up", time.monotonic() - t0)
    # Re-adopted: same inits, ACTIVE and Running across several syncs.
    time.sleep(2.5 * SYNC)
    for u in uuids:
        srv = env.wait_status(u, "ACTIVE", timeout=10)
        assert srv.power_state == 1, srv.power_state
        rec = env.record(u)
        assert (rec["pid"], rec["start_time"]) == inits[u], \
            "the guest was restarted instead of re-adopted"
        assert env.init_alive(u)
    # ...and the new service controls them.
    env.cli("server", "pause", "crash2")
    env.wait_status("crash2", "PAUSED")
    assert env.cgroup("freezer", uuids[1], "freezer.state") == "FROZEN"
    env.cli("server", "unpause", "crash2")
    env.wait_status("crash2", "ACTIVE")

    # Kill one guest's init out of band: the power sync notices.
    victim, other = uuids
    os.kill(inits[victim][0], signal.SIGKILL)
    t0 = time.monotonic()
    srv = env.wait_status(victim, "SHUTOFF", timeout=SYNC * 3 + 5)
    timing("init SIGKILL -> API SHUTOFF", time.monotonic() - t0)
    assert srv.power_state == 4
    assert env.server(other).status == "ACTIVE"
    assert env.init_alive(other)

    t0 = time.monotonic()
    env.cli("server", "start", "crash1")
    env.wait_status(victim, "ACTIVE", timeout=30)
    timing("server start after out-of-band kill -> ACTIVE",
           time.monotonic() - t0)
    assert env.init_alive(victim)
    assert env.init_pid(victim) != inits[victim][0]
    wait_for(lambda: env.console(victim).count(
        "pyct busybox guest booting") == 2, 10, what="second boot banner")
    # it stays up across the next syncs
    time.sleep(1.5 * SYNC)
    assert env.server(victim).status == "ACTIVE"
    assert env.init_alive(victim)


def test_crash_during_soft_reboot_is_recovered(env):
    """SIGKILL the service while busybox init is still shutting down (its
    shutdown takes ~2 s): on start-up the reboot is redone, not lost."""
    srv = env.sdk.compute.create_server(
        name="midreboot", image_id=env.sdk.image.find_image("busybox").id,
        flavor_id="1", networks="none")
    env.wait_status(srv.id, "ACTIVE")
    pid0 = env.init_pid(srv.id)
    env.cli("server", "reboot", "midreboot")
    wait_for(lambda: env.server(srv.id).task_state == "rebooting", 10,
             what="task_state rebooting")
    time.sleep(0.3)
    env.service.kill(signal.SIGKILL)
    # the reboot really was cut short: no new init has booted
    time.sleep(0.5)
    assert env.console(srv.id).count("pyct busybox guest booting") == 1
    t0 = time.monotonic()
    env.start()
    got = env.wait_status(srv.id, "ACTIVE", timeout=30)
    timing("restart (mid soft reboot) -> ACTIVE", time.monotonic() - t0)
    assert got.power_state == 1
    assert env.init_alive(srv.id) and env.init_pid(srv.id) != pid0
    wait_for(lambda: env.console(srv.id).count(
        "pyct busybox guest booting") == 2, 10, what="second boot banner")


def test_guest_that_reboots_itself_is_rebooted_by_the_power_sync(env):
    srv = env.sdk.compute.create_server(
        name="selfreboot", image_id=env.sdk.image.find_image("busybox").id,
        flavor_id="1", networks="none")
    env.wait_status(srv.id, "ACTIVE")
    wait_for(lambda: "pyct busybox guest booting" in env.console(srv.id), 10,
             what="first boot banner")
    pid0 = env.init_pid(srv.id)
    t0 = time.monotonic()
    env.exec(srv.id, ["/sbin/reboot"], check=False)
    wait_for(lambda: env.init_alive(srv.id)
             and env.init_pid(srv.id) != pid0, SYNC * 3 + 15,
             what="a new init after the guest's own reboot")
    timing("in-guest reboot -> running again (power sync)",
           time.monotonic() - t0)
    got = env.wait_status(srv.id, "ACTIVE", timeout=15)
    assert got.id == srv.id and got.power_state == 1
    wait_for(lambda: env.console(srv.id).count(
        "pyct busybox guest booting") == 2, 10, what="second boot banner")
    events = env.cli_json("server", "event", "list", srv.id)
    assert [e["Action"] for e in events].count("reboot") == 1, events
    # and it stays up across the next syncs (rebooted once, not again)
    time.sleep(1.5 * SYNC)
    assert env.server(srv.id).status == "ACTIVE"
    assert env.console(srv.id).count("pyct busybox guest booting") == 2
