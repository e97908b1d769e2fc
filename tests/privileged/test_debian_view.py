"""Inside a Debian guest (systemd, procps, util-linux) the usual tools
report its flavor -- ``free -m``, ``nproc``, ``/proc/cpuinfo``, ``uptime``,
``lscpu``, ``df -h /`` -- and its mount table names no host path and no
other guest; after a crash of the view service (lxcfs) systemd's
sandboxed services still start and ``free`` shows the flavor again.
"""

from __future__ import annotations

import time

from tests.privileged.debian_fixtures import (  # noqa: F401 - fixtures
    debian_image)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, flavor, guest_exec, guests)
from tests.privileged.test_guest_view import (
    check_flavor_view, kill_and_wait_for_views)
from tests.waiting import wait_for


def _sh(drv, uuid: str, script: str) -> str:
    return guest_exec(drv, uuid, ["/bin/sh", "-c", script],
                      timeout=20).stdout


def test_debian_guest_sees_its_flavor(driver, debian_image, guests):
    booted = time.monotonic()
    spec = guests.boot(flavor(vcpus=1, memory_mb=512, root_gb=2),
                       image_id=debian_image)
    other = guests.boot(flavor(vcpus=1, memory_mb=64, root_gb=1))
    check_flavor_view(driver, spec, time.monotonic() - booted, free=True)
    assert "CPU(s):                          1" in _sh(
        driver, spec.uuid, "lscpu") or _sh(
        driver, spec.uuid, "lscpu -p=cpu | grep -vc '^#'").strip() == "1"
    size = _sh(driver, spec.uuid, "df -h --output=size / | tail -1")
    assert size.strip() in ("2.0G", "1.9G"), size
    secrets = [driver.test_tmp, driver.base_dir, other.uuid, spec.uuid,
               driver.cgroups.parent]
    for path in ("/proc/self/mountinfo", "/proc/mounts"):
        for line in _sh(driver, spec.uuid, f"cat {path}").splitlines():
            for secret in secrets:
                assert secret not in line, (path, secret, line)

    # the views are locked below /proc like the masks, so systemd's
    # sandboxed services (logind: ProtectProc) still start
    state = guest_exec(driver, spec.uuid, [
        "systemctl", "is-system-running", "--wait"], check=False,
        timeout=60).stdout.strip()
    assert state == "running", _sh(driver, spec.uuid,
                                   "systemctl --failed --no-legend || true")


def test_systemd_guest_across_a_restart_of_the_view_service(
        driver, debian_image, guests):
    """lxcfs crashes under a running systemd guest: ``free -m`` shows the
    flavor again without a reboot (the new files reach the guest by
    propagation, locked like the first ones), and a sandboxed service
    (logind: ProtectProc, its own /proc) still restarts after it."""
    booted = time.monotonic()
    spec = guests.boot(flavor(vcpus=1, memory_mb=448, root_gb=2),
                       image_id=debian_image)
    def booted_state() -> str:  # "" / offline: its manager not up yet
        state = guest_exec(driver, spec.uuid, [
            "systemctl", "is-system-running", "--wait"], check=False,
            timeout=60).stdout.strip()
        return "" if state == "offline" else state

    state = wait_for(booted_state, timeout=60, interval=0.5)
    assert state == "running", state
    took = kill_and_wait_for_views(driver, (spec,))
    assert took < 5, took
    check_flavor_view(driver, spec, time.monotonic() - booted, free=True)
    restart = guest_exec(driver, spec.uuid, [
        "systemctl", "restart", "systemd-logind"], check=False, timeout=30)
    assert restart.returncode == 0, restart
    state = guest_exec(driver, spec.uuid, [
        "systemctl", "is-system-running"], check=False,
        timeout=30).stdout.strip()
    assert state == "running", _sh(driver, spec.uuid,
                                   "systemctl --failed --no-legend || true")
