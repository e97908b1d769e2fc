"""A guest flooding its console costs the host a bounded amount.

The launcher copies every guest's console into its log and no cgroup pays
for that CPU: an adversarial review measured ~0.35 of a core spent on one
guest running ``yes`` on its console. The launcher now reads each console
at no more than ``[container] console_rate_bytes`` (after a burst), and the
guest blocks on its console like a VM on a slow serial line. Measured here
through the launcher's own counters and CPU time while a guest floods;
another guest's console keeps working meanwhile.
"""

from __future__ import annotations

import json
import os
import time

from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    busybox_image, driver, guests, wait_for)

FLOOD = json.dumps(["/bin/busybox", "yes", "pyct-flood-" + "x" * 52])


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def test_console_flood_is_read_at_the_bounded_rate(driver, guests):
    limits = driver.guest_limits
    assert limits.console_rate == 65536
    flood = guests.boot(os_command_line=FLOOD)
    quiet = guests.boot()
    status = (lambda spec: driver.launcher.status(spec.uuid))
    # the burst goes first, at full speed
    wait_for(lambda: status(flood)["console_bytes"] >= limits.console_burst,
             timeout=30, what="the console burst")
    launcher = driver.launcher.launcher_pid()
    time.sleep(0.5)
    cpu0, read0, t0 = (_cpu_seconds(launcher),
                       status(flood)["console_bytes"], time.monotonic())
    time.sleep(4.0)
    cpu1, read1, t1 = (_cpu_seconds(launcher),
                       status(flood)["console_bytes"], time.monotonic())
    rate = (read1 - read0) / (t1 - t0)
    assert rate <= limits.console_rate * 1.1 + 65536 / (t1 - t0), rate
    assert rate >= limits.console_rate * 0.5, rate  # still read, steadily
    cores = (cpu1 - cpu0) / (t1 - t0)
    assert cores < 0.1, f"launcher used {cores:.3f} cores"
    # the flooder is alive (blocked on its console, not killed) and the
    # other guest's console is served
    assert status(flood)["alive"]
    log = os.path.join(driver.records.dir(quiet.uuid), "console.log")
    assert os.path.getsize(log) > 0
    tail = driver.get_console_output(flood, 2)
    assert "pyct-flood-" in tail
