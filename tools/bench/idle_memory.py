"""Host memory per idle instance, with hundreds of busybox guests running.

Usage (root): ``.venv/bin/python tools/bench/idle_memory.py [--guests 200]
[--runs 1] [--json]``

Boots ``--guests`` m1.tiny busybox guests through ``ContainerDriver``
directly (image cached, launcher already running), lets them settle, and
measures what the host pays per guest OUTSIDE the guests' own cgroups:

* ``host_side_memcg``: growth of the memory cgroup(s) holding this program
  and the launcher (the launcher inherits ours; compute would be the same).
  Kernel objects allocated while setting a guest up (before its init joins
  its own cgroup), mount/loop/ext4 metadata and the page cache of the root
  disk written by mkfs.ext4 are charged there: split into kmem, cache and
  rss. Not affected by other work on the machine.
* ``outside`` = (MemTotal - MemAvailable growth) - (growth of the summed
  ``memory.usage_in_bytes`` of the guests' memory cgroups). It holds the
  kernel objects nobody charges to the guest (namespaces, mounts, cgroup
  structures, ext4/loop metadata, the pty) and the host processes' growth.
  Host-wide, so other work on the machine adds noise: the per-guest value
  is also given as the least-squares slope over checkpoints every 25
  guests, which is less sensitive to a single noisy sample.
* the launcher's RSS / PSS growth (it keeps a pty pair and a console log
  per guest);
* processes: host processes outside the guests' cgroups before and after
  (host-wide, so other helpers' work shows), the launcher's children that
  are outside guest cgroups (must be 0: no per-instance host process), and
  tasks inside the guests' cgroups (1 per busybox guest: its init).

All guests are destroyed at the end (and on Ctrl-C), then the launcher,
the cgroup parent, mounts, loop devices and the temp dir are removed.
"""

from __future__ import annotations

import json
import os
import statistics
import time

import driver_env
import report

MEMCG = "/sys/fs/cgroup/memory"


def meminfo() -> dict[str, int]:
    out = {}
    with open("/proc/meminfo") as f:
        for line in f:
            key, value = line.split(":", 1)
            out[key] = int(value.split()[0]) * 1024
    return out


def proc_kb(pid: int, key: str, name: str = "status") -> int:
    with open(f"/proc/{pid}/{name}") as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    return 0


def guests_usage(parent: str, uuids: list[str]) -> int:
    total = 0
    for uid in uuids:
        with open(os.path.join(MEMCG, parent, uid,
                               "memory.usage_in_bytes")) as f:
            total += int(f.read())
    return total


def processes(parent: str) -> tuple[int, int, dict[int, int]]:
    """(host processes outside the guest cgroups, tasks inside them,
    {pid: ppid} of those outside)."""
    outside, inside, ppids = 0, 0, {}
    marker = f":/{parent}/"
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cgroup") as f:
                cg = f.read()
            with open(f"/proc/{entry}/stat") as f:
                ppid = int(f.read().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if marker in cg:
            inside += 1
        else:
            outside += 1
            ppids[int(entry)] = ppid
    return outside, inside, ppids


def memcg_of(pid: int | str) -> str:
    with open(f"/proc/{pid}/cgroup") as f:
        for line in f:
            _, ctrls, path = line.rstrip("\n").split(":", 2)
            if "memory" in ctrls.split(","):
                return os.path.join(MEMCG, path.lstrip("/"))
    raise RuntimeError("no memory cgroup (cgroup v1 memory hierarchy)")


def memcg_sample(paths: list[str]) -> dict[str, int]:
    """Usage, kmem and cache/rss of the benchmark's and the launcher's
    memory cgroups (each counted once)."""
    out = {"usage": 0, "kmem": 0, "cache": 0, "rss": 0}
    for path in paths:
        with open(os.path.join(path, "memory.usage_in_bytes")) as f:
            out["usage"] += int(f.read())
        with open(os.path.join(path, "memory.kmem.usage_in_bytes")) as f:
            out["kmem"] += int(f.read())
        with open(os.path.join(path, "memory.stat")) as f:
            stat = dict(line.split() for line in f)
        out["cache"] += int(stat["total_cache"])
        out["rss"] += int(stat["total_rss"])
    return out


def sample(env: driver_env.DriverEnv, launcher: int, uuids: list[str],
           memcgs: list[str]) -> dict:
    mi = meminfo()
    mc = memcg_sample(memcgs)
    return {"n": len(uuids), "used": mi["MemTotal"] - mi["MemAvailable"],
            "memcg": mc["usage"], "memcg_kmem": mc["kmem"],
            "memcg_cache": mc["cache"], "memcg_rss": mc["rss"],
            "slab": mi["Slab"], "kstack": mi["KernelStack"],
            "pagetables": mi["PageTables"],
            "guests": guests_usage(env.parent, uuids),
            "launcher_rss": proc_kb(launcher, "VmRSS"),
            "launcher_pss": proc_kb(launcher, "Pss", "smaps_rollup")}


def slope(points: list[tuple[int, float]]) -> float:
    n = len(points)
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


def one_run(guests: int) -> tuple[dict, list[float]]:
    with driver_env.DriverEnv() as env:
        # memory, not disk: sparse disks (preallocated, 200 guests' 1 GiB
        # disks would need 200 GiB of free disk on the bench host)
        env.driver.roots.preallocate = False
        launcher = env.driver.launcher.ensure_running()
        memcgs = sorted({memcg_of("self"), memcg_of(launcher)})
        time.sleep(1.0)
        before_procs = processes(env.parent)
        before_fds = len(os.listdir(f"/proc/{launcher}/fd"))
        base = sample(env, launcher, [], memcgs)
        checkpoints = [base]
        uuids: list[str] = []
        spawn_times: list[float] = []
        for i in range(guests):
            spec = env.new_spec()
            t = time.perf_counter()
            env.spawn(spec)
            spawn_times.append(time.perf_counter() - t)
            uuids.append(spec.uuid)
            if (i + 1) % 25 == 0 or i + 1 == guests:
                checkpoints.append(sample(env, launcher, uuids, memcgs))
        time.sleep(3.0)  # let the inits finish their sysinit steps
        final = sample(env, launcher, uuids, memcgs)
        reachable = sum(1 for uid in uuids
                        if env.driver.launcher.status(uid).get("alive"))
        launcher_fds = len(os.listdir(f"/proc/{launcher}/fd"))
        out, inside, ppids = processes(env.parent)
        new_outside = {p: pp for p, pp in ppids.items()
                       if p not in before_procs[2]}
        comms = {}
        for pid, ppid in new_outside.items():
            try:
                with open(f"/proc/{pid}/comm") as f:
                    comm = f.read().strip()
            except OSError:
                continue
            kind = "kthread" if ppid == 2 else "user"
            key = f"{kind}:{comm.rstrip('0123456789')}*"
            comms[key] = comms.get(key, 0) + 1
        launcher_kids_outside = sum(1 for p in ppids.values()
                                    if p == launcher)
        d = {k: final[k] - base[k] for k in base if k != "n"}
        outside_pts = [(c["n"], (c["used"] - base["used"])
                        - (c["guests"] - base["guests"]))
                       for c in checkpoints]
        memcg_pts = [(c["n"], c["memcg"] - base["memcg"])
                     for c in checkpoints]
        kthreads = sum(v for k, v in comms.items()
                       if k.startswith("kthread:"))
        result = {
            "guests_alive_by_launcher": reachable,
            "kernel_threads_new (host-wide)": kthreads,
            "kernel_threads_new_per_guest_n": round(kthreads / guests, 2),
            "launcher_fds_per_guest_n": round(
                (launcher_fds - before_fds) / guests, 2),
            "host_side_memcg_per_guest": d["memcg"] / guests,
            "host_side_memcg_slope_per_guest": slope(memcg_pts),
            "host_side_memcg_kmem_per_guest": d["memcg_kmem"] / guests,
            "host_side_memcg_cache_per_guest": d["memcg_cache"] / guests,
            "host_side_memcg_rss_per_guest": d["memcg_rss"] / guests,
            "outside_per_guest": (d["used"] - d["guests"]) / guests,
            "outside_slope_per_guest": slope(outside_pts),
            "guest_cgroup_usage_per_guest": d["guests"] / guests,
            "host_used_per_guest": d["used"] / guests,
            "slab_per_guest": d["slab"] / guests,
            "kernel_stack_per_guest": d["kstack"] / guests,
            "pagetables_per_guest": d["pagetables"] / guests,
            "launcher_rss_growth_per_guest": d["launcher_rss"] / guests,
            "launcher_pss_growth_per_guest": d["launcher_pss"] / guests,
            "host_processes_outside_guests_before": before_procs[0],
            "host_processes_outside_guests_after": out,
            "launcher_children_outside_guest_cgroups": launcher_kids_outside,
            "tasks_inside_guest_cgroups": inside,
            "new_host_processes_by_name (host-wide, incl. other work)":
                dict(sorted(comms.items(), key=lambda kv: -kv[1])[:8]),
            "spawn_median_ms_first_25":
                statistics.median(spawn_times[:25]) * 1e3,
            "spawn_median_ms_last_25":
                statistics.median(spawn_times[-25:]) * 1e3,
        }
        # printed before the (long, at 2,000) destroy phase, too
        print(json.dumps({"before destroy": result}, default=str),
              flush=True)
        t = time.perf_counter()
        for uid in list(env.live):
            env.destroy(env.live[uid])
        result["destroy_all_s"] = time.perf_counter() - t
        time.sleep(1.0)
        after = sample(env, launcher, [], memcgs)
        result["host_used_left_after_destroy_per_guest"] = (
            after["used"] - base["used"]) / guests
        result["host_side_memcg_left_after_destroy_per_guest"] = (
            after["memcg"] - base["memcg"]) / guests
        result["host_side_memcgs"] = memcgs
    return result, spawn_times


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 1)
    p.add_argument("--guests", type=int, default=200)
    args = p.parse_args()
    report.interrupt_on_term()
    results, spawns = [], []
    for _ in range(args.runs):
        r, s = one_run(args.guests)
        results.append(r)
        spawns.extend(s)
    extra: dict = {"guests": args.guests, "runs": args.runs}
    for key in results[0]:
        values = [r[key] for r in results]
        if key.endswith("per_guest"):
            extra[key.replace("per_guest", "per_guest_KiB")] = \
                round(sum(values) / len(values) / 1024, 1)
        else:
            extra[key] = values if len(values) > 1 else values[0]
    rows = {f"driver.spawn() while filling to {args.guests}":
            report.summarize(spawns)}
    report.emit(f"idle memory with {args.guests} busybox guests", rows,
                extra, args.json)


if __name__ == "__main__":
    main()
