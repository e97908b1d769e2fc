"""Nova-side runs of two checkouts take turns on one host
(``tests/nova/harness.host_turn``): the second waits for the first and
fails, saying so, if it never gets its turn."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from tests.nova import harness


def _holder(path: str, seconds: float) -> subprocess.Popen:
    code = ("import fcntl, sys, time\n"
            f"f = open({path!r}, 'a')\n"
            "fcntl.flock(f, fcntl.LOCK_EX)\n"
            "print('held', flush=True)\n"
            f"time.sleep({seconds})\n")
    proc = subprocess.Popen([sys.executable, "-c", code],
                            stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_run_waits_for_the_first(tmp_path, monkeypatch):
    monkeypatch.setattr(harness, "HOST_LOCK", str(tmp_path / "nova.lock"))
    holder = _holder(harness.HOST_LOCK, 1.0)
    try:
        started = time.monotonic()
        with harness.host_turn(30):
            waited = time.monotonic() - started
        assert 0.5 < waited < 10
    finally:
        holder.kill()
        holder.wait()


def test_a_run_that_never_gets_its_turn_fails_saying_why(tmp_path,
                                                         monkeypatch):
    monkeypatch.setattr(harness, "HOST_LOCK", str(tmp_path / "nova.lock"))
    holder = _holder(harness.HOST_LOCK, 30.0)
    try:
        with pytest.raises(pytest.fail.Exception, match="held by another"):
            with harness.host_turn(1):
                pass
    finally:
        holder.kill()
        holder.wait()
