"""An image whose file is a directory (a snapshot's OCI image layout) as
the one tar stream ``GET /v2/images/{id}/file`` answers with.

The tar is made on the fly, one member after the other, with its length
known beforehand (headers and padding are fixed sizes), so a download of
a snapshot costs no staging copy and reads each blob once. Only regular
files and directories below the layout are sent, never a link's target.
"""

from __future__ import annotations

import os
import stat
import tarfile
from typing import Iterator

_BLOCK = tarfile.BLOCKSIZE
_CHUNK = 1 << 20


def _members(root: str) -> list[tuple[str, str, os.stat_result]]:
    out = []
    for top, dirs, files in os.walk(root):
        dirs.sort()
        rel = os.path.relpath(top, root)
        for name in sorted(dirs) + sorted(files):
            path = os.path.join(top, name)
            st = os.lstat(path)
            if stat.S_ISDIR(st.st_mode) or stat.S_ISREG(st.st_mode):
                arc = name if rel == "." else f"{rel}/{name}"
                out.append((arc, path, st))
    return out


def _header(arc: str, st: os.stat_result) -> bytes:
    ti = tarfile.TarInfo(arc)
    ti.mode = 0o755 if stat.S_ISDIR(st.st_mode) else 0o644
    ti.type = tarfile.DIRTYPE if stat.S_ISDIR(st.st_mode) else tarfile.REGTYPE
    ti.size = 0 if stat.S_ISDIR(st.st_mode) else st.st_size
    ti.mtime = int(st.st_mtime)
    return ti.tobuf(format=tarfile.GNU_FORMAT)


def tar_stream(root: str) -> tuple[int, Iterator[bytes]]:
    """(length, chunks) of a tar of the directory ``root``."""
    members = _members(root)
    length = 2 * _BLOCK
    for arc, _, st in members:
        length += len(_header(arc, st))
        if stat.S_ISREG(st.st_mode):
            length += -(-st.st_size // _BLOCK) * _BLOCK

    def chunks() -> Iterator[bytes]:
        for arc, path, st in members:
            yield _header(arc, st)
            if not stat.S_ISREG(st.st_mode):
                continue
            fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
            with os.fdopen(fd, "rb") as f:
                left = st.st_size
                while left > 0:
                    data = f.read(min(_CHUNK, left))
                    if not data:
                        raise OSError(f"{arc} shrank while it was sent")
                    left -= len(data)
                    yield data
            if st.st_size % _BLOCK:
                yield b"\0" * (_BLOCK - st.st_size % _BLOCK)
        yield b"\0" * (2 * _BLOCK)
    return length, chunks()
