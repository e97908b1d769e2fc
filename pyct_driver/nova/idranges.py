"""Host uid/gid ranges of the guests on one Nova compute host, in a file.

Under Nova there is no pyct database: the id range each unprivileged guest's
user namespace maps onto is kept in a JSON file in ``[pyct] state_path``,
allocated and released under an exclusive ``flock`` so concurrent builds
on the host never share a block. Blocks follow pyct's rules
(``pyct_driver.db.idranges``: 65,536 ids, multiples counted from 2**30);
they are per host, which is all a guest needs since Nova moves no pyct
guest between hosts.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
from typing import Iterator

from pyct_driver import exception

RANGE_SIZE = 65536
BASE = 1 << 30
UID_LIMIT = (1 << 32) - 1


class IdRanges:
    """``uuid -> (start, size)`` kept in ``<directory>/idranges.json``."""

    def __init__(self, directory: str) -> None:
        self.path = os.path.join(directory, "idranges.json")

    @contextlib.contextmanager
    def _locked(self) -> Iterator[dict[str, int]]:
        os.makedirs(os.path.dirname(self.path), mode=0o700, exist_ok=True)
        with open(self.path + ".lock", "a") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            try:
                with open(self.path) as f:
                    table = json.load(f)
            except FileNotFoundError:
                table = {}
            before = dict(table)
            yield table
            if table != before:
                tmp = self.path + ".tmp"
                with open(tmp, "w") as f:
                    json.dump(table, f)
                    f.flush()
                    os.fsync(f.fileno())
                os.replace(tmp, self.path)

    def _table(self) -> dict[str, int]:
        """Every guest's block start (tests, diagnostics)."""
        with self._locked() as table:
            return dict(table)

    def get(self, uuid: str) -> tuple[int, int] | None:
        """The guest's range, or None."""
        with self._locked() as table:
            start = table.get(uuid)
        return None if start is None else (start, RANGE_SIZE)

    def allocate(self, uuid: str) -> tuple[int, int]:
        """The guest's range, taking the first free block if it has none."""
        with self._locked() as table:
            if uuid not in table:
                taken = set(table.values())
                start = BASE
                while start in taken:
                    start += RANGE_SIZE
                if start + RANGE_SIZE > UID_LIMIT:
                    raise exception.VirtError(
                        reason="no free uid/gid range left for a new guest")
                table[uuid] = start
            return table[uuid], RANGE_SIZE

    def release(self, uuid: str) -> None:
        """Free the guest's block (after its disk is gone). Idempotent."""
        with self._locked() as table:
            table.pop(uuid, None)
