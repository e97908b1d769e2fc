"""`make run`, Ctrl-C, `make stop` and `make test`'s leak check, for real.

One all-in-one started exactly as `make run` starts it
(``make_run_fixtures``), on its own state dir, with project networks (a
pool no host route overlaps) and the metadata service on (its address on
every bridge; a free port, so no other deployment's listener is
disturbed). The tests run in order on it:

1. Ctrl-C (SIGINT) with no guest running -- one booted with a port and
   deleted, one stopped (SHUTOFF: its bridge and group stay) -- stops all
   it started: the launcher, the cgroup parent, the bridge with its gateway
   and metadata addresses, every mount and loop device; the leak check's
   before/after logic finds nothing new of ours. A second `make run` then
   works and starts the stopped server again.
2. Around a "suite" -- another deployment whose metadata service uses the
   same address and port boots a guest with a port and deletes it, while
   the all-in-one boots one more guest after the baseline; each guest gets
   its own metadata, from its own deployment -- and a Ctrl-C with guests
   running, which logs which ones, the launcher's pid and `make stop`, and
   leaves them and the launcher running: the leak check run as `make
   test` runs it, with this all-in-one's state dir as the foreign one,
   blames nothing of either; without the attribution it blames the
   all-in-one's new resources, and a cgroup the "suite" leaks is blamed.
3. `make stop KEEP_GUESTS=1` changes nothing and lists what is left;
   `make stop` shuts the guests down through the normal path (SHUTOFF, a
   "stop" action) and leaves nothing at all (timed); a second `make run`
   starts them again, and `make stop` with the all-in-one still running
   stops it too; a third `make run` works.
"""

from __future__ import annotations

import glob
import json
import os
import signal
import subprocess
import sys
import time
import uuid as uuid_mod

import pytest

from pyct_driver.virt.network.bridge import bridge_name, veth_name
from pyct_driver.virt.process.caller.client import LauncherClient
from tests.privileged.e2e_fixtures import (
    CGROUP_ROOT, E2E, loops_with, mounts_with, processes_with, timing)
from tests.leak_check_tool import PATH as LEAK_CHECK, leak_check
from tests.privileged.make_run_fixtures import MakeRun, make
from tests.privileged.net_e2e_fixtures import (
    NetE2E, links, pick_pool)
from tests.services import free_port
from tests.waiting import wait_gone

METADATA_IP = "169.254.169.254"


@pytest.fixture(scope="module")
def aio():
    env = E2E("makestop")
    try:
        run = MakeRun(env)
        port = free_port()
        env.metadata_port = free_port()
        run.prepare({"container": {"cgroup_parent": env.parent},
                     "network": {"pool_cidr": pick_pool()},
                     "metadata": {"port": env.metadata_port},
                     "api": {"port": port},
                     "compute": {"shutdown_timeout": 20}}, port)
        env.run = run
        env.links_seen = set()
        env.veths = {}  # uuid -> its host-side veth names
        env.before = leak_check.snapshot()  # before anything of this module
        yield env
    finally:
        env.close()


# -- looking at the host --------------------------------------------------

def _launcher_pid(env: E2E) -> int | None:
    """The live launcher's pid (its pid file goes when it stops)."""
    pid = LauncherClient(env.launcher_dir).launcher_pid()
    return pid if pid and os.path.exists(f"/proc/{pid}") else None


def _parents(env: E2E) -> list[str]:
    return glob.glob(os.path.join(CGROUP_ROOT, "*", env.parent))


def _bridges(env: E2E) -> set[str]:
    admin = env.dep.sdk_connection("admin")
    return {bridge_name(n.id) for n in admin.network.networks()}


def _veths(env: E2E, uuid: str) -> set[str]:
    return {veth_name(p.id) for p in env.sdk.network.ports(device_id=uuid)}


def _metadata_address_links() -> list[str]:
    out = subprocess.run(["ip", "-o", "-4", "addr", "show"],
                         capture_output=True, text=True, check=True).stdout
    return [line.split()[1] for line in out.splitlines()
            if f" {METADATA_IP}/32 " in line]


def _ours(env: E2E, text: str, extra: tuple[str, ...] = ()) -> bool:
    """Whether a leak-check line is about this module's resources."""
    return any(m in text for m in (env.tmp, env.parent, *extra))


def _our_leaks(env: E2E, before) -> list[str]:
    """The leak check's before/after logic, limited to what concerns this
    module (other test runs on this shared host come and go)."""
    found = leak_check.new_items(before, leak_check.snapshot(), [])
    return sorted(t for t in _blamed(found)
                  if _ours(env, t, tuple(env.links_seen)))


def _blamed(found) -> list[str]:
    leaks, _ = found
    return [" ".join((item.text, *item.refs))
            for items in leaks.values() for item in items.values()]


def _left_on_host(env: E2E) -> list[str]:
    """Everything of the all-in-one still on the host, polled briefly
    (links go on a background thread, mounts lazily)."""
    def look():
        found = [f"launcher {p}" for p in [_launcher_pid(env)] if p]
        found += [f"cgroup {p}" for p in _parents(env)]
        found += [f"link {n}" for n in links() & env.links_seen]
        found += [f"mount {m}" for m in mounts_with(env.tmp)]
        found += [f"loop {d}" for d in loops_with(env.tmp)]
        found += [f"process {p}" for p in processes_with(env.tmp)]
        return found
    return wait_gone(look, 10.0)


# -- acting ---------------------------------------------------------------

def _boot(env: E2E, name: str) -> str:
    """A busybox server with a port on the project network; its uuid."""
    image = env.sdk.image.find_image("busybox", ignore_missing=False)
    srv = env.sdk.compute.create_server(name=name, image_id=image.id,
                                        flavor_id="1", networks="auto")
    env.wait_status(srv.id, "ACTIVE", timeout=60)
    env.record(srv.id)  # remember its init for the cleanup's check
    env.veths[srv.id] = _veths(env, srv.id)
    env.links_seen |= _bridges(env) | env.veths[srv.id]
    return srv.id


def _interrupt(env: E2E) -> str:
    """Ctrl-C: SIGINT the all-in-one, wait for its exit; its log."""
    proc = env.service
    proc.proc.send_signal(signal.SIGINT)
    assert proc.proc.wait(timeout=120) == 0, proc.output()[-3000:]
    return proc.output()[proc.log_offset:]


def _metadata(env: E2E, uuid: str) -> dict:
    """The guest's own meta_data.json, fetched inside it (busybox wget)
    from the metadata address and the all-in-one's port."""
    url = (f"http://{METADATA_IP}:{env.metadata_port}"
           "/openstack/latest/meta_data.json")
    got = env.exec(uuid, ["wget", "-O", "-", url], check=False, timeout=30)
    assert got.returncode == 0, (uuid, got.stdout, got.stderr)
    return json.loads(got.stdout)


def _inits_alive(env: E2E, uuids: list[str]) -> list[bool]:
    return [env.init_alive(u) for u in uuids]


# -- the tests ------------------------------------------------------------

def test_ctrl_c_without_running_guest_stops_all_it_started(aio):
    env = aio
    env.run.start()
    gone = _boot(env, "gone")
    env.cli("server", "delete", "--wait", gone)
    kept = _boot(env, "kept")
    env.cli("server", "stop", kept)
    env.wait_status(kept, "SHUTOFF")
    bridge = bridge_name(env.sdk.network.find_network("private").id)
    assert bridge in links() and bridge in _metadata_address_links()
    launcher = _launcher_pid(env)
    assert launcher and _parents(env)

    log = _interrupt(env)
    assert _left_on_host(env) == []
    assert bridge not in _metadata_address_links()
    assert "no guest runs on" in log and "released" in log, log[-3000:]
    assert f"pid {launcher}" in log, log[-3000:]
    assert _our_leaks(env, env.before) == []

    # a second `make run` works, and the stopped server starts again
    env.run.start()
    assert env.server(kept).status == "SHUTOFF"
    env.cli("server", "start", kept)
    env.wait_status(kept, "ACTIVE")
    assert env.init_alive(kept) and bridge in links()


def test_ctrl_c_with_guests_running_and_the_leak_check(aio, tmp_path):
    env = aio
    uuids = [u for u in (s.id for s in env.sdk.compute.servers())
             if env.server(u).status == "ACTIVE"]
    uuids.append(_boot(env, "second"))
    baseline = str(tmp_path / "baseline.json")
    cmd = [sys.executable, LEAK_CHECK]
    subprocess.run([*cmd, "--save", baseline], check=True,
                   capture_output=True)

    # "the suite": the all-in-one keeps working (a guest more, made after
    # the baseline) while another deployment, its metadata service on the
    # same address and port, boots a guest with a port and deletes it;
    # each guest gets its own metadata from its own deployment
    uuids.append(_boot(env, "third"))
    suite = NetE2E("makestop-suite", metadata_port=env.metadata_port)
    try:
        suite.prepare()
        suite.start()
        s1 = suite.create("s1")
        suite.wait_active(s1)
        for who, uuid in ((suite, s1), (env, uuids[-1])):
            assert _metadata(who, uuid)["uuid"] == uuid
        suite.check_metadata_listeners()
        suite.cli("server", "delete", "--wait", s1)
    finally:
        suite.close()
    suite_marks = (suite.tmp, suite.parent)
    launcher = _launcher_pid(env)
    log = _interrupt(env)
    assert f"{len(uuids)} guest(s) keep running" in log, log[-3000:]
    assert f"pid {launcher}" in log and "make stop" in log, log[-3000:]
    assert all(_inits_alive(env, uuids)) and _launcher_pid(env) == launcher

    # as `make test` runs it, with this all-in-one as `make run`'s
    foreign = ["--foreign-state", env.state_path]
    out = subprocess.run([*cmd, "--against", baseline, *foreign],
                         capture_output=True, text=True)
    blamed = [ln for ln in out.stdout.splitlines() if ln.startswith("  ")]
    ours = [ln for ln in blamed if _ours(env, ln, suite_marks)
            or any(b in ln for b in env.links_seen)]
    assert ours == [], out.stdout
    assert "belong to the deployment(s) at" in out.stdout, out.stdout
    assert out.returncode == 0 or blamed, out  # others' runs may leak
    # the attribution is what spares it: the all-in-one's resources made
    # after the baseline are blamed without it (same logic, in-process)
    saved = leak_check.load(baseline)
    strict = _blamed(leak_check.new_items(saved, leak_check.snapshot(), []))
    assert any(uuids[-1] in t and env.parent in t for t in strict), strict
    assert env.veths[uuids[-1]] and all(
        any(v in t for t in strict) for v in env.veths[uuids[-1]]), strict
    # and what the suite leaks is still blamed
    leaked = os.path.join(CGROUP_ROOT, "pids",
                          f"pyct-test-leak-{uuid_mod.uuid4().hex[:8]}")
    os.mkdir(leaked)
    try:
        caught = subprocess.run([*cmd, "--against", baseline, *foreign],
                                capture_output=True, text=True)
    finally:
        os.rmdir(leaked)
    assert caught.returncode == 1 and f"  {leaked}\n" in caught.stdout, \
        caught.stdout
    assert env.parent not in caught.stdout, caught.stdout
    env.running = uuids


def test_make_stop_shuts_guests_down_and_leaves_nothing(aio):
    env = aio
    uuids = env.running
    launcher = _launcher_pid(env)
    kept = make("stop", env.state_path, "KEEP_GUESTS=1")
    assert f"{len(uuids)} guest(s) keep running" in kept.stdout, kept
    assert f"pid {launcher}" in kept.stdout, kept
    assert all(_inits_alive(env, uuids)) and _launcher_pid(env) == launcher

    t0 = time.monotonic()
    done = make("stop", env.state_path)
    timing(f"make stop, {len(uuids)} running guests", time.monotonic() - t0)
    assert f"shut down {len(uuids)} guest(s)" in done.stdout, done
    assert "nothing of pyct runs" in done.stdout, done
    assert not any(_inits_alive(env, uuids))
    assert _left_on_host(env) == []
    assert _our_leaks(env, env.before) == []

    # a second `make run`: the guests are SHUTOFF after a "stop" action
    env.run.start()
    for uuid in uuids:
        assert env.server(uuid).status == "SHUTOFF"
        actions = [a.action for a in env.sdk.compute.server_actions(uuid)]
        assert "stop" in actions, actions
    env.cli("server", "start", uuids[0])
    env.wait_status(uuids[0], "ACTIVE")

    # `make stop` while the all-in-one runs stops it as well
    service = env.service
    t0 = time.monotonic()
    done = make("stop", env.state_path)
    timing("make stop, all-in-one running, 1 guest", time.monotonic() - t0)
    assert "stopping the compute service" in done.stdout, done
    assert not service.alive() and service.proc.returncode == 0
    assert "shut down 1 guest(s)" in done.stdout, done
    assert _left_on_host(env) == []

    # and `make run` once more works; its exit leaves nothing
    env.run.start()
    env.cli("server", "delete", "--wait", *uuids)
    log = _interrupt(env)
    assert "released" in log, log[-3000:]
    assert _left_on_host(env) == []
    assert _our_leaks(env, env.before) == []


def test_a_second_service_on_the_same_host_is_refused(aio):
    env = aio
    first = env.run.start()
    second = subprocess.run(env.run.argv, capture_output=True, text=True,
                            timeout=120)
    said = second.stdout + second.stderr
    assert second.returncode == 1, said
    assert f"held by process {first.pid} (compute service)" in said, said
    assert first.alive()
    _interrupt(env)
