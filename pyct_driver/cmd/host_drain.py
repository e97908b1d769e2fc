"""``pyct-manage host drain HOST``: empty a compute host for maintenance.

The host's compute service is disabled first (reason "draining", so new
builds avoid it and nothing lands there while it empties), then each of
its servers is cold-migrated away, one after another, exactly as the
``migrate`` API action does it (``api.server_migrate``: the scheduler's
pick among the other hosts, the same migration records and instance
actions), and the move confirmed once the server reached VERIFY_RESIZE,
so the host keeps no copy. Each server gets one line: where it went and
how long it took, or why it was not moved (a server busy with another
task, in ERROR, or one no host can take stays). Exit status 0 when the
host is empty, 1 otherwise. The service stays disabled: ``openstack
compute service set --enable`` brings the host back.
"""

from __future__ import annotations

import time
from typing import Callable

from oslo_config import cfg

from pyct_driver import exception, states
from pyct_driver.api import server_migrate
from pyct_driver.api.app import build_scheduler
from pyct_driver.api.scheduler import COMPUTE_BINARY, Scheduler
from pyct_driver.context import get_admin_context
from pyct_driver.db import actions as db_actions
from pyct_driver.db import instances as db_instances
from pyct_driver.db import resizes as db_resizes
from pyct_driver.db import services as db_services
from pyct_driver.db.engine import Database
from pyct_driver.rpc.client import ComputeClient


def add_to(hsub) -> None:
    drain = hsub.add_parser(
        "drain", help="disable a compute host and cold-migrate each of "
                      "its servers to other hosts (confirmed), reporting "
                      "each")
    drain.add_argument("drain_host", metavar="HOST", help="the host")
    drain.add_argument("--timeout", type=float, default=900.0,
                       help="seconds each server's move may take")


class _Mover:
    """What ``server_migrate.begin`` needs of the API's state."""

    def __init__(self, db: Database, compute: ComputeClient,
                 scheduler: Scheduler) -> None:
        self.db, self.compute, self.scheduler = db, compute, scheduler


def _wait(done: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            raise exception.PyctError("it did not finish in time")
        time.sleep(0.2)


def _move(mover: _Mover, inst: dict, timeout: float) -> str:
    """Migrate ``inst`` away and confirm; returns where it went."""
    db, uuid, ctxt = mover.db, inst["uuid"], get_admin_context()
    dest = server_migrate.destination(mover, inst, inst["flavor"])
    change = server_migrate.begin(mover, ctxt, inst, dest)
    mig = change["migration_uuid"]
    _wait(lambda: db_instances.get(db, uuid)["task_state"] is None,
          timeout)
    if db_resizes.move_of(db, mig)["status"] != "finished":
        fault = db_actions.fault_latest(db, [uuid]).get(uuid)
        raise exception.PyctError(
            "the migration failed: " + (fault["message"] if fault
                                        else "see its instance actions"))
    db_resizes.claim(db, uuid, "finished", "confirming")
    db_actions.action_start(db, uuid, "confirmResize", ctxt.request_id,
                            ctxt.user_id, ctxt.project_id)
    mover.compute.confirm_resize(ctxt, dest, uuid, mig)
    _wait(lambda: db_resizes.move_of(db, mig)["status"] in (
        "confirmed", "error"), timeout)
    if db_resizes.move_of(db, mig)["status"] != "confirmed":
        raise exception.PyctError(f"moved to {dest}, but the confirm "
                                  "failed: its copy may be left here")
    return dest


def drain(db: Database, compute: ComputeClient, scheduler: Scheduler,
          host: str, timeout: float = 900.0,
          say: Callable[[str], None] = print) -> int:
    """Disable ``host`` and move its servers away; 0 if it is empty."""
    db_services.service_set_disabled(db, host, COMPUTE_BINARY, True,
                                     "draining")  # ServiceNotFound
    say(f"host {host} disabled; moving its servers")
    mover, left = _Mover(db, compute, scheduler), 0
    for inst in db_instances.list_(db, host=host):
        label = f"{inst['uuid']} ({inst['name']})"
        start = time.monotonic()
        try:
            if inst["vm_state"] not in (states.ACTIVE, states.STOPPED) \
                    or inst["task_state"]:
                raise exception.PyctError(
                    f"vm_state {inst['vm_state']}, task_state "
                    f"{inst['task_state']}")
            dest = _move(mover, inst, timeout)
        except exception.PyctError as err:
            say(f"{label}: not moved: {err.message}")
            left += 1
            continue
        say(f"{label}: moved to {dest}, confirmed "
            f"({time.monotonic() - start:.1f} s)")
    say(f"host {host} is empty" if not left
        else f"host {host} still has {left} server(s)")
    return 1 if left else 0


def run(conf: cfg.ConfigOpts, db: Database) -> int:
    cmd = conf.command
    return drain(db, ComputeClient(conf), build_scheduler(conf, db),
                 cmd.drain_host, cmd.timeout)
