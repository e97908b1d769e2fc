"""cgroup v1 backend: one directory per guest in each controller hierarchy.

Each controller is a separate hierarchy under the mount root
(``<root>/memory/<parent>/<name>``...); hierarchies that are co-mounted
(``cpu`` and ``cpuacct`` as symlinks to ``cpu,cpuacct``) are handled once.
``cpuset`` groups start empty in v1, so ``cpus``/``mems`` are copied from
the parent before any task is attached. Swap: with swap accounting
(``memory.memsw.*`` present) the guest gets RAM + swap as its memsw limit.
Without it the kernel cannot bound a group's swap, so we decide for the
host: the group's ``memory.swappiness`` is set to 0 and the guest gets no
swap under its own limit (a promised allowance is an upper bound; exceeding
it would eat other tenants' swap), and a warning is logged once.
Devices: each group gets ``devices.deny a`` and then one ``devices.allow``
line per rule of its allow-list. The parent group gets the backend's
``parent_devices`` list the same way, because the kernel only checks a
group's own ``devices.allow`` writes against its parent: guest root
(CAP_SYS_ADMIN) mounting the devices hierarchy in its cgroup namespace sees
its own group as the root and could otherwise allow itself everything.
"""

from __future__ import annotations

import logging
import os
import time

from pyct_driver import exception
from pyct_driver.virt.cgroups import base

LOG = logging.getLogger(__name__)

CONTROLLERS = ("cpu", "cpuacct", "memory", "pids", "freezer", "blkio",
               "devices", "cpuset")
REQUIRED = ("cpu", "cpuacct", "memory", "pids", "freezer")
_UNLIMITED = 1 << 62
_THROTTLE_FILES = (("read_bps", "blkio.throttle.read_bps_device"),
                   ("write_bps", "blkio.throttle.write_bps_device"),
                   ("read_iops", "blkio.throttle.read_iops_device"),
                   ("write_iops", "blkio.throttle.write_iops_device"))


def _read_opt(path: str) -> str | None:
    try:
        with open(path, encoding="ascii") as f:
            return f.read().strip()
    except FileNotFoundError:
        return None
    except OSError as err:
        raise exception.CgroupError(
            reason=f"cannot read {path}: {err}") from err


def _rule_line(rule: base.DeviceRule) -> str:
    def num(v: int | None) -> str:
        return "*" if v is None else str(v)
    return f"{rule.kind} {num(rule.major)}:{num(rule.minor)} {rule.access}"


def apply_devices(path: str, rules: tuple[str, ...]) -> None:
    """Make ``rules`` the group's whole device allow-list.

    Skipped when ``devices.list`` already says exactly that: "deny a" is
    refused on a group with sub-groups (a guest may have made some), and a
    resize must not fail on an unchanged list.
    """
    lines = [_rule_line(base.parse_device_rule(r)) for r in rules]
    current = _read_opt(os.path.join(path, "devices.list"))
    if current is not None and set(current.split("\n")) - {""} == set(lines):
        return
    base.write_text(os.path.join(path, "devices.deny"), "a")
    for line in lines:
        base.write_text(os.path.join(path, "devices.allow"), line)


class V1Backend(base.CgroupBackend):
    """Guests' groups in the v1 hierarchies mounted under ``mount_root``."""

    def __init__(self, mount_root: str = "/sys/fs/cgroup",
                 parent: str = "pyct",
                 parent_devices: tuple[str, ...] = base.DEFAULT_DEVICES
                 ) -> None:
        super().__init__(mount_root, parent)
        for rule in parent_devices:
            base.parse_device_rule(rule)
        self._parent_devices = tuple(parent_devices)
        self._warned_parent = False
        self._hier: dict[str, str] = {}
        for ctrl in CONTROLLERS:
            path = os.path.join(mount_root, ctrl)
            if os.path.isdir(path):
                self._hier[ctrl] = os.path.realpath(path)
        missing = [c for c in REQUIRED if c not in self._hier]
        if missing:
            raise exception.CgroupError(
                reason=f"cgroup v1 controllers {missing} are not mounted "
                       f"under {mount_root}")
        self._mounts = list(dict.fromkeys(self._hier.values()))
        # systemd in a guest tracks its services in the named hierarchy: the
        # guest's cgroup namespace must be rooted at a group of its own
        # there, never at the host's (this also cleans up what it made).
        tracker = os.path.join(mount_root, "systemd")
        if os.path.ismount(tracker):
            self._mounts.append(os.path.realpath(tracker))
        self._memsw = os.path.exists(os.path.join(
            self._hier["memory"], "memory.memsw.limit_in_bytes"))
        self._warned_swap = False

    def _dir(self, ctrl: str, name: str) -> str:
        return os.path.join(self._hier[ctrl], self.parent, name)

    def _group_dirs(self, name: str) -> list[str]:
        base.check_name(name)
        return [os.path.join(m, self.parent, name) for m in self._mounts]

    def _ensure_parent(self) -> None:
        for mount in self._mounts:
            path = mount
            for part in self.parent.split("/"):
                path = os.path.join(path, part)
                if not os.path.isdir(path):
                    os.mkdir(path)
                    self._init_new_dir(mount, path)

    def _init_new_dir(self, mount: str, path: str) -> None:
        if mount == self._hier.get("cpuset"):
            self._copy_cpuset(path)
        if mount == self._hier["memory"]:
            # Kernels before 5.x default to flat accounting; a child's charge
            # must count against our parent too. Newer kernels refuse the
            # write (always hierarchical) — that is fine.
            use = os.path.join(path, "memory.use_hierarchy")
            if _read_opt(use) == "0":
                try:
                    base.write_text(use, "1")
                except exception.CgroupError:
                    pass

    @staticmethod
    def _copy_cpuset(path: str) -> None:
        # cpus before mems: the kernel checks each against the parent's.
        up = os.path.dirname(path)
        for fname in ("cpuset.cpus", "cpuset.mems"):
            if not _read_opt(os.path.join(path, fname)):
                value = _read_opt(os.path.join(up, fname))
                if value:
                    base.write_text(os.path.join(path, fname), value)

    def create(self, name: str, limits: base.CgroupLimits) -> None:
        dirs = self._group_dirs(name)
        if limits.io_limits and "blkio" not in self._hier:
            raise exception.CgroupError(
                reason="block I/O limits requested but blkio is not mounted")
        created: list[str] = []
        try:
            self._ensure_parent()
            self._restrict_parent_devices()
            for mount, path in zip(self._mounts, dirs):
                if not os.path.isdir(path):
                    os.mkdir(path)
                    created.append(path)
                    self._init_new_dir(mount, path)
            self._apply(name, limits)
        except (OSError, exception.CgroupError) as err:
            for path in reversed(created):
                try:
                    os.rmdir(path)
                except OSError:
                    pass
            if isinstance(err, exception.CgroupError):
                raise
            raise exception.CgroupError(
                reason=f"cannot create group {name}: {err}") from err

    def _apply(self, name: str, limits: base.CgroupLimits) -> None:
        cpu = self._dir("cpu", name)
        base.write_text(os.path.join(cpu, "cpu.shares"),
                        str(limits.cpu_shares))
        # Lift the cap before changing the period: the kernel checks each
        # write's quota/period pair, and an old quota may not fit a new period.
        base.write_text(os.path.join(cpu, "cpu.cfs_quota_us"), "-1")
        base.write_text(os.path.join(cpu, "cpu.cfs_period_us"),
                        str(limits.cpu_period_us))
        if limits.cpu_quota_us is not None:
            base.write_text(os.path.join(cpu, "cpu.cfs_quota_us"),
                            str(limits.cpu_quota_us))
        self._apply_memory(self._dir("memory", name), limits)
        base.write_text(os.path.join(self._dir("pids", name), "pids.max"),
                        str(limits.pids_max))
        if "blkio" in self._hier:
            self._apply_blkio(self._dir("blkio", name), limits)
        if "devices" in self._hier:
            apply_devices(self._dir("devices", name), limits.devices)

    def _restrict_parent_devices(self) -> None:
        if "devices" not in self._hier:
            return
        top = os.path.join(self._hier["devices"], self.parent)
        try:
            apply_devices(top, self._parent_devices)
        except exception.CgroupError as err:
            # Only possible when the parent already has groups (a host
            # upgraded with guests running): the kernel refuses "deny a"
            # then. Guests' own groups are still restricted.
            if not self._warned_parent:
                self._warned_parent = True
                LOG.error("cannot restrict devices of %s (%s); guests could "
                          "widen their own device list until it is empty",
                          top, err)

    def _apply_memory(self, mem: str, limits: base.CgroupLimits) -> None:
        limit_file = os.path.join(mem, "memory.limit_in_bytes")
        memsw_file = os.path.join(mem, "memory.memsw.limit_in_bytes")
        ram = str(limits.memory_bytes)
        # Let the kernel OOM-kill inside the group, as a VM's kernel would.
        base.write_text(os.path.join(mem, "memory.oom_control"), "0")
        if self._memsw:
            total = str(limits.memory_bytes + limits.swap_bytes)
            current = int(_read_opt(memsw_file) or _UNLIMITED)
            # The kernel keeps limit <= memsw at every step: raise memsw
            # first when the new RAM limit is above the current memsw.
            if limits.memory_bytes > current:
                base.write_text(memsw_file, total)
                base.write_text(limit_file, ram)
            else:
                base.write_text(limit_file, ram)
                base.write_text(memsw_file, total)
            return
        base.write_text(limit_file, ram)
        base.write_text(os.path.join(mem, "memory.swappiness"), "0")
        if limits.swap_bytes and not self._warned_swap:
            self._warned_swap = True
            LOG.warning("kernel has no swap accounting (memory.memsw); guests "
                        "get no swap instead of their flavor's allowance")

    @staticmethod
    def _apply_blkio(blkio: str, limits: base.CgroupLimits) -> None:
        wanted = {io.device: io for io in limits.io_limits}
        for attr, fname in _THROTTLE_FILES:
            path = os.path.join(blkio, fname)
            old = [line.split()[0] for line in
                   (_read_opt(path) or "").splitlines() if line.strip()]
            for dev in old:
                if dev not in wanted:
                    base.write_text(path, f"{dev} 0")  # 0 removes the rule
            for dev, io in wanted.items():
                base.write_text(path, f"{dev} {getattr(io, attr) or 0}")

    def procs_files(self, name: str) -> list[str]:
        return [os.path.join(d, "cgroup.procs")
                for d in self._group_dirs(name)]

    def pids(self, name: str) -> list[int]:
        found: set[int] = set()
        for group in self._group_dirs(name):
            for d in base.subtree(group):
                found.update(base.read_pids(os.path.join(d, "cgroup.procs")))
        return sorted(found)

    def exists(self, name: str) -> bool:
        return any(os.path.isdir(d) for d in self._group_dirs(name))

    def freeze(self, name: str, timeout: float = 5.0) -> None:
        state = os.path.join(self._dir("freezer", base.check_name(name)),
                             "freezer.state")
        deadline = time.monotonic() + timeout
        delay = 0.001
        while True:
            base.write_text(state, "FROZEN")
            if base.read_text(state).strip() == "FROZEN":
                return
            if time.monotonic() > deadline:
                raise exception.CgroupError(
                    reason=f"group {name} did not freeze within {timeout}s")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)

    def thaw(self, name: str) -> None:
        state = os.path.join(self._dir("freezer", base.check_name(name)),
                             "freezer.state")
        base.write_text(state, "THAWED")

    def is_frozen(self, name: str) -> bool:
        state = os.path.join(self._dir("freezer", base.check_name(name)),
                             "freezer.state")
        return base.read_text(state).strip() == "FROZEN"

    def stats(self, name: str) -> base.CgroupStats:
        base.check_name(name)
        mem = base.read_text(os.path.join(self._dir("memory", name),
                                          "memory.usage_in_bytes"))
        cpu = base.read_text(os.path.join(self._dir("cpuacct", name),
                                          "cpuacct.usage"))
        return base.CgroupStats(memory_bytes=int(mem), cpu_time_ns=int(cpu))

    def list_groups(self) -> list[str]:
        names: set[str] = set()
        for mount in self._mounts:
            top = os.path.join(mount, self.parent)
            if os.path.isdir(top):
                names.update(e.name for e in os.scandir(top) if e.is_dir())
        return sorted(names)

    def _remove_dirs(self, name: str, deadline: float) -> None:
        for group in self._group_dirs(name):
            base.rmdir_tree(group, deadline)

    def cpuset_dir(self, name: str | None) -> str:
        """Where group ``name``'s (None: the parent's) cpuset files are."""
        if "cpuset" not in self._hier:
            raise exception.CgroupError(reason="cpuset is not mounted")
        top = os.path.join(self._hier["cpuset"], self.parent)
        return top if name is None else os.path.join(top,
                                                     base.check_name(name))

    def parent_dirs(self) -> list[str]:
        return [path for path in (os.path.join(m, self.parent)
                                  for m in self._mounts)
                if os.path.isdir(path)]
