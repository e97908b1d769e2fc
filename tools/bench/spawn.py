"""Spawn and destroy: pyct's container driver next to Debian's runc.

Usage (root): ``.venv/bin/python tools/bench/spawn.py [--runs 50] [--json]``

Both sides boot the same busybox root (one tarball, built by
``pyct_driver.virt.rootfs.busybox``) with m1.tiny limits (1 vCPU cap and
1024 shares, 512 MiB RAM and no swap, pids 1024) in fresh pid, mount, uts,
ipc, net and cgroup namespaces, init = ``/sbin/init``. A third
series, pyct with ``root_gb=0`` (no disk: the overlay's upper dir on the
host file system, like runc's plain directory root), shows pyct without
the per-instance disk; a fourth, pyct with a sparse disk
(``preallocate_images=none``), what preallocating the disk costs.
``--root-gb N`` sizes the disk (default 1, m1.tiny; m1.small has 20). Runs are interleaved (the order rotates every
iteration) so both share the machine's
noise; a few warm-up runs of each are not counted.

* pyct spawn = ``ContainerDriver.spawn()`` with the image cached: record dir
  + JSON record, image layer reference, root disk (sparse copy of an ext4
  template formatted once per size), loop device + ext4 mount + overlay
  mount, cgroup create in each v1 hierarchy with limits, launcher requests
  (``begin``: fork C1, which joins the cgroups while the root is made and
  mounted; ``start``: namespaces, pivot_root, console pty, exec of init),
  record again.
* runc spawn = ``runc run -d`` on a bundle whose config.json (from
  ``runc spec``, edited) points at the tarball unpacked once (no per-run
  disk or overlay: runc has no copy-on-write root of its own).
* Both spawns stop the clock when the guest's pid runs ``init``
  (/proc/PID/comm), i.e. the image's init has been exec'd.
* pyct destroy = ``ContainerDriver.destroy()``: kill the cgroup's tasks and
  wait for init to die, rmdir the cgroups, unmount overlay + ext4 (loop
  autoclear), delete the disk and record. runc destroy = ``runc delete -f``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time

import driver_env
import report
import teardown

RUNC = shutil.which("runc") or "/usr/sbin/runc"
WARMUP = 3


def wait_comm(pid: int, want: str = "init", timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    path = f"/proc/{pid}/comm"
    while True:
        try:
            with open(path) as f:
                if f.read().strip() == want:
                    return
        except FileNotFoundError:
            pass
        if time.monotonic() > deadline:
            raise TimeoutError(f"pid {pid} never ran {want}")
        time.sleep(0.0002)


class Steps:
    """Wraps methods of live objects to add their wall time per step."""

    def __init__(self) -> None:
        self.samples: dict[str, list[float]] = {}
        self._current: dict[str, float] = {}

    def wrap(self, obj: object, attr: str, label: str) -> None:
        fn = getattr(obj, attr)

        def timed(*a, **kw):
            t = time.perf_counter()
            try:
                return fn(*a, **kw)
            finally:
                self._current[label] = self._current.get(label, 0.0) + \
                    time.perf_counter() - t
        setattr(obj, attr, timed)

    def commit(self) -> None:
        for label, secs in self._current.items():
            self.samples.setdefault(label, []).append(secs)
        self._current.clear()

    def drop(self) -> None:
        self._current.clear()


class Runc:
    """runc containers under a private --root and our cgroup parent."""

    def __init__(self, tmp: str, tarball: str, parent: str) -> None:
        self.dir = os.path.join(tmp, "runc")
        self.root = os.path.join(self.dir, "state")
        self.rootfs = os.path.join(self.dir, "rootfs")
        self.parent = parent
        self.live: set[str] = set()
        os.makedirs(self.rootfs)
        with tarfile.open(tarball) as tar:
            tar.extractall(self.rootfs, filter="fully_trusted")
        tmpl = os.path.join(self.dir, "template")
        os.makedirs(tmpl)
        subprocess.run([RUNC, "spec"], cwd=tmpl, check=True)
        with open(os.path.join(tmpl, "config.json")) as f:
            self.template = json.load(f)
        c = self.template
        c["process"]["args"] = ["/sbin/init"]
        c["process"]["terminal"] = False
        c["root"] = {"path": self.rootfs, "readonly": False}
        namespaces = {ns["type"] for ns in c["linux"]["namespaces"]}
        for ns in ("pid", "network", "ipc", "uts", "mount", "cgroup"):
            if ns not in namespaces:
                c["linux"]["namespaces"].append({"type": ns})
        c["linux"]["resources"].update({
            "memory": {"limit": 512 << 20, "swap": 512 << 20},
            "cpu": {"shares": 1024, "quota": 100000, "period": 100000},
            "pids": {"limit": 1024}})
        self.log = open(os.path.join(self.dir, "console.log"), "ab")

    def _runc(self, *args: str) -> None:
        subprocess.run([RUNC, "--root", self.root, *args], check=True,
                       stdin=subprocess.DEVNULL, stdout=self.log,
                       stderr=self.log)

    def spawn(self, name: str) -> float:
        bundle = os.path.join(self.dir, name)
        os.makedirs(bundle)
        cfg = copy.deepcopy(self.template)
        cfg["hostname"] = name
        cfg["linux"]["cgroupsPath"] = f"/{self.parent}/{name}"
        with open(os.path.join(bundle, "config.json"), "w") as f:
            json.dump(cfg, f)
        pidfile = os.path.join(bundle, "pid")
        self.live.add(name)
        t = time.perf_counter()
        self._runc("run", "-d", "--pid-file", pidfile, "-b", bundle, name)
        with open(pidfile) as f:
            pid = int(f.read())
        wait_comm(pid)
        return time.perf_counter() - t

    def destroy(self, name: str) -> float:
        t = time.perf_counter()
        self._runc("delete", "-f", name)
        elapsed = time.perf_counter() - t
        self.live.discard(name)
        shutil.rmtree(os.path.join(self.dir, name), ignore_errors=True)
        return elapsed

    def close(self) -> None:
        for name in list(self.live):
            try:
                self.destroy(name)
            except Exception as err:
                print(f"WARNING: runc delete {name}: {err}", file=sys.stderr)
        self.log.close()
        teardown.report_leftovers(
            "runc cgroups", teardown.remove_cgroup_parent(self.parent))


NODISK = driver_env.base.FlavorSpec(vcpus=1, memory_mb=512, root_gb=0)


def pyct_once(env: driver_env.DriverEnv, steps: Steps | None,
              flavor=driver_env.TINY) -> tuple[float, float]:
    spec = env.new_spec(flavor)
    t = time.perf_counter()
    env.spawn(spec)
    spawned = time.perf_counter()
    pid = env.guest_pid(spec)  # not timed: the launcher answers it
    with open(f"/proc/{pid}/comm") as f:
        running = f.read().strip() == "init"
    if not running:
        wait_comm(pid)
        spawned = time.perf_counter()
    t_spawn = spawned - t
    t = time.perf_counter()
    env.destroy(spec)
    t_destroy = time.perf_counter() - t
    if steps:
        steps.commit()
    return t_spawn, t_destroy


def instrument(env: driver_env.DriverEnv) -> Steps:
    """Time the driver's steps; a step the driver no longer has (it is
    being refactored) is skipped, not fatal."""
    d = env.driver
    steps = Steps()
    records = getattr(d, "records", None)
    plan = [
        (d.images, "acquire", "spawn: image acquire"),
        (d.roots, "create", "spawn: root disk create (template copy + fallocate)"),
        (d.roots, "mount", "spawn: loop + ext4 + overlay mount"),
        (sys.modules[type(d).__module__].__dict__.get("inject"), "inject",
         "spawn: inject hostname/keys into root"),
        (d.cgroups, "create", "spawn: cgroup create + limits"),
        (d.launcher, "spawn", "spawn: launcher (fork..exec init)"),
        (d.launcher, "begin", "spawn: launcher begin (fork C1, userns)"),
        (d.launcher, "start", "spawn: launcher start (gate..exec init)"),
        (records, "save", "spawn: record writes (fsync)"),
        (d, "_save", "spawn: record writes (fsync)"),
        (d, "_kill_guest", "destroy: kill guest + wait"),
        (d.cgroups, "destroy", "destroy+spawn: cgroup rmdir"),
        (d.roots, "remove", "destroy: unmount + rm disk"),
    ]
    for obj, attr, label in plan:
        if obj is not None and callable(getattr(obj, attr, None)):
            steps.wrap(obj, attr, label)
    return steps


def sparse_once(env: driver_env.DriverEnv, flavor) -> tuple[float, float]:
    env.driver.roots.preallocate = False
    try:
        return pyct_once(env, None, flavor)
    finally:
        env.driver.roots.preallocate = True


def main() -> None:
    parser = report.parser(__doc__.splitlines()[0], 50)
    parser.add_argument("--root-gb", type=int, default=1,
                        help="root disk of the pyct series (default 1)")
    args = parser.parse_args()
    report.interrupt_on_term()
    flavor = dataclasses.replace(driver_env.TINY, root_gb=args.root_gb)
    pyct_spawn, pyct_destroy, runc_spawn, runc_destroy = [], [], [], []
    nodisk_spawn, nodisk_destroy = [], []
    sparse_spawn, sparse_destroy = [], []
    runc = None
    with driver_env.DriverEnv() as env:
        try:
            runc = Runc(env.tmp, env.tarball,
                        env.parent.replace("bench-", "bench-runc-"))
            steps = instrument(env)
            for i in range(WARMUP):
                pyct_once(env, None, flavor)
                steps.drop()
                runc.spawn(f"warm{i}")
                runc.destroy(f"warm{i}")
            for i in range(args.runs):
                order = ["pyct", "runc", "nodisk", "sparse"]
                order = order[i % 4:] + order[:i % 4]
                for who in order:
                    if who == "sparse":
                        s, d = sparse_once(env, flavor)
                        steps.drop()
                        sparse_spawn.append(s)
                        sparse_destroy.append(d)
                    elif who == "nodisk":
                        s, d = pyct_once(env, None, NODISK)
                        steps.drop()
                        nodisk_spawn.append(s)
                        nodisk_destroy.append(d)
                    elif who == "pyct":
                        s, d = pyct_once(env, steps, flavor)
                        pyct_spawn.append(s)
                        pyct_destroy.append(d)
                    else:
                        runc_spawn.append(runc.spawn(f"r{i}"))
                        runc_destroy.append(runc.destroy(f"r{i}"))
        finally:
            if runc is not None:
                runc.close()
    rows = {"pyct spawn": report.summarize(pyct_spawn),
            "runc run -d": report.summarize(runc_spawn),
            "pyct spawn, root_gb=0 (no disk)": report.summarize(nodisk_spawn),
            "pyct spawn, sparse disk": report.summarize(sparse_spawn),
            "pyct destroy": report.summarize(pyct_destroy),
            "runc delete -f": report.summarize(runc_destroy),
            "pyct destroy, root_gb=0": report.summarize(nodisk_destroy),
            "pyct destroy, sparse disk": report.summarize(sparse_destroy)}
    for label, samples in sorted(steps.samples.items()):
        rows["  " + label] = report.summarize(samples)
    ps, rs = rows["pyct spawn"], rows["runc run -d"]
    extra = {"runc": subprocess.run([RUNC, "--version"], capture_output=True,
                                    text=True).stdout.splitlines()[0],
             "spawn median ratio pyct/runc": ps["median"] / rs["median"],
             "destroy median ratio pyct/runc":
                 rows["pyct destroy"]["median"] /
                 rows["runc delete -f"]["median"]}
    report.emit(f"spawn/destroy, image cached, busybox, {args.root_gb} GiB "
                "root disk (preallocated)", rows, extra, args.json)


if __name__ == "__main__":
    main()
