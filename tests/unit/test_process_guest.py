"""Unit tests for the guest-process helpers that need no root: spec wire
format, pid identity, init shutdown signals, console reading and bounding."""

from __future__ import annotations

import os
import signal
import subprocess

import pytest

from pyct_driver import exception
from pyct_driver.virt.process import guest
from pyct_driver.virt.process import spec
from pyct_driver.virt.process.forkserver import console
from tests.waiting import wait_for


# -- spec ---------------------------------------------------------------

def test_spec_round_trips_through_json():
    s = spec.GuestSpec(uuid="u1", root="/srv/pyct/u1", hostname="web-1.example",
                       argv=("/bin/sh", "-c", "echo hi"), env={"A": "b"},
                       cgroup_procs=("/sys/fs/cgroup/pids/x/cgroup.procs",),
                       console_log="/tmp/c.log", console_max_bytes=4096)
    again = spec.GuestSpec.from_json(s.to_json())
    assert again == s
    assert isinstance(again.argv, tuple) and isinstance(again.cgroup_procs,
                                                        tuple)
    h = spec.GuestHandle(pid=42, start_time=123456)
    assert spec.GuestHandle.from_json(h.to_json()) == h


@pytest.mark.parametrize("kwargs", [
    {"root": "relative/root"},
    {"hostname": "bad host"},
    {"hostname": "x" * 65},
    {"argv": ("sbin/init",)},
    {"argv": ()},
    {"uuid": "a/b"},
    {"console_max_bytes": 10},
    {"cgroup_procs": ("cgroup.procs",)},
])
def test_spec_refuses_bad_values(kwargs):
    base = {"uuid": "u", "root": "/r", "hostname": "h"}
    base.update(kwargs)
    with pytest.raises(exception.InvalidInput):
        spec.GuestSpec(**base)


def test_spec_refuses_unknown_fields():
    with pytest.raises(exception.InvalidInput):
        spec.GuestSpec.from_dict({"uuid": "u", "root": "/r", "hostname": "h",
                                  "privileged": True})


# -- pid identity ---------------------------------------------------------

def test_start_time_identifies_a_live_process():
    me = os.getpid()
    start = guest.proc_start_time(me)
    assert isinstance(start, int) and start > 0
    assert guest.is_same_process(me, start)
    assert not guest.is_same_process(me, start + 1)


def test_missing_pid_has_no_start_time():
    with open("/proc/sys/kernel/pid_max") as f:
        beyond = int(f.read()) + 1
    assert guest.proc_start_time(beyond) is None
    assert not guest.is_same_process(beyond, 1)


def test_zombie_is_not_the_same_process():
    child = subprocess.Popen(["true"])
    try:
        start = guest.proc_start_time(child.pid)
        wait_for(lambda: open(f"/proc/{child.pid}/stat").read()
                 .rsplit(")", 1)[1].split()[0] == "Z", 5.0,
                 what="the child to become a zombie", interval=0.01)
        assert guest.proc_start_time(child.pid) == start
        assert not guest.is_same_process(child.pid, start)
    finally:
        child.wait()


def test_signal_init_checks_identity_first():
    child = subprocess.Popen(["sleep", "30"])
    try:
        start = guest.proc_start_time(child.pid)
        assert not guest.signal_init(child.pid, start + 1, signal.SIGTERM)
        assert child.poll() is None
        assert guest.signal_init(child.pid, start, signal.SIGTERM)
        assert child.wait(timeout=5) == -signal.SIGTERM
        assert not guest.signal_init(child.pid, start, signal.SIGTERM)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


# -- shutdown signal ------------------------------------------------------

def _root_with_init(tmp_path, target):
    (tmp_path / "sbin").mkdir()
    (tmp_path / "bin").mkdir()
    (tmp_path / "bin" / "busybox").write_bytes(b"\x7fELF")
    (tmp_path / "sbin" / "init").symlink_to(target)
    return str(tmp_path)


@pytest.mark.parametrize("target,expected", [
    ("/lib/systemd/systemd", signal.SIGRTMIN + 3),
    ("../usr/lib/systemd/systemd", signal.SIGRTMIN + 3),
    ("/bin/busybox", signal.SIGUSR2),
    ("../bin/busybox", signal.SIGUSR2),
    ("/sbin/upstart-ish", signal.SIGTERM),
])
def test_shutdown_signal_follows_the_init_symlink(tmp_path, target, expected):
    root = _root_with_init(tmp_path, target)
    assert guest.shutdown_signal(("/sbin/init",), root) == expected


def test_shutdown_signal_resolves_inside_the_root(tmp_path):
    # "../../.." must stop at the guest's root, not reach the host's.
    root = _root_with_init(tmp_path, "../../../../../../bin/busybox")
    (tmp_path / "bin" / "sh").symlink_to("/sbin/init")
    assert guest.shutdown_signal(("/sbin/init",), root) == signal.SIGUSR2
    # busybox runs the applet argv[0] names: as "sh" it is not init
    assert guest.shutdown_signal(("/bin/sh",), root) == signal.SIGTERM
    assert guest._resolve_in_root(root, "/sbin/init") == "/bin/busybox"


def test_shutdown_signal_default_for_plain_binary(tmp_path):
    (tmp_path / "init").write_bytes(b"")
    assert guest.shutdown_signal(("/init",), str(tmp_path)) == signal.SIGTERM


# -- console --------------------------------------------------------------

def test_read_console_lines(tmp_path):
    log = tmp_path / "console.log"
    assert guest.read_console(str(log)) == ""
    log.write_bytes(b"one\r\ntwo\r\nthree\r\n\xff\r\n")
    assert guest.read_console(str(log)) == "one\ntwo\nthree\n\ufffd\n"
    assert guest.read_console(str(log), 2) == "three\n\ufffd\n"
    assert guest.read_console(str(log), 0) == ""
    assert guest.read_console(str(log), 100).startswith("one\n")


def test_console_log_stays_bounded_and_keeps_the_newest(tmp_path):
    path = tmp_path / "console.log"
    log = console.ConsoleLog(str(path), 2048)
    for i in range(500):
        log.append(f"line {i:04d} ........................\n".encode())
        assert path.stat().st_size <= 2048
        assert log.size == path.stat().st_size
    log.close()
    text = path.read_text()
    assert text.endswith("line 0499 ........................\n")
    assert text.startswith("line ")  # trimmed at a line start
    assert "line 0000" not in text
    assert not (tmp_path / "console.log.pyct-tmp").exists()


def test_console_log_huge_chunk_and_reopen(tmp_path):
    path = tmp_path / "console.log"
    log = console.ConsoleLog(str(path), 1024)
    log.append(b"x" * 10000 + b"\nlast\n")
    log.close()
    assert path.stat().st_size <= 1024
    assert path.read_bytes().endswith(b"last\n")
    path.write_bytes(b"y\n" * 5000)  # an old, oversized log is trimmed
    log = console.ConsoleLog(str(path), 1024)
    assert path.stat().st_size <= 1024
    log.close()


def test_console_log_without_path_discards():
    log = console.ConsoleLog("", 1024)
    log.append(b"nobody reads this\n")
    log.close()


def test_console_log_refuses_symlink(tmp_path):
    (tmp_path / "target").write_text("")
    (tmp_path / "console.log").symlink_to(tmp_path / "target")
    with pytest.raises(exception.ProcessError):
        console.ConsoleLog(str(tmp_path / "console.log"), 1024)
