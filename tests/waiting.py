"""The one poll helper of the test suite: call a predicate until it
returns something true and hand that value back, or fail with an
AssertionError naming what was awaited and for how long. Every layer
(unit, functional, integration, privileged) waits through it, so a
timeout reads the same everywhere and a fix to polling lands once."""

from __future__ import annotations

import time
from typing import Callable, TypeVar

T = TypeVar("T")


def wait_for(predicate: Callable[[], T], timeout: float = 10.0,
             what: str = "condition", interval: float = 0.02) -> T:
    """Poll ``predicate`` every ``interval`` seconds; return its first
    truthy value, or raise AssertionError after ``timeout`` seconds.
    The predicate is always called once more after the deadline passes,
    so a slow machine that sleeps past it still gets a last look."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(
                f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


def wait_gone(look: Callable[[], T], timeout: float,
              interval: float = 0.2) -> T:
    """Poll ``look`` (what is left: links, mounts, listeners...) until it
    finds nothing; return its last answer, empty or not, so the caller's
    assertion can name what stayed."""
    try:
        wait_for(lambda: not look(), timeout, "nothing left", interval)
    except AssertionError:
        pass
    return look()
