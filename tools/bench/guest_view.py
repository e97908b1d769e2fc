"""Guest views: what lxcfs and the cpuset cost, and how fast they recover.

Usage (root): ``.venv/bin/python tools/bench/guest_view.py [--reads 2000]
[--spawns 20] [--guests 20] [--kills 10] [--json]``

* read latency of ``/proc/meminfo``: one reader process placed in a busybox
  guest's cgroups reads the guest's file (through the guest's root, so the
  lxcfs bind answers it, computed for the guest's cgroup) ``--reads``
  times; the same reader in the host's cgroup reads the host's own
  ``/proc/meminfo``, interleaved in blocks of 100. p50/p95 in
  microseconds.
* spawn time: ``ContainerDriver.spawn`` (m1.tiny) with the views and the
  cpuset on, each alone, and both off (the driver's ``views``/``cpusets``
  unset for that spawn), rotating, ``--spawns`` each; destroy after each.
* host memory per guest: lxcfs's RSS with one guest, then with
  ``--guests`` guests that each read all their views once.
* recovery: SIGKILL lxcfs ``--kills`` times with ``--guests``
  unprivileged and half as many privileged guests running; per kill the
  time until the watcher started a new one and every guest's
  ``/proc/meminfo`` answers again (mount propagation: no per-guest
  work, no reboot; that the guest then sees its flavor is
  ``test_guest_view.py``'s); p50/max over the kills.
  Then the read latency again, through the layers the kills stacked.
"""

from __future__ import annotations

import argparse
import os
import signal
import statistics
import subprocess
import sys
import time

import driver_env
import report

READER = r"""
import os, sys, time
path, n = sys.argv[1], int(sys.argv[2])
sys.stdin.readline()  # placed in the cgroup first
out = []
for _ in range(n):
    t = time.perf_counter_ns()
    fd = os.open(path, os.O_RDONLY)
    os.read(fd, 65536)
    os.close(fd)
    out.append(time.perf_counter_ns() - t)
print(" ".join(map(str, out)))
"""


def _reads(env, spec, path: str, n: int, in_guest: bool) -> list[int]:
    proc = subprocess.Popen([sys.executable, "-c", READER, path, str(n)],
                            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                            text=True)
    if in_guest:
        env.driver.cgroups.add_pid(spec.uuid, proc.pid)
    out, _ = proc.communicate("go\n", timeout=120)
    return [int(v) for v in out.split()]


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def _answers(pid: int) -> bool:
    """Whether the guest's ``/proc/meminfo`` view answers (read from the
    host: lxcfs computes it for the reader's cgroup, so the content is
    the host's; what matters is that the guest's mount path answers)."""
    try:
        with open(f"/proc/{pid}/root/proc/meminfo") as f:
            return f.readline().startswith("MemTotal:")
    except OSError:
        return False


def _kill_and_recover(drv, guests: list[int]) -> float | None:
    """SIGKILL lxcfs; seconds until every guest (init pids) reads its
    views again, None after 30 s."""
    lxcfs = drv.views.service_pid()
    t = time.perf_counter()
    os.kill(lxcfs, signal.SIGKILL)
    pending = set(guests)
    while pending and time.perf_counter() - t < 30:
        pending = {gpid for gpid in pending if not _answers(gpid)}
        time.sleep(0.005)
    took = time.perf_counter() - t
    time.sleep(0.6)  # the next kill past lxcfs' 0.5 s attribute cache
    return None if pending else took


def _rss_kb(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _spawn_series(env, n: int) -> dict[str, list[float]]:
    drv = env.driver
    views, cpusets = drv.views, drv.cpusets
    modes = {"on": (views, cpusets), "views_only": (views, None),
             "cpuset_only": (None, cpusets), "off": (None, None)}
    times: dict[str, list[float]] = {mode: [] for mode in modes}
    order = list(modes)
    for i in range(n + 2):
        order = order[1:] + order[:1]  # rotate: each mode in each slot
        for mode in order:
            drv.views, drv.cpusets = modes[mode]
            spec = env.new_spec()
            t = time.perf_counter()
            env.spawn(spec)
            secs = time.perf_counter() - t
            env.destroy(spec)
            if i >= 2:  # warm-up
                times[mode].append(secs * 1000)
    drv.views, drv.cpusets = views, cpusets
    return times


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--reads", type=int, default=2000)
    ap.add_argument("--spawns", type=int, default=20)
    ap.add_argument("--guests", type=int, default=20)
    ap.add_argument("--kills", type=int, default=10)
    ap.add_argument("--json", action="store_true")
    args = ap.parse_args()
    res: dict = {"host_cpus": os.cpu_count()}
    with driver_env.DriverEnv() as env:
        drv = env.driver
        first = env.new_spec()
        env.spawn(first)
        pid = env.guest_pid(first)
        guest_ns, host_ns = [], []
        for _ in range(max(1, args.reads // 100)):
            guest_ns += _reads(env, first, f"/proc/{pid}/root/proc/meminfo",
                               100, True)
            host_ns += _reads(env, first, "/proc/meminfo", 100, False)
        for name, vals in (("guest", guest_ns), ("host", host_ns)):
            res[f"meminfo_{name}_us"] = {
                "p50": round(_pct(vals, 0.5) / 1000, 1),
                "p95": round(_pct(vals, 0.95) / 1000, 1)}
        spawns = _spawn_series(env, args.spawns)
        res["spawn_ms"] = {k: {"median": round(statistics.median(v), 1),
                               "p95": round(_pct(v, 0.95), 1)}
                           for k, v in spawns.items()}
        lxcfs = drv.views.service_pid()
        rss_one = _rss_kb(lxcfs)
        specs = [first]
        for _ in range(args.guests - 1):
            spec = env.new_spec(driver_env.base.FlavorSpec(1, 64, 0))
            env.spawn(spec)
            specs.append(spec)
        for spec in specs:
            _reads(env, spec, f"/proc/{env.guest_pid(spec)}/root/proc/"
                   "meminfo", 3, True)
        res["lxcfs_rss_kb"] = {"1_guest": rss_one,
                               f"{args.guests}_guests": _rss_kb(lxcfs)}
        res["lxcfs_kb_per_guest"] = round(
            (_rss_kb(lxcfs) - rss_one) / max(1, args.guests - 1), 1)
        privileged = []
        for _ in range(args.guests // 2):
            spec = env.new_spec(driver_env.base.FlavorSpec(1, 64, 0),
                                privileged=True)
            env.spawn(spec)
            privileged.append(spec)
        every = [env.guest_pid(s) for s in specs + privileged]
        took = [_kill_and_recover(drv, every) for _ in range(args.kills)]
        res["recovery_s"] = {
            "guests": len(every), "privileged": len(privileged),
            "kills": len(took), "recovered": sum(t is not None for t in took),
            "p50": round(statistics.median(t or 30 for t in took), 3),
            "max": round(max(t or 30 for t in took), 3)}
        after = []
        for _ in range(max(1, args.reads // 100)):
            after += _reads(env, first, f"/proc/{pid}/root/proc/meminfo",
                            100, True)
        res["meminfo_guest_after_kills_us"] = {
            "p50": round(_pct(after, 0.5) / 1000, 1),
            "p95": round(_pct(after, 0.95) / 1000, 1)}
        drv.views.stop()
    if args.json:  # every figure under "extra", as tools/bench/summary reads
        report.emit("guest views: lxcfs and cpuset cost", {}, res, True)
    else:
        for key, val in res.items():
            print(f"{key}: {val}")


if __name__ == "__main__":
    main()
