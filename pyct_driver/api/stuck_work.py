"""The API's stuck-work task: builds and actions no compute host finishes.

RPC is at-most-once: a cast to a host that is down, or that dies after
it took the message, or a message the bus lost, would leave its server
in BUILD or in a task state until that host returns. Every API process
runs this task on ``[DEFAULT] stuck_work_interval``; it fails a build
older than ``instance_build_timeout`` and an action (a simple one, or a
resize, migration, revert, confirm, rebuild, evacuation, snapshot or
shelve: ``db.stuck_moves``) older than ``instance_action_timeout`` when
no host took the request, the host that took it is down, or its
handler ended without a result (the database was away longer than it
waited), with a fault naming the host. A request a live host is still
working on is left alone. Which process fails a given instance is
decided in the database (``db.stuck_work``), so several API processes
fail each stuck instance exactly once.
"""

from __future__ import annotations

import datetime
import threading

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.db import claim_models
from pyct_driver.db import services as db_services
from pyct_driver.db import stuck_work
from pyct_driver.db.engine import Database
from pyct_driver.db.models import utcnow

LOG = logging.getLogger(__name__)
BINARY = "pyct-compute"


class StuckWorkTask:
    """One API process's periodic check (``start``/``stop``)."""

    def __init__(self, db: Database, owner: str, build_timeout: int,
                 action_timeout: int, interval: float,
                 service_down_time: int) -> None:
        self.db = db
        self.owner = owner  # names this API process in the claims
        self.build_timeout = build_timeout
        self.action_timeout = action_timeout
        self.interval = interval
        self.down_time = service_down_time
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def _before(self, seconds: int) -> datetime.datetime | None:
        return (utcnow() - datetime.timedelta(seconds=seconds)
                if seconds > 0 else None)

    def run_once(self) -> int:
        """Fail what is stuck now; return how many this process failed."""
        found = stuck_work.find(self.db, self._before(self.build_timeout),
                                self._before(self.action_timeout))
        if not found:
            return 0
        services = {s["host"]: s for s in db_services.service_list(
            self.db, BINARY)}
        failed = 0
        for stuck in found:
            down = stuck.host is None or not db_services.is_up(
                services.get(stuck.host, {}), self.down_time)
            claim = stuck.claim
            state = None if claim is None else claim["state"]
            if state == claim_models.TIMED_OUT or (
                    state == claim_models.RUNNING and not down):
                continue  # given up already, or a live host works on it
            if stuck_work.give_up(self.db, stuck, self.owner,
                                  self._message(stuck, down, claim), down):
                failed += 1
                LOG.warning("%s", self._message(stuck, down, claim),
                            instance_uuid=stuck.uuid)
        return failed

    def _message(self, stuck: stuck_work.Stuck, down: bool,
                 claim: dict | None) -> str:
        what = stuck.what
        limit = self.build_timeout if stuck.build else self.action_timeout
        host = f"compute host {stuck.host}"
        if claim is not None and claim["state"] == claim_models.DONE:
            # the handler ended, but its result never reached the row
            why = f"{host} ended the request without a result"
        elif down:
            why = f"{host} is down"
            if claim is not None:
                why += " (it had started it)"
        else:
            why = f"{host} did not take the request"
        return (f"{what} of instance {stuck.uuid} timed out after "
                f"{limit} s: {why}")

    def start(self) -> None:
        if self.interval <= 0 or not (self.build_timeout
                                      or self.action_timeout):
            return
        self._thread = threading.Thread(target=self._loop, daemon=True,
                                        name="stuck-work")
        self._thread.start()

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            try:
                self.run_once()
            except exception.PyctError as err:  # the database may be out
                LOG.warning("stuck-work check failed: %s", err.message)
            except Exception:  # keep checking; the next round may work
                LOG.exception("stuck-work check failed")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=10)
            self._thread = None
