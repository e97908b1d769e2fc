"""The fake driver's call log: one line per guest-changing call, on disk.

A test whose compute service runs in another process counts what the
driver did there (each boot spawned once, each reboot rebooted once)
from this file, ``[fake_driver] call_log``: ``record`` wraps the
driver's methods so each successful call appends ``<call> <uuid>``.
"""

from __future__ import annotations

import functools
from typing import Callable

CALLS = ("spawn", "reboot", "power_off", "power_on", "destroy")


def record(driver: object, path: str | None) -> None:
    """Log ``driver``'s calls in ``CALLS`` to ``path`` from now on (no
    path: nothing is logged)."""
    for name in CALLS if path else ():
        setattr(driver, name, _logged(getattr(driver, name), name, path))


def _logged(method: Callable, name: str, path: str) -> Callable:
    @functools.wraps(method)
    def call(instance, *args, **kwargs):
        result = method(instance, *args, **kwargs)
        # one short line per write: appends from threads don't mix
        with open(path, "a") as f:
            f.write(f"{name} {instance.uuid}\n")
        return result
    return call
