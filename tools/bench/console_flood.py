"""What a guest flooding its console costs the host's launcher.

Usage (root): ``.venv/bin/python tools/bench/console_flood.py [--runs 5]
[--seconds 3] [--json]``

The launcher copies every guest's console into its log; no cgroup pays for
that CPU. One ``ContainerDriver`` (``driver_env.DriverEnv``), m1.tiny
guests whose init is ``yes`` with a 64-byte line (the fastest console
writer busybox has), two series interleaved round by round:

* ``unbounded`` -- ``[container] console_rate_bytes = 0`` (how pyct read
  consoles before the bound);
* ``bounded`` -- the default ``console_rate_bytes`` (64 KiB/s, 1 MiB
  burst).

Per run: boot the flooder, let it pass its burst, then sample the
launcher's own CPU time (utime+stime from /proc/<launcher>/stat) and the
console bytes it read (the launcher's ``status``) over ``--seconds``.
Prints the launcher's CPU in cores (median/p95: 1.000 = one core busy)
and the bytes per second it copied.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
import time

import driver_env
import report

LINE = "pyct-console-flood-" + "x" * 44  # 63 chars + newline


def _cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def one(env: driver_env.DriverEnv, rate: int, seconds: float
        ) -> tuple[float, float]:
    """(launcher cores, console bytes a second) while one guest floods."""
    driver = env.driver
    driver.guest_limits = dataclasses.replace(
        driver.guest_limits, console_rate=rate)
    spec = dataclasses.replace(env.new_spec(), image_properties={
        "os_command_line": json.dumps(["/bin/busybox", "yes", LINE])})
    env.spawn(spec)
    try:
        launcher = driver.launcher.launcher_pid()
        time.sleep(1.0 + driver.guest_limits.console_burst / 65536 / 8)
        cpu0, bytes0 = (_cpu_seconds(launcher),
                        driver.launcher.status(spec.uuid)["console_bytes"])
        start = time.monotonic()
        time.sleep(seconds)
        elapsed = time.monotonic() - start
        cpu1, bytes1 = (_cpu_seconds(launcher),
                        driver.launcher.status(spec.uuid)["console_bytes"])
    finally:
        env.destroy(spec)
    return (cpu1 - cpu0) / elapsed, (bytes1 - bytes0) / elapsed


def main() -> int:
    p = report.parser(__doc__.splitlines()[0], 5)
    p.add_argument("--seconds", type=float, default=3.0)
    args = p.parse_args()
    report.interrupt_on_term()
    cores: dict[str, list[float]] = {"unbounded": [], "bounded": []}
    rates: dict[str, list[float]] = {"unbounded": [], "bounded": []}
    with driver_env.DriverEnv() as env:
        default_rate = env.driver.guest_limits.console_rate
        for i in range(args.runs):
            order = ("unbounded", "bounded") if i % 2 == 0 else \
                ("bounded", "unbounded")
            for key in order:
                c, r = one(env, 0 if key == "unbounded" else default_rate,
                           args.seconds)
                cores[key].append(c)
                rates[key].append(r)
    rows = {f"{k} launcher cores": report.summarize(v)
            for k, v in cores.items()}
    extra = {f"{k} console KiB/s (median)":
             sorted(v)[len(v) // 2] / 1024 for k, v in rates.items()}
    extra["console_rate_bytes"] = default_rate
    report.emit("console flood: the launcher's CPU", rows, extra, args.json,
                unit="cores")
    return 0


if __name__ == "__main__":
    sys.exit(main())
