"""Joining a cgroup v1 hierarchy: by pid (cgroup.procs, tasks) or by thread.

Usage (root, cgroup v1): ``.venv/bin/python tools/bench/cgroup_join.py
[--runs 20] [--json]``

A fresh fork of this (single-threaded) program joins an empty group of the
pids hierarchy three ways, interleaved, with a pause before each so that
the kernel's ``cgroup_threadgroup_rwsem`` is idle again: its pid written
to ``cgroup.procs``, its pid to ``tasks``, and 0 (the calling thread) to
``tasks`` -- what a guest's C1 does since issue #16 part 2
(``guestinit.nsinit._join_cgroups``). The first two take that rwsem for
writing, whose first writer after a quiet spell waits for an RCU grace
period; moving only the calling thread skips it. Timed in the child: open,
write and close of the file.
"""

from __future__ import annotations

import os
import sys
import time
import uuid

import report

HIERARCHY = "/sys/fs/cgroup/pids"
WAYS = (("pid to cgroup.procs", "cgroup.procs", False),
        ("pid to tasks", "tasks", False),
        ("0 (this thread) to tasks", "tasks", True))
PAUSE = 0.2  # longer than a grace period: the rwsem goes idle again


def join_once(group: str, name: str, self_thread: bool) -> float:
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            t = time.perf_counter()
            fd = os.open(os.path.join(group, name), os.O_WRONLY)
            os.write(fd, b"0" if self_thread else str(os.getpid()).encode())
            os.close(fd)
            os.write(w, repr(time.perf_counter() - t).encode())
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    try:
        data = os.read(r, 64)
    finally:
        os.close(r)
        os.waitpid(pid, 0)
    if not data:
        raise RuntimeError(f"joining {group} by {name} failed")
    return float(data)


def main() -> None:
    parser = report.parser(__doc__.splitlines()[0], 20)
    args = parser.parse_args()
    if not os.path.exists(os.path.join(HIERARCHY, "tasks")):
        sys.exit(f"{HIERARCHY}: no cgroup v1 pids hierarchy here")
    report.interrupt_on_term()
    group = os.path.join(HIERARCHY, f"pyct-bench-join-{uuid.uuid4().hex[:8]}")
    os.mkdir(group)
    samples: dict[str, list[float]] = {label: [] for label, *_ in WAYS}
    try:
        for _ in range(args.runs):
            for label, name, self_thread in WAYS:
                time.sleep(PAUSE)
                samples[label].append(join_once(group, name, self_thread))
    finally:
        os.rmdir(group)  # the children have exited: it is empty
    report.emit("joining a cgroup v1 hierarchy (pids), a fresh process",
                {label: report.summarize(v) for label, v in samples.items()},
                None, args.json)


if __name__ == "__main__":
    main()
