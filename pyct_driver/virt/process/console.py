"""A guest's console log on the host: append-only, bounded in size.

The launcher feeds every byte read from a guest's pty master into one
``ConsoleLog``. The file never grows past ``max_bytes``: when a write would
cross the bound, the file is rewritten (temp file + rename, so a reader never
sees a half-written log) with only the newest half, cut at a line start.
Bounding by rewrite rather than rotation keeps one file per instance, which
is what Nova's get_console_output reads.
"""

from __future__ import annotations

import os

from pyct_driver import exception


class ConsoleLog:
    """Bounded sink for one guest's console output; ``path=''`` discards."""

    def __init__(self, path: str, max_bytes: int) -> None:
        self.path = path
        self.max_bytes = max_bytes
        self._fd: int | None = None
        self._size = 0
        if path:
            try:
                self._open()
            except OSError as err:
                raise exception.ProcessError(
                    reason=f"cannot open console log {path}: {err}",
                    step="open console log") from err
            if self._size > max_bytes:
                self._rewrite(b"")

    @property
    def size(self) -> int:
        return self._size

    def _open(self) -> None:
        # O_NOFOLLOW: the log may live next to guest-writable files.
        self._fd = os.open(self.path, os.O_WRONLY | os.O_CREAT | os.O_APPEND
                           | os.O_CLOEXEC | os.O_NOFOLLOW, 0o600)
        self._size = os.fstat(self._fd).st_size

    def append(self, data: bytes) -> None:
        if self._fd is None or not data:
            return
        if self._size + len(data) > self.max_bytes:
            self._rewrite(data)
            return
        view = memoryview(data)
        while view:
            written = os.write(self._fd, view)
            view = view[written:]
            self._size += written

    def _rewrite(self, data: bytes) -> None:
        keep = self.max_bytes // 2
        if len(data) >= keep:
            tail = data[-keep:]
        else:
            with open(self.path, "rb") as old:
                old.seek(max(0, self._size - (keep - len(data))))
                tail = old.read() + data
        newline = tail.find(b"\n")
        if 0 <= newline < len(tail) - 1:
            tail = tail[newline + 1:]
        tmp = f"{self.path}.pyct-tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
                     | os.O_NOFOLLOW, 0o600)
        try:
            os.write(fd, tail)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        self.close()
        self._open()

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None
