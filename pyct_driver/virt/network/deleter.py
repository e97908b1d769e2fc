"""Link deletion off the request path.

Deleting a veth costs 20-30 ms of kernel time (an RCU grace period), so
``unplug`` only queues the work and returns; one daemon thread with its own
netlink socket does the deletions in order. Links are deleted by ifindex
captured at unplug time, not by name: a port re-plugged under the same name
meanwhile has a new index and survives. ``flush`` waits until the queue is
empty (tests, and the driver's shutdown).
"""

from __future__ import annotations

import errno
import logging
import queue
import threading
from typing import Callable

from pyroute2 import IPRoute
from pyroute2.netlink.exceptions import NetlinkError

LOG = logging.getLogger(__name__)


class Deleter:
    """One background thread deleting links and running deferred checks."""

    def __init__(self) -> None:
        self._queue: queue.Queue = queue.Queue()
        self._ipr: IPRoute | None = None
        self._thread = threading.Thread(target=self._run,
                                        name="pyct-net-deleter", daemon=True)
        self._thread.start()

    def delete_link(self, index: int, ifname: str) -> None:
        self._queue.put(("link", index, ifname))

    def call(self, func: Callable[[], None]) -> None:
        """Run ``func`` on the deleter thread, after what is queued now."""
        self._queue.put(("call", func, None))

    def flush(self, timeout: float = 30.0) -> bool:
        """Wait until every queued job is done; False on timeout."""
        done = threading.Event()
        self._queue.put(("call", done.set, None))
        return done.wait(timeout)

    def stop(self, timeout: float = 30.0) -> None:
        self._queue.put(None)
        self._thread.join(timeout)

    def _run(self) -> None:
        self._ipr = IPRoute()
        try:
            while True:
                job = self._queue.get()
                if job is None:
                    return
                try:
                    self._do(job)
                except Exception:  # noqa: B902 - the thread must live on
                    LOG.exception("network deleter job %r failed", job[:1])
        finally:
            self._ipr.close()

    def _do(self, job: tuple) -> None:
        kind, first, second = job
        if kind == "call":
            first()
            return
        try:
            links = self._ipr.get_links(first)
        except NetlinkError as err:
            if err.code == errno.ENODEV:
                return  # died with its guest's namespace already
            raise
        if links and links[0].get("ifname") != second:
            return  # the index now names someone else's link: not ours
        try:
            self._ipr.link("del", index=first)
        except NetlinkError as err:
            if err.code != errno.ENODEV:
                raise
