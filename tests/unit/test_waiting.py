"""The suite's poll helper: it hands back the predicate's value, names
what it waited for when it gives up, and ``wait_gone`` reports leftovers."""

from __future__ import annotations

import itertools
import time

import pytest

from tests.waiting import wait_for, wait_gone


def test_returns_the_first_truthy_value():
    calls = itertools.count()
    assert wait_for(lambda: next(calls) >= 3 and "ready", 5.0,
                    interval=0.001) == "ready"


def test_times_out_naming_what_and_how_long():
    t0 = time.monotonic()
    with pytest.raises(AssertionError,
                       match=r"timed out after 0.1s waiting for the moon"):
        wait_for(lambda: 0, 0.1, what="the moon", interval=0.01)
    assert 0.1 <= time.monotonic() - t0 < 2.0


def test_wait_gone_returns_what_is_left():
    left = iter([["a", "b"], ["a"], []])
    assert wait_gone(lambda: next(left, []), 5.0, interval=0.001) == []
    assert wait_gone(lambda: ["stuck"], 0.05, interval=0.01) == ["stuck"]
