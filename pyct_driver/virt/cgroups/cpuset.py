"""Each guest's CPUs: a cpuset of exactly its vCPU count, balanced.

A VM with two vCPUs sees two CPUs: ``nproc``, ``sched_getaffinity`` and
the JVM's or Go runtime's CPU detection read the affinity mask, which is
the cgroup's cpuset. ``place`` gives a new guest the ``count`` CPUs that
the fewest guests use now (every sibling group's ``cpuset.cpus``, so
there is no state to lose across restarts: read once per group directory
and then remembered -- keyed by name and inode, so a group made anew is
read anew -- as reading 2,000 files on each spawn and delete made both
grow with the guest count); ``rebalance`` moves guests
off the busiest CPUs onto the idlest, one CPU at a time, until no CPU has
two more guests than another (minimal moves: a balanced host is left
alone). Plans are pure functions (``plan_place``, ``plan_rebalance``);
``CpusetPlacer`` reads and writes a backend's ``cpuset_dir`` files (v1:
the cpuset hierarchy; v2: the group's directory, cpuset enabled).
"""

from __future__ import annotations

import os

from pyct_driver import exception
from pyct_driver.virt.cgroups import base


def parse_list(text: str) -> list[int]:
    """``"0-2,5"`` -> ``[0, 1, 2, 5]`` (the kernel's cpu list format)."""
    cpus: set[int] = set()
    for part in text.strip().split(","):
        if not part:
            continue
        low, _, high = part.partition("-")
        try:
            cpus.update(range(int(low), int(high or low) + 1))
        except ValueError as err:
            raise exception.CgroupError(
                reason=f"bad cpu list {text!r}") from err
    return sorted(cpus)


def format_list(cpus: list[int]) -> str:
    """``[0, 1, 2, 5]`` -> ``"0-2,5"``."""
    out: list[str] = []
    for cpu in sorted(set(cpus)):
        if out and out[-1][1] == cpu - 1:
            out[-1] = (out[-1][0], cpu)
        else:
            out.append((cpu, cpu))
    return ",".join(f"{a}" if a == b else f"{a}-{b}" for a, b in out)


def _loads(cpus: list[int], taken: dict[str, list[int]]) -> dict[int, int]:
    load = {cpu: 0 for cpu in cpus}
    for used in taken.values():
        for cpu in used:
            if cpu in load:
                load[cpu] += 1
    return load


def plan_place(count: int, cpus: list[int],
               taken: dict[str, list[int]]) -> list[int]:
    """The ``count`` least used of ``cpus`` (all of them if fewer)."""
    load = _loads(cpus, taken)
    return sorted(sorted(cpus, key=lambda c: (load[c], c))[:max(1, count)])


def plan_rebalance(cpus: list[int], taken: dict[str, list[int]]
                   ) -> dict[str, list[int]]:
    """New cpusets for the guests that move (the rest keep theirs)."""
    sets = {name: sorted(c for c in used if c in cpus)
            for name, used in taken.items()}
    moved: set[str] = set()
    for _ in range(len(cpus) * max(1, len(sets))):
        load = _loads(cpus, sets)
        busy = max(cpus, key=lambda c: (load[c], -c))
        idle = min(cpus, key=lambda c: (load[c], c))
        if load[busy] - load[idle] < 2:
            break
        name = next((n for n in sorted(sets)
                     if busy in sets[n] and idle not in sets[n]), None)
        if name is None:
            break
        sets[name] = sorted(set(sets[name]) - {busy} | {idle})
        moved.add(name)
    return {name: sets[name] for name in sorted(moved)}


class CpusetPlacer:
    """Places guests of one backend on the host's CPUs."""

    def __init__(self, backend: base.CgroupBackend) -> None:
        self.backend = backend
        self._known: dict[tuple[str, int], list[int]] = {}

    def host_cpus(self) -> list[int]:
        """The CPUs the parent group may use."""
        top = self.backend.cpuset_dir(None)
        for fname in ("cpuset.cpus.effective", "cpuset.cpus"):
            path = os.path.join(top, fname)
            if os.path.exists(path):
                cpus = parse_list(base.read_text(path))
                if cpus:
                    return cpus
        return list(range(os.cpu_count() or 1))

    def current(self) -> dict[str, list[int]]:
        """Every guest group's cpuset now (unset ones count as none)."""
        try:
            entries = [(e.name, e.inode()) for e in
                       os.scandir(self.backend.cpuset_dir(None))
                       if e.is_dir(follow_symlinks=False)]
        except OSError:
            entries = []
        known, out = {}, {}
        for key in entries:
            cpus = self._known.get(key)
            if cpus is None:
                path = os.path.join(self.backend.cpuset_dir(key[0]),
                                    "cpuset.cpus")
                try:
                    cpus = parse_list(base.read_text(path))
                except exception.CgroupError:
                    continue  # going away under us
            known[key] = out[key[0]] = cpus
        self._known = known
        return out

    def place(self, name: str, count: int) -> list[int]:
        """Give group ``name`` ``count`` CPUs, the least used ones."""
        taken = self.current()
        taken.pop(name, None)
        cpus = plan_place(count, self.host_cpus(), taken)
        self._write(name, cpus)
        return cpus

    def rebalance(self) -> dict[str, list[int]]:
        """Even out the guests' CPUs after one went away."""
        moves = plan_rebalance(self.host_cpus(), self.current())
        for name, cpus in moves.items():
            try:
                self._write(name, cpus)
            except exception.CgroupError:
                if self.backend.exists(name):
                    raise
        return moves

    def _write(self, name: str, cpus: list[int]) -> None:
        path = os.path.join(self.backend.cpuset_dir(name), "cpuset.cpus")
        base.write_text(path, format_list(cpus))
        for key in [k for k in self._known if k[0] == name]:
            self._known[key] = cpus
