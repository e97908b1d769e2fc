"""Spawn-time cost of the user namespace: privileged vs default guests.

Usage (root): ``.venv/bin/python tools/bench/userns_spawn.py [--runs 30]
[--json]``

Two series on one ``ContainerDriver`` (``driver_env.DriverEnv``: throw-away
state dir, cgroup parent ``pyct-bench-*``, busybox image cached), m1.tiny
flavor (1 vCPU, 512 MiB, 1 GiB root disk):

* ``privileged`` -- flavor extra spec ``pyct:privileged=true``, spec
  ``privileged=True``, no id range: no user namespace, guest root is host
  root (the pre-userns behaviour);
* ``userns`` -- the default: a 65,536-id range, the guest's init in its
  own user namespace (uid/gid maps written, the root's upper dir owned
  by the range's first id).

Runs are interleaved (the order alternates every iteration) so both see
the same machine noise, after a few warm-up runs of each. The clock covers
``ContainerDriver.spawn()`` until the guest's pid runs ``init``
(/proc/PID/comm), i.e. the image's init has been exec'd; each guest is
destroyed (untimed) before the next spawn. Prints median/p95/min/max of
each series and the median and p95 differences (userns - privileged).
"""

from __future__ import annotations

import dataclasses
import sys
import time

import driver_env
import report

WARMUP = 3


def wait_comm(pid: int, want: str = "init", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with open(f"/proc/{pid}/comm") as f:
                if f.read().strip() == want:
                    return
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} never ran {want}")
        time.sleep(0.0005)


def one(env: driver_env.DriverEnv, privileged: bool) -> float:
    flavor = driver_env.TINY
    if privileged:
        flavor = dataclasses.replace(
            flavor, extra_specs={"pyct:privileged": "true"})
    spec = env.new_spec(flavor, privileged=privileged)
    start = time.perf_counter()
    env.spawn(spec)
    wait_comm(env.guest_pid(spec))
    elapsed = time.perf_counter() - start
    env.destroy(spec)
    return elapsed


def check_modes(env: driver_env.DriverEnv) -> dict:
    """Make sure the two series really differ: the privileged guest
    shares the host's user namespace, the default one does not."""
    seen = {}
    for privileged in (True, False):
        flavor = driver_env.TINY if not privileged else dataclasses.replace(
            driver_env.TINY, extra_specs={"pyct:privileged": "true"})
        spec = env.new_spec(flavor, privileged=privileged)
        env.spawn(spec)
        pid = env.guest_pid(spec)
        with open(f"/proc/{pid}/uid_map") as f:
            seen["privileged" if privileged else "userns"] = \
                " ".join(f.read().split())
        env.destroy(spec)
    if seen["privileged"] == seen["userns"]:
        raise SystemExit("both series run in the same user namespace "
                         f"(uid_map {seen['userns']!r}): is the user "
                         "namespace work in place?")
    return seen


def main() -> int:
    args = report.parser(__doc__.splitlines()[0], 30).parse_args()
    report.interrupt_on_term()
    samples: dict[str, list[float]] = {"privileged": [], "userns": []}
    with driver_env.DriverEnv() as env:
        maps = check_modes(env)
        for _ in range(WARMUP):
            one(env, True)
            one(env, False)
        for i in range(args.runs):
            order = (True, False) if i % 2 == 0 else (False, True)
            for privileged in order:
                key = "privileged" if privileged else "userns"
                samples[key].append(one(env, privileged))
    rows = {k: report.summarize(v) for k, v in samples.items()}
    extra = {
        "median_diff_ms (userns - privileged)":
            (rows["userns"]["median"] - rows["privileged"]["median"]) * 1000,
        "p95_diff_ms (userns - privileged)":
            (rows["userns"]["p95"] - rows["privileged"]["p95"]) * 1000,
        "uid_map privileged": maps["privileged"],
        "uid_map userns": maps["userns"],
    }
    report.emit("spawn: user namespace cost", rows, extra, args.json)
    return 0


if __name__ == "__main__":
    sys.exit(main())
