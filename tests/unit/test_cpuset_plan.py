"""The cpuset plans: least used CPUs first, minimal re-balancing moves."""

from __future__ import annotations

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
