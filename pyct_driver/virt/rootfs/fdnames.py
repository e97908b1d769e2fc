"""Names for an overlay's layers that say nothing about the host.

overlayfs shows its ``lowerdir``/``upperdir``/``workdir`` options in the
guest's ``/proc/self/mountinfo`` and ``/proc/mounts`` exactly as they were
given; a host path there tells a tenant where the host keeps its state and
its other guests' ids. ``open_names`` opens each directory (``O_PATH``)
and names it ``/proc/self/fd/<n>``: the kernel resolves the magic link to
the directory when it mounts, keeps the layer, and shows only the short
name. The descriptors are the caller's to close once the mount is made
(``close_names``; ``named`` does both around a block). Works on every
kernel with overlayfs (the names are plain path strings, for mount(2) and
for fsconfig alike).
"""

from __future__ import annotations

import contextlib
import os
from typing import Iterator

_PREFIX = "/proc/self/fd/"


def open_names(paths: list[str]) -> list[str]:
    """``/proc/self/fd/<n>`` for each of ``paths`` (directories)."""
    names: list[str] = []
    try:
        for path in paths:
            fd = os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
            names.append(f"{_PREFIX}{fd}")
    except OSError:
        close_names(names)
        raise
    return names


def close_names(names: list[str]) -> None:
    """Close the descriptors behind names from ``open_names``."""
    for name in names:
        if name.startswith(_PREFIX):
            with contextlib.suppress(OSError, ValueError):
                os.close(int(name[len(_PREFIX):]))


@contextlib.contextmanager
def named(paths: list[str]) -> Iterator[list[str]]:
    """``open_names`` for the length of a ``with`` block."""
    names = open_names(paths)
    try:
        yield names
    finally:
        close_names(names)
