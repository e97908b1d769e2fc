"""The fake driver's hooks for tests whose compute runs in another process.

Its call log: one line per guest-changing call, on disk. A test counts
what the driver did there (each boot spawned once, each reboot rebooted
once) from this file, ``[fake_driver] call_log``: ``record`` wraps the
driver's methods so each successful call appends ``<call> <uuid>``. And
its slow steps: with ``[fake_driver] operation_delay`` the long steps
(``SLOW``: a resize's limits, a snapshot, a migration's stream) first
wait that long, so a test can stop the service in the middle of one.
"""

from __future__ import annotations

import functools
import time
from typing import Callable

CALLS = ("spawn", "reboot", "power_off", "power_on", "destroy")
SLOW = ("apply_flavor", "snapshot", "send_guest")


def record(driver: object, settings: object) -> None:
    """Log ``driver``'s calls in ``CALLS`` to ``settings.call_log`` and
    delay its ``SLOW`` ones by ``settings.operation_delay`` from now on
    (``[fake_driver]``; a bare settings object has neither)."""
    path = getattr(settings, "call_log", None)
    for name in CALLS if path else ():
        setattr(driver, name, _logged(getattr(driver, name), name, path))
    delay = getattr(settings, "operation_delay", 0.0)
    for name in SLOW if delay else ():
        setattr(driver, name, _slowed(getattr(driver, name), delay))


def _slowed(method: Callable, delay: float) -> Callable:
    @functools.wraps(method)
    def call(*args, **kwargs):
        time.sleep(delay)
        return method(*args, **kwargs)
    return call


def _logged(method: Callable, name: str, path: str) -> Callable:
    @functools.wraps(method)
    def call(instance, *args, **kwargs):
        result = method(instance, *args, **kwargs)
        # one short line per write: appends from threads don't mix
        with open(path, "a") as f:
            f.write(f"{name} {instance.uuid}\n")
        return result
    return call
