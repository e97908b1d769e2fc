"""The container driver's lifecycle on the real kernel: reboots, stop/start,
pause, delete, re-adoption by a restarted driver, and spawn failures that
must leave nothing behind.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from pyct_driver import exception, states
from pyct_driver.virt.container import ContainerDriver
from pyct_driver.virt.process import guest as guest_mod
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, cgroup_dirs, cpu_ns, driver, flavor, guest_exec, guests,
    init_pid, make_conf, make_spec, wait_for)

BOOT_LINE = "pyct busybox guest booting"
BUSY = ["/bin/sh", "-c", "while :; do :; done"]


def _loop_backing() -> dict[str, str]:
    out = {}
    for name in os.listdir("/sys/block"):
        path = f"/sys/block/{name}/loop/backing_file"
        try:
            with open(path) as f:
                out[name] = f.read().strip()
        except OSError:
            pass
    return out


def _traces(drv, uuid: str) -> list[str]:
    """Everything of ``uuid`` still on the host (empty = clean)."""
    found = []
    if os.path.exists(drv.records.dir(uuid)):
        found.append("record dir")
    if os.path.exists(os.path.join(drv.roots.base_dir, "instances", uuid)):
        found.append("root dir")
    found += [f"mount {line.split()[1]}" for line in open("/proc/mounts")
              if uuid in line]
    found += [f"loop {n}" for n, f in _loop_backing().items() if uuid in f]
    found += [f"cgroup {d}" for d in cgroup_dirs(drv, uuid)]
    if uuid in drv.list_instances():
        found.append("listed")
    try:
        drv.images.held_layers(uuid)
        found.append("layers held")
    except exception.ImageNotFound:
        pass
    return found


def _console(drv, spec) -> str:
    return drv.get_console_output(spec)


def test_soft_reboot_boots_again(driver, guests):
    spec = guests.boot()
    wait_for(lambda: BOOT_LINE in _console(driver, spec), what="first boot")
    old = init_pid(driver, spec.uuid)
    old_start = guest_mod.proc_start_time(old)
    start = time.monotonic()
    driver.reboot(spec, hard=False)
    took = time.monotonic() - start
    new = init_pid(driver, spec.uuid)
    assert new != old
    assert not guest_mod.is_same_process(old, old_start)
    assert driver.get_info(spec).power_state == states.RUNNING
    wait_for(lambda: _console(driver, spec).count(BOOT_LINE) == 2,
             what="second boot on the console")
    assert "shutting down" in _console(driver, spec)
    print(f"soft reboot (busybox init) took {took:.2f}s")


def test_reboot_from_inside_the_guest_is_reported_not_restarted(driver,
                                                                guests):
    """`reboot` run in the guest ends its init asking for a reboot:
    get_info reports that and restarts nothing (the manager's power-state
    sync decides); a hard reboot brings it back on the same root."""
    spec = guests.boot()
    wait_for(lambda: BOOT_LINE in _console(driver, spec), what="first boot")
    old = init_pid(driver, spec.uuid)
    guest_exec(driver, spec.uuid, ["/sbin/reboot"], check=False)
    wait_for(lambda: not guest_mod.is_same_process(
        old, guest_mod.proc_start_time(old) or 0), timeout=15,
        what="old init gone")
    wait_for(lambda: driver.get_info(spec).reboot_requested, timeout=15,
             what="the reboot reported")
    for _ in range(3):  # looking again changes nothing
        info = driver.get_info(spec)
        assert (info.power_state, info.reboot_requested) == (
            states.SHUTDOWN, True)
        time.sleep(0.2)
    assert driver.records.load(spec.uuid)["pid"] == old
    assert _console(driver, spec).count(BOOT_LINE) == 1
    driver.reboot(spec, hard=True)
    info = driver.get_info(spec)
    assert (info.power_state, info.reboot_requested) == (states.RUNNING,
                                                         False)
    assert init_pid(driver, spec.uuid) != old
    wait_for(lambda: _console(driver, spec).count(BOOT_LINE) == 2,
             what="boot banner after the reboot")


def test_poweroff_from_inside_the_guest_stays_off(driver, guests):
    spec = guests.boot()
    wait_for(lambda: BOOT_LINE in _console(driver, spec), what="first boot")
    guest_exec(driver, spec.uuid, ["/sbin/poweroff"], check=False)
    wait_for(lambda: driver.get_info(spec).power_state == states.SHUTDOWN,
             timeout=15, what="guest powered off")
    time.sleep(0.5)
    info = driver.get_info(spec)
    assert (info.power_state, info.reboot_requested) == (states.SHUTDOWN,
                                                         False)


def test_soft_reboot_falls_back_to_hard(driver, guests, monkeypatch):
    script = ("trap '' TERM USR1 USR2 INT HUP QUIT; echo stubborn up; "
              "while :; do sleep 1; done")
    spec = guests.boot(os_command_line=json.dumps(["/bin/sh", "-c", script]))
    wait_for(lambda: "stubborn up" in _console(driver, spec),
             what="stubborn init up")
    old = init_pid(driver, spec.uuid)
    monkeypatch.setattr(driver, "soft_reboot_timeout", 0.5)
    start = time.monotonic()
    driver.reboot(spec, hard=False)
    took = time.monotonic() - start
    assert 0.5 <= took < 5, took
    assert init_pid(driver, spec.uuid) != old
    assert driver.get_info(spec).power_state == states.RUNNING
    wait_for(lambda: _console(driver, spec).count("stubborn up") == 2,
             what="second boot")


def test_hard_reboot(driver, guests):
    spec = guests.boot()
    old = init_pid(driver, spec.uuid)
    start = time.monotonic()
    driver.reboot(spec, hard=True)
    assert time.monotonic() - start < 2
    assert init_pid(driver, spec.uuid) != old
    assert driver.get_info(spec).power_state == states.RUNNING


def test_stop_start_keeps_files(driver, guests):
    spec = guests.boot()
    guest_exec(driver, spec.uuid,
               ["/bin/sh", "-c", "echo kept-data > /root/keep; sync"])
    pid = init_pid(driver, spec.uuid)
    pid_start = guest_mod.proc_start_time(pid)
    driver.power_off(spec, timeout=10)
    assert driver.get_info(spec).power_state == states.SHUTDOWN
    assert not guest_mod.is_same_process(pid, pid_start)
    assert driver.records.load(spec.uuid)["pid"] is None
    assert not [line for line in open("/proc/mounts") if spec.uuid in line]
    wait_for(lambda: not [n for n, f in _loop_backing().items()
                          if spec.uuid in f], what="loop device freed")
    driver.power_off(spec, timeout=10)  # idempotent
    driver.power_on(spec)
    driver.power_on(spec)  # idempotent
    assert driver.get_info(spec).power_state == states.RUNNING
    assert guest_exec(driver, spec.uuid, ["/bin/cat", "/root/keep"]).stdout \
        == "kept-data\n"


def test_pause_freezes_and_unpause_resumes(driver, guests):
    spec = guests.boot()
    guest_exec(driver, spec.uuid, BUSY, background=True, guests=guests)
    wait_for(lambda: cpu_ns(driver, spec) > 50_000_000, what="busy loop")
    driver.pause(spec)
    assert driver.get_info(spec).power_state == states.PAUSED_POWER
    frozen = cpu_ns(driver, spec)
    time.sleep(0.5)
    assert cpu_ns(driver, spec) - frozen < 1_000_000
    driver.unpause(spec)
    assert driver.get_info(spec).power_state == states.RUNNING
    thawed = cpu_ns(driver, spec)
    time.sleep(0.5)
    assert cpu_ns(driver, spec) - thawed > 50_000_000
    # a paused guest can still be stopped
    driver.pause(spec)
    driver.power_off(spec, timeout=0)
    assert driver.get_info(spec).power_state == states.SHUTDOWN
    with pytest.raises(exception.InstanceNotRunning):
        driver.pause(spec)


def test_delete_leaves_nothing(driver, guests):
    spec = guests.boot(flavor(**{"quota:disk_write_bytes_sec": "10485760"}))
    pid = init_pid(driver, spec.uuid)
    start_time = guest_mod.proc_start_time(pid)
    guest_exec(driver, spec.uuid, BUSY, background=True, guests=guests)
    assert _loop_backing() and any(spec.uuid in f
                                   for f in _loop_backing().values())
    driver.destroy(spec)
    # init may linger until the host reaps the orphaned nsenter'd loop
    wait_for(lambda: not guest_mod.is_same_process(pid, start_time),
             timeout=5, what="guest init gone")
    wait_for(lambda: not _traces(driver, spec.uuid), timeout=5,
             what=f"no traces ({_traces(driver, spec.uuid)})")
    assert driver.get_info(spec).power_state == states.NOSTATE
    driver.destroy(spec)  # idempotent


def test_restarted_driver_readopts_running_guest(driver, guests):
    spec = guests.boot()
    other = ContainerDriver(make_conf(driver.test_tmp, driver.cgroups.parent))
    other.init_host("pyct-test-host")
    assert other.get_info(spec).power_state == states.RUNNING
    assert spec.uuid in other.list_instances()
    # a live process with the recorded pid and start time, outside the
    # guest's cgroup (what a recycled pid looks like) is not the guest
    record = other.records.load(spec.uuid)
    impostor = subprocess.Popen(["/bin/sleep", "30"])
    try:
        fake = dict(record, pid=impostor.pid,
                    start_time=guest_mod.proc_start_time(impostor.pid))
        other.records.save(spec.uuid, fake)
        assert guest_mod.is_same_process(fake["pid"], fake["start_time"])
        assert other.get_info(spec).power_state == states.SHUTDOWN
    finally:
        other.records.save(spec.uuid, record)
        impostor.kill()
        impostor.wait()
    assert other.get_info(spec).power_state == states.RUNNING
    os.kill(record["pid"], signal.SIGKILL)
    wait_for(lambda: other.get_info(spec).power_state == states.SHUTDOWN,
             what="killed guest seen as shut down")
    assert driver.get_info(spec).power_state == states.SHUTDOWN
    other.power_on(spec)
    assert driver.get_info(spec).power_state == states.RUNNING
    assert guest_exec(driver, spec.uuid, ["/bin/echo", "back"]).stdout \
        == "back\n"


def _assert_spawn_fails(drv, spec, error):
    with pytest.raises(error):
        drv.spawn(spec)
    assert _traces(drv, spec.uuid) == []
    assert drv.get_info(spec).power_state == states.NOSTATE


def test_spawn_failure_unknown_image(driver, busybox_image):
    _assert_spawn_fails(driver, make_spec(flavor(), image_id="no-such"),
                        exception.ImageNotFound)


def test_spawn_failure_missing_init(driver, busybox_image):
    spec = make_spec(flavor(), os_command_line="/no/such/init")
    _assert_spawn_fails(driver, spec, exception.ProcessError)


def test_spawn_failure_in_cgroups(driver, busybox_image, monkeypatch):
    def broken(name, limits):
        raise exception.CgroupError(reason="injected")
    monkeypatch.setattr(driver.cgroups, "create", broken)
    _assert_spawn_fails(driver, make_spec(flavor()), exception.CgroupError)


def test_spawn_failure_in_rootfs(driver, busybox_image, monkeypatch):
    def broken(uuid, layers, **_idmap):
        raise exception.RootfsError(reason="injected")
    monkeypatch.setattr(driver.roots, "mount", broken)
    _assert_spawn_fails(driver, make_spec(flavor()), exception.RootfsError)


def test_spawn_failure_after_init_started(driver, busybox_image,
                                          monkeypatch):
    saved = driver.records.save
    started = []

    def failing_save(uuid, record):
        if record.get("pid"):
            started.append((record["pid"], record["start_time"]))
            raise exception.VirtError(reason="injected")
        saved(uuid, record)
    monkeypatch.setattr(driver.records, "save", failing_save)
    _assert_spawn_fails(driver, make_spec(flavor()), exception.VirtError)
    (pid, start_time), = started
    assert not guest_mod.is_same_process(pid, start_time)


def test_spawn_twice_is_refused(driver, guests):
    spec = guests.boot()
    with pytest.raises(exception.Duplicate):
        driver.spawn(spec)
    assert driver.get_info(spec).power_state == states.RUNNING
