"""Where the suite's wall time goes: each pytest-xdist worker's busy time.

``make test`` runs pytest with ``PYCT_TEST_TIMELINE=FILE`` (tests/conftest.py
appends one line per test phase) and then this program, which prints per
worker its busy seconds, its last finish, and its five longest work units
(tests/conftest.work_unit; a single test counts under its module), so it shows whether one unit's serial chain
(the privileged tests) or the sum of all work sets the wall time.
"""

from __future__ import annotations

import collections
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(
    __file__))))
from tests.conftest import work_unit  # noqa: E402


def main(path: str) -> int:
    busy: dict[str, float] = collections.Counter()
    last: dict[str, float] = {}
    first = None
    units: dict[str, collections.Counter] = collections.defaultdict(
        collections.Counter)
    with open(path) as f:
        for line in f:
            worker, _phase, secs, end, nodeid = line.rstrip("\n").split(
                "\t", 4)
            busy[worker] += float(secs)
            last[worker] = max(last.get(worker, 0.0), float(end))
            start = float(end) - float(secs)
            first = start if first is None else min(first, start)
            units[worker][work_unit(nodeid).split("::")[0]] += float(secs)
    for worker in sorted(busy):
        top = ", ".join(f"{u} {s:.0f} s"
                        for u, s in units[worker].most_common(5))
        print(f"{worker}: busy {busy[worker]:.0f} s, done at "
              f"+{last[worker] - first:.0f} s; longest units: {top}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1]))
