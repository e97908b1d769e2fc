"""The cpuset plans: least used CPUs first, minimal re-balancing moves."""

from __future__ import annotations

import os

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import cpuset


def test_lists_round_trip():
    assert cpuset.parse_list("0-2,5\n") == [0, 1, 2, 5]
    assert cpuset.format_list([5, 0, 2, 1]) == "0-2,5"
    assert cpuset.format_list([3]) == "3"
    with pytest.raises(exception.CgroupError):
        cpuset.parse_list("a-b")


def test_place_takes_the_least_used_cpus():
    taken = {"a": [0], "b": [0, 1], "c": [2]}
    assert cpuset.plan_place(1, [0, 1, 2, 3], taken) == [3]
    assert cpuset.plan_place(2, [0, 1, 2, 3], taken) == [1, 3]
    # more vCPUs than CPUs: every CPU
    assert cpuset.plan_place(8, [0, 1], {}) == [0, 1]


def test_rebalance_moves_as_few_guests_as_needed():
    assert cpuset.plan_rebalance([0, 1], {"a": [0], "b": [1]}) == {}
    moves = cpuset.plan_rebalance([0, 1], {"a": [0], "b": [0], "c": [0]})
    assert len(moves) == 1 and list(moves.values()) == [[1]]
    # a two-vCPU guest spans both CPUs and never moves
    assert cpuset.plan_rebalance([0, 1], {"w": [0, 1], "a": [0]}) == {}


class _DirBackend:
    """cpuset files in a plain directory, one subdirectory per group."""

    def __init__(self, top: str) -> None:
        self.top = top

    def cpuset_dir(self, name):
        return self.top if name is None else os.path.join(self.top, name)

    def exists(self, name: str) -> bool:
        return os.path.isdir(self.cpuset_dir(name))


def _group(top, name: str, cpus: str) -> None:
    os.makedirs(os.path.join(top, name), exist_ok=True)
    with open(os.path.join(top, name, "cpuset.cpus"), "w") as f:
        f.write(cpus)


def test_placer_reads_each_group_once_and_a_new_one_anew(tmp_path,
                                                     monkeypatch):
    top = str(tmp_path)
    with open(os.path.join(top, "cpuset.cpus"), "w") as f:
        f.write("0-1")
    _group(top, "a", "0")
    placer = cpuset.CpusetPlacer(_DirBackend(top))
    reads = []
    real_read = cpuset.base.read_text
    monkeypatch.setattr(cpuset.base, "read_text",
                        lambda path: reads.append(path) or real_read(path))
    _group(top, "b", "")  # made by the backend, not placed yet
    assert placer.place("b", 1) == [1]
    assert placer.current() == {"a": [0], "b": [1]}
    assert placer.current() == {"a": [0], "b": [1]}
    group_reads = [p for p in reads if os.path.dirname(p) != top]
    assert sorted(group_reads) == [os.path.join(top, g, "cpuset.cpus")
                                   for g in "ab"]
    # "a" goes and comes back (a new directory): read again, not remembered
    os.remove(os.path.join(top, "a", "cpuset.cpus"))
    os.rmdir(os.path.join(top, "a"))
    assert placer.current() == {"b": [1]}
    _group(top, "a", "1")
    assert placer.current() == {"a": [1], "b": [1]}
