"""Each request carried out once, and a database outage outlasted.

A cast can arrive twice (a publish the bus confirmed too late and the
client sent again) or after the API's stuck-work task gave it up. Before
a handler touches the guest it claims the request's id on the instance
in the database (``db.claims``); a request that ran, runs, or was given
up is not redone. The claim and the state written at the end are
retried while the database is unreachable, for up to
``outage_patience`` seconds, so a handler in flight during a short
outage finishes its work instead of losing it.
"""

from __future__ import annotations

import contextlib
import time
from typing import Callable, Iterator, TypeVar

from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.context import RequestContext
from pyct_driver.db import claims as db_claims
from pyct_driver.db.engine import Database

LOG = logging.getLogger(__name__)
T = TypeVar("T")


def outlast_outage(call: Callable[[], T], patience: float) -> T:
    """``call()``, again while the database is unreachable (waiting
    longer each time, up to 5 s), for at most ``patience`` seconds."""
    deadline = time.monotonic() + patience
    wait = 0.2
    while True:
        try:
            return call()
        except exception.DBUnavailable as err:
            if time.monotonic() + wait > deadline:
                raise
            LOG.warning("database unavailable (%s); retrying in %.1f s",
                        err.kwargs.get("reason", ""), wait)
            time.sleep(wait)
            wait = min(wait * 2, 5.0)


class RequestOnce:
    """The manager's claims (``db`` and ``host`` come from it)."""

    db: Database
    host: str
    outage_patience: float = 60.0

    @contextlib.contextmanager
    def once(self, ctxt: RequestContext, uuid: str,
             method: str) -> Iterator[bool]:
        """Yield whether this request is new on ``uuid`` and now ours;
        the claim is marked done when the block ends, however it ends."""
        request_id = ctxt.request_id
        fresh = outlast_outage(lambda: db_claims.claim(
            self.db, uuid, request_id, method, self.host),
            self.outage_patience)
        if not fresh:
            LOG.info("request %s (%s) already ran, runs or was given up; "
                     "not redone", request_id, method, instance_uuid=uuid)
        try:
            yield fresh
        finally:
            if fresh:
                try:
                    outlast_outage(lambda: db_claims.finish(
                        self.db, uuid, request_id, method),
                        self.outage_patience)
                except exception.PyctError as err:
                    LOG.warning("could not mark request %s done: %s",
                                request_id, err.message)
