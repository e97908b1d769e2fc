"""Progress lines for long operator steps: a first Debian build, big imports.

Library code reports every event of a long step to a ``Progress`` and the
reporter decides what to print: a ``stage`` line at once (a step known to
be long announces what it is doing), an ``update`` at most once per
``interval`` seconds and never before the step has run that long (so quick
steps, like ``make run``'s busybox import, print nothing), and a
``transfer``'s last line once its bytes are all through, if it printed
any. ``SILENT`` prints nothing; library functions default to it. Lines are
plain, one per event, without carriage returns: they read the same in a
terminal, a pipe and a log file. ``pyct-manage`` writes them to stderr, as
its stdout is the command's result.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, TextIO


def size(n: float) -> str:
    """Bytes for people: ``512 B``, ``3.4 MiB``, ``1.2 GiB``."""
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


class Progress:
    """Prints few, well-spaced lines about one long step."""

    def __init__(self, stream: TextIO | None, prefix: str = "",
                 interval: float = 3.0,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.stream = stream
        self.prefix = prefix
        self.interval = interval
        self._clock = clock
        self._lock = threading.Lock()
        self._start = self._last = clock()
        self._printed_transfer = ""

    def elapsed(self) -> float:
        return self._clock() - self._start

    def _emit(self, text: str) -> None:
        # caller holds the lock
        self._last = self._clock()
        if self.stream is not None:
            self.stream.write(f"{self.prefix}{text}\n")
            self.stream.flush()

    def stage(self, text: str) -> None:
        """A new stage of a step known to be long: always printed."""
        with self._lock:
            self._emit(text)

    def update(self, text: str) -> bool:
        """News within a stage: printed if ``interval`` passed since the
        last line (or the start). Returns whether it was printed."""
        with self._lock:
            return self._update(text)

    def _update(self, text: str) -> bool:
        if self._clock() - self._last < self.interval:
            return False
        self._emit(text)
        return True

    def transfer(self, what: str, done: int, total: int | None) -> None:
        """Bytes through a copy or an unpack; the last call has
        ``done == total``."""
        if total:
            text = (f"{what}: {size(done)} of {size(total)} "
                    f"({100 * done // total}%)")
        else:
            text = f"{what}: {size(done)}"
        with self._lock:
            if total is not None and done >= total:
                if self._printed_transfer == what:
                    self._printed_transfer = ""
                    self._emit(text)
            elif self._update(text):
                self._printed_transfer = what


SILENT = Progress(None)
