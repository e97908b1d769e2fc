"""Runs the Debian build's commands; debootstrap's output becomes progress.

debootstrap says what it does, one ``I:`` line per step: a header for each
stage (``Checking component main…``, ``Unpacking the base system…``) and a
line per package (``Retrieving libc6 2.36-9``, ``Extracting libc6...``,
``Configuring dbus...``). ``Stages`` reads them and reports to a
``Progress``: a line for each stage as it starts, numbered out of the
stages a build goes through, and within a stage the packages done so far,
the latest package and, while downloading, the bytes fetched. ``run`` runs
a command, hands each output line to a callback and calls a heartbeat
every few seconds while the command is silent (a big download, a slow
``Configuring``); a failure carries the output's tail.
"""

from __future__ import annotations

import collections
import os
import re
import subprocess
import threading
from typing import Callable

from pyct_driver import exception
from pyct_driver.progress import Progress, size

# stage headers, in the order a first build meets them
STAGES = (
    ("Retrieving InRelease", "downloading the package index"),
    ("Resolving dependencies of required", "resolving dependencies"),
    ("Checking component", "downloading packages"),
    ("Chosen extractor", "extracting the required packages"),
    ("Installing core packages", "installing the core packages"),
    ("Unpacking required packages", "unpacking the required packages"),
    ("Configuring required packages", "configuring the required packages"),
    ("Unpacking the base system", "unpacking the base system"),
    ("Configuring the base system", "configuring the base system"),
)
_PACKAGE = re.compile(
    r"^I: (Retrieving|Validating|Extracting|Unpacking|Configuring) "
    r"([a-z0-9][a-z0-9+.:-]*)(?: \S+|\.\.\.)\s*$")
_INDEXES = {"InRelease", "Release", "Packages"}
_TAIL_LINES = 40


def tree_bytes(*dirs: str) -> int:
    """Bytes of the regular files below ``dirs`` (missing ones count 0)."""
    total = 0
    for top in dirs:
        for root, _dirs, files in os.walk(top):
            for name in files:
                try:
                    total += os.lstat(os.path.join(root, name)).st_size
                except OSError:
                    continue  # renamed or removed while we looked
    return total


class Stages:
    """debootstrap's output lines in, progress lines out."""

    def __init__(self, progress: Progress,
                 downloaded: Callable[[], int] = lambda: 0) -> None:
        self.progress = progress
        self.downloaded = downloaded
        self.stage = ""
        self.package = ""
        self.counts: collections.Counter[str] = collections.Counter()

    def _stage_of(self, line: str) -> int | None:
        for index, (header, _name) in enumerate(STAGES):
            if line.startswith("I: " + header):
                return index
        return None

    def feed(self, line: str) -> None:
        line = line.rstrip()
        index = self._stage_of(line)
        if index is not None:
            self.stage = STAGES[index][1]
            self.counts.clear()
            self.progress.stage(
                f"debootstrap {index + 1}/{len(STAGES)}: {self.stage}")
            return
        match = _PACKAGE.match(line)
        if match is None or match.group(2) in _INDEXES or not self.stage:
            return
        verb, self.package = match.groups()
        self.counts[verb] += 1
        self.progress.update(self.news())

    def news(self) -> str:
        """How far the current stage is, e.g. ``debootstrap: downloading
        packages: 57 (libc6), 23.1 MiB downloaded, 12 s``."""
        parts = [f"debootstrap: {self.stage}"]
        if self.counts:
            done = max(self.counts.values())
            parts[0] += (f": {done} package{'s' if done != 1 else ''} "
                         f"({self.package})")
        if self.stage == "downloading packages":
            parts.append(f"{size(self.downloaded())} downloaded")
        parts.append(f"{self.progress.elapsed():.0f} s")
        return ", ".join(parts)

    def heartbeat(self) -> None:
        """Called while debootstrap is silent: the same news, fresher."""
        if self.stage:
            self.progress.update(self.news())


def run(argv: list[str], what: str,
        on_line: Callable[[str], None] | None = None,
        heartbeat: Callable[[], None] | None = None,
        interval: float = 1.0) -> None:
    """Run ``argv`` to completion, feeding its output (stdout and stderr)
    line by line to ``on_line`` and calling ``heartbeat`` every
    ``interval`` seconds; ``RootfsError`` with the output's tail if it
    fails."""
    tail: collections.deque[str] = collections.deque(maxlen=_TAIL_LINES)
    try:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE,
                                stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, text=True,
                                errors="replace")
    except OSError as err:
        raise exception.RootfsError(reason=f"{what}: {err}") from err

    def read() -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            tail.append(line)
            if on_line is not None:
                on_line(line)

    reader = threading.Thread(target=read, daemon=True,
                              name=f"output of {argv[0]}")
    reader.start()
    try:
        while True:
            try:
                code = proc.wait(timeout=interval)
                break
            except subprocess.TimeoutExpired:
                if heartbeat is not None:
                    heartbeat()
    except BaseException:
        proc.kill()
        proc.wait()
        raise
    finally:
        # a grandchild still holding the pipe must not hang the build
        reader.join(timeout=30)
        if proc.stdout is not None:
            proc.stdout.close()
    if code != 0:
        raise exception.RootfsError(
            reason=f"{what} exited {code}: {''.join(tail)[-2000:]}")
