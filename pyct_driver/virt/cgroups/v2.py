"""cgroup v2 backend: one directory per guest in the unified hierarchy.

The controllers a guest needs (cpu, memory, pids, and io when it has disk
quotas) are enabled in ``cgroup.subtree_control`` from the mount root down
to the parent; the parent never holds tasks itself, as v2's
no-internal-process rule requires. v1-unit CPU shares become ``cpu.weight``
with the formula runc and Nova use. ``memory.swap.max`` is the swap
allowance alone (v2 does not count RAM in it). A kernel without swap
accounting has no ``memory.swap.max`` and no per-group swappiness either, so
the guest's swap cannot be bounded there; we apply the RAM limit and log a
warning once. ``cgroup.kill`` (Linux 5.14+) is used to empty a group
atomically; older kernels fall back to freeze, SIGKILL, thaw. The device
allow-list is an eBPF program attached to each guest's group
(``devices_bpf``); a plain-directory layout (unit tests) cannot hold one,
so it is attached only when the mount root is a real cgroup2 filesystem.
"""

from __future__ import annotations

import logging
import os
import time

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import devices_bpf

LOG = logging.getLogger(__name__)

REQUIRED = ("cpu", "memory", "pids")
# where processes exec'd into a guest go (a leaf: see exec_procs_files)
EXEC_LEAF = "pyct-exec"
WEIGHT_MIN = 1
WEIGHT_MAX = 10000


def shares_to_weight(shares: int) -> int:
    """v1 cpu.shares (2..262144) → v2 cpu.weight (1..10000), runc's formula."""
    weight = 1 + ((shares - 2) * 9999) // 262142
    return max(WEIGHT_MIN, min(WEIGHT_MAX, weight))


def io_max_line(io: base.IoLimit) -> str:
    """One ``io.max`` line; "max" lifts a direction's limit."""
    def val(v: int | None) -> str:
        return "max" if v is None else str(v)
    return (f"{io.device} rbps={val(io.read_bps)} wbps={val(io.write_bps)} "
            f"riops={val(io.read_iops)} wiops={val(io.write_iops)}")


def _keyed(text: str) -> dict[str, str]:
    out = {}
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 2:
            out[parts[0]] = parts[1]
    return out


class V2Backend(base.CgroupBackend):
    """Guests' groups below ``<mount_root>/<parent>`` in a cgroup2 mount."""

    def __init__(self, mount_root: str = "/sys/fs/cgroup",
                 parent: str = "pyct") -> None:
        super().__init__(mount_root, parent)
        if not os.path.exists(os.path.join(mount_root, "cgroup.controllers")):
            raise exception.CgroupError(
                reason=f"{mount_root} is not a cgroup v2 hierarchy")
        self._top = os.path.join(mount_root, self.parent)
        self._warned_swap = False
        self._device_programs = devices_bpf.is_cgroup2(mount_root)

    def _dir(self, name: str) -> str:
        return os.path.join(self._top, base.check_name(name))

    def _ensure_parent(self, need_io: bool) -> None:
        wanted = REQUIRED + ("io",) if need_io else REQUIRED
        path = self.mount_root
        levels = [path]
        for part in self.parent.split("/"):
            path = os.path.join(path, part)
            levels.append(path)
        for level in levels:
            if not os.path.isdir(level):
                os.mkdir(level)
            available = base.read_text(
                os.path.join(level, "cgroup.controllers")).split()
            missing = [c for c in wanted if c not in available]
            if missing:
                raise exception.CgroupError(
                    reason=f"controllers {missing} are not available in "
                           f"{level}")
            control = os.path.join(level, "cgroup.subtree_control")
            enabled = [c.lstrip("+")
                       for c in base.read_text(control).split()]
            todo = [c for c in wanted if c not in enabled]
            if todo:
                base.write_text(control, " ".join("+" + c for c in todo))

    def create(self, name: str, limits: base.CgroupLimits) -> None:
        path = self._dir(name)
        created = False
        try:
            self._ensure_parent(bool(limits.io_limits))
            if not os.path.isdir(path):
                os.mkdir(path)
                created = True
            self._apply(path, limits)
        except (OSError, exception.CgroupError) as err:
            if created:
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            if isinstance(err, exception.CgroupError):
                raise
            raise exception.CgroupError(
                reason=f"cannot create group {name}: {err}") from err

    def _apply(self, path: str, limits: base.CgroupLimits) -> None:
        def put(fname: str, value: str) -> None:
            base.write_text(os.path.join(path, fname), value)

        put("cpu.weight", str(shares_to_weight(limits.cpu_shares)))
        quota = ("max" if limits.cpu_quota_us is None
                 else str(limits.cpu_quota_us))
        put("cpu.max", f"{quota} {limits.cpu_period_us}")
        put("memory.max", str(limits.memory_bytes))
        if os.path.exists(os.path.join(self._top, "memory.swap.max")):
            put("memory.swap.max", str(limits.swap_bytes))
        elif limits.swap_bytes and not self._warned_swap:
            self._warned_swap = True
            LOG.warning("kernel has no swap accounting (memory.swap.max); "
                        "guests' swap use is not bounded per guest")
        put("pids.max", str(limits.pids_max))
        io_file = os.path.join(path, "io.max")
        wanted = {io.device for io in limits.io_limits}
        if os.path.exists(io_file):
            for line in base.read_text(io_file).splitlines():
                dev = line.split()[0] if line.strip() else None
                if dev and dev not in wanted:
                    put("io.max", io_max_line(base.IoLimit(dev)))
        for io in limits.io_limits:
            # One device per write: the kernel parses a single line per call.
            put("io.max", io_max_line(io))
        if self._device_programs:
            devices_bpf.attach(path, limits.devices)
        else:
            for rule in limits.devices:
                base.parse_device_rule(rule)

    def procs_files(self, name: str) -> list[str]:
        return [os.path.join(self._dir(name), "cgroup.procs")]

    def exec_procs_files(self, name: str) -> list[str]:
        """A host-owned leaf ``EXEC_LEAF`` of the guest's group, never the
        group itself: once an init such as systemd enables controllers
        for its sub-groups, v2 refuses processes there (EBUSY), and an
        exec'd process in the group while systemd starts (right after a
        reboot) would make systemd's own enabling fail."""
        leaf = os.path.join(self._dir(name), EXEC_LEAF)
        try:
            os.mkdir(leaf, 0o755)
        except FileExistsError:
            pass
        except OSError as err:
            raise exception.CgroupError(
                reason=f"cannot create {leaf}: {err}") from err
        return [os.path.join(leaf, "cgroup.procs")]

    def pids(self, name: str) -> list[int]:
        found: set[int] = set()
        for d in base.subtree(self._dir(name)):
            found.update(base.read_pids(os.path.join(d, "cgroup.procs")))
        return sorted(found)

    def exists(self, name: str) -> bool:
        return os.path.isdir(self._dir(name))

    def _events(self, name: str) -> dict[str, str]:
        return _keyed(base.read_text(os.path.join(self._dir(name),
                                                  "cgroup.events")))

    def freeze(self, name: str, timeout: float = 5.0) -> None:
        base.write_text(os.path.join(self._dir(name), "cgroup.freeze"), "1")
        deadline = time.monotonic() + timeout
        delay = 0.001
        while self._events(name).get("frozen") != "1":
            if time.monotonic() > deadline:
                raise exception.CgroupError(
                    reason=f"group {name} did not freeze within {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self, name: str) -> None:
        base.write_text(os.path.join(self._dir(name), "cgroup.freeze"), "0")

    def is_frozen(self, name: str) -> bool:
        return self._events(name).get("frozen") == "1"

    def kill_all(self, name: str, timeout: float = 10.0) -> None:
        kill_file = os.path.join(self._dir(name), "cgroup.kill")
        if not os.path.exists(kill_file):
            super().kill_all(name, timeout)
            return
        # cgroup.kill is atomic against forks; repeat only in case a task
        # was being migrated in while it ran.
        deadline = time.monotonic() + timeout
        while self.pids(name):
            base.write_text(kill_file, "1")
            stop = min(deadline, time.monotonic() + 0.5)
            while self.pids(name) and time.monotonic() < stop:
                time.sleep(0.005)
            if self.pids(name) and time.monotonic() > deadline:
                raise exception.CgroupError(
                    reason=f"group {name} still has tasks after {timeout}s")

    def stats(self, name: str) -> base.CgroupStats:
        path = self._dir(name)
        mem = base.read_text(os.path.join(path, "memory.current"))
        cpu = _keyed(base.read_text(os.path.join(path, "cpu.stat")))
        usage_ns = int(cpu.get("usage_usec", 0)) * 1000
        return base.CgroupStats(memory_bytes=int(mem), cpu_time_ns=usage_ns)

    def list_groups(self) -> list[str]:
        if not os.path.isdir(self._top):
            return []
        return sorted(e.name for e in os.scandir(self._top) if e.is_dir())

    def _remove_dirs(self, name: str, deadline: float) -> None:
        base.rmdir_tree(self._dir(name), deadline)

    def cpuset_dir(self, name: str | None) -> str:
        """The group's directory, the cpuset controller enabled above it
        (it is not one ``create`` needs)."""
        if name is None:
            return self._top
        path = self._dir(name)
        if not os.path.exists(os.path.join(path, "cpuset.cpus")):
            level = self.mount_root
            for part in self.parent.split("/"):
                control = os.path.join(level, "cgroup.subtree_control")
                if "cpuset" not in base.read_text(control).split():
                    base.write_text(control, "+cpuset")
                level = os.path.join(level, part)
            base.write_text(os.path.join(level, "cgroup.subtree_control"),
                            "+cpuset")
        return path

    def parent_dirs(self) -> list[str]:
        return [self._top] if os.path.isdir(self._top) else []
