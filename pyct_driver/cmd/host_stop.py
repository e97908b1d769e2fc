"""``pyct-manage host stop``: leave nothing of pyct running on this host.

The one command that stops what a compute service (``make run``'s
all-in-one included) started on its host, from any state: a service still
running gets SIGTERM and is waited for (it holds the host's lock,
``compute.host_lock``); every guest still running is powered off through
the normal stop path (``compute.host.stop_guests``: the API then shows it
SHUTOFF and ``server start`` brings it back once a service runs again);
then the launcher stops and the cgroup parent, the project networks'
bridges and their addresses go (``compute.host.release``). With
``--keep-running`` it changes nothing while a service or a guest runs and
lists what is left instead. Exit status 0 when what was asked for is done,
1 when something could not be stopped or removed (printed).
"""

from __future__ import annotations

import os
import signal
import time

from oslo_config import cfg

from pyct_driver import exception
from pyct_driver.cmd import compute as compute_cmd
from pyct_driver.compute import host as host_mod
from pyct_driver.compute import host_lock as lock_mod
from pyct_driver.db.engine import Database


def add_parser(subparsers) -> object:
    """``host`` and its ``stop`` action; returns the actions' parser (the
    other ``host`` actions are added to it)."""
    host = subparsers.add_parser("host", help="a compute host as a whole")
    hsub = host.add_subparsers(dest="action", required=True)
    stop = hsub.add_parser(
        "stop", help="stop the compute service, shut down every guest of "
                     "this host cleanly (they show SHUTOFF), then the "
                     "launcher, and remove the cgroup parent and bridges")
    stop.add_argument("--keep-running", action="store_true",
                      help="if a service or guest runs, change nothing and "
                           "list what is left")
    stop.add_argument("--service-timeout", type=float, default=120.0,
                      help="seconds to wait for a running service to exit")
    return hsub


def _stop_service(lock: lock_mod.HostLock, timeout: float) -> None:
    """SIGTERM the compute service holding the host; wait for its exit."""
    held = lock.holder()
    if held is None:
        return
    pid, role = held
    if role != lock_mod.COMPUTE or pid <= 0:
        raise exception.HostBusy(host=lock.host, pid=pid, role=role)
    print(f"stopping the compute service of host {lock.host} (pid {pid})")
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        pass
    deadline = time.monotonic() + timeout
    while lock.holder() is not None:
        if time.monotonic() > deadline:
            raise exception.HostBusy(host=lock.host, pid=pid,
                                     role=f"still running after {timeout}s")
        time.sleep(0.1)


def run(conf: cfg.ConfigOpts, db: Database) -> int:
    cmd = conf.command
    lock = compute_cmd.host_lock(conf)
    held = lock.holder()
    if cmd.keep_running and held is not None:
        print(f"host {conf.host} is held by process {held[0]} ({held[1]}); "
              "nothing changed")
        return 0
    _stop_service(lock, cmd.service_timeout)
    lock.acquire(lock_mod.HOST_STOP)
    try:
        manager = compute_cmd.build_manager(conf, db, notify=False)
        if cmd.keep_running:
            now = host_mod.holdings(manager)
            if now.running:
                print(host_mod.describe_left(manager, now))
                print("nothing changed (--keep-running)")
                return 0
        t0 = time.monotonic()
        stopped = [] if cmd.keep_running else host_mod.stop_guests(manager)
        if stopped:
            print(f"shut down {len(stopped)} guest(s) in "
                  f"{time.monotonic() - t0:.1f}s, now SHUTOFF: "
                  f"{', '.join(stopped)}")
        before, after = host_mod.release(manager)
        if not after.empty():
            print(f"left on host {conf.host}: "
                  + (host_mod.describe_left(manager, after) if after.running
                     else host_mod.describe(after)))
            return 1
        released = ("" if before.empty()
                    else f"released {host_mod.describe(before)}; ")
        print(f"{released}nothing of pyct runs on host {conf.host} any more")
        return 0
    finally:
        lock.release()
