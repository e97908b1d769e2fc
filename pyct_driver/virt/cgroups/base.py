"""The cgroup interface: a flavor's limits, and what a backend does with them.

``limits_from_flavor`` turns a flavor (vCPUs, RAM, swap, extra specs) into a
version-neutral ``CgroupLimits`` following design.md §4; a ``CgroupBackend``
(``v1.V1Backend``, ``v2.V2Backend``, picked by ``detect.detect_backend``)
creates one group per guest under a parent group, applies those limits,
moves processes in, freezes, kills and removes it. Group names are single
path components below the parent; the cgroup mount root and the parent are
constructor arguments so tests can point a backend at a temporary layout.
"""

from __future__ import annotations

import abc
import dataclasses
import errno
import os
import re
import signal
import time
from typing import Mapping

from pyct_driver import exception
from pyct_driver import extra_specs as specs_mod

DEFAULT_CPU_PERIOD_US = 100000
SHARES_PER_VCPU = 1024
_DEVICE_RE = re.compile(r"[0-9]+:[0-9]+\Z")
_RULE_RE = re.compile(r"([abc]) ([0-9]+|\*):([0-9]+|\*) ([rwm]{1,3})\Z")
_MiB = 1024 * 1024

# The character devices a guest may read, write or mknod, in the devices
# cgroup's own syntax: null, zero, full, random, urandom, tty, ptmx and the
# pty slaves (its /dev/console is one, bound from the host). Not 5:1: that
# number is the host's own console. No block device at all: guest root
# could otherwise open or mknod the host's disks.
DEFAULT_DEVICES: tuple[str, ...] = (
    "c 1:3 rwm", "c 1:5 rwm", "c 1:7 rwm", "c 1:8 rwm", "c 1:9 rwm",
    "c 5:0 rwm", "c 5:2 rwm", "c 136:* rwm")


@dataclasses.dataclass(frozen=True)
class DeviceRule:
    """One allow rule; ``None`` major/minor is the ``*`` wildcard."""

    kind: str  # "c", "b" or "a" (any)
    major: int | None
    minor: int | None
    access: str  # a subset of "rwm"


def parse_device_rule(rule: str) -> DeviceRule:
    """Parse ``"c 1:3 rwm"``; raise ``CgroupError`` on anything else."""
    m = _RULE_RE.match(rule)
    if not m or len(set(m.group(4))) != len(m.group(4)):
        raise exception.CgroupError(reason=f"invalid device rule {rule!r}")
    num = (lambda v: None if v == "*" else int(v))  # noqa: E731
    return DeviceRule(m.group(1), num(m.group(2)), num(m.group(3)),
                      "".join(c for c in "rwm" if c in m.group(4)))


@dataclasses.dataclass(frozen=True)
class IoLimit:
    """Block I/O throttling on one whole-disk device; None = unlimited."""

    device: str  # "MAJ:MIN"
    read_bps: int | None = None
    write_bps: int | None = None
    read_iops: int | None = None
    write_iops: int | None = None


@dataclasses.dataclass(frozen=True)
class CgroupLimits:
    """Everything a backend enforces for one guest, in version-neutral units.

    ``cpu_shares`` is in cgroup v1 units (2..262144, 1024 per vCPU); v2
    converts it to ``cpu.weight``. ``cpu_quota_us`` is CPU time per
    ``cpu_period_us``; None means no cap. ``memory_bytes`` caps RAM (page
    cache included). ``swap_bytes`` is the guest's swap allowance on top of
    its RAM: 0 means the guest gets no swap. ``pids_max`` caps tasks
    (processes and threads). ``devices`` is the allow-list of device nodes
    (``"c 1:3 rwm"`` rules); every other device is denied.
    """

    cpu_shares: int
    cpu_quota_us: int | None
    cpu_period_us: int
    memory_bytes: int
    swap_bytes: int
    pids_max: int
    io_limits: tuple[IoLimit, ...] = ()
    devices: tuple[str, ...] = DEFAULT_DEVICES


@dataclasses.dataclass(frozen=True)
class CgroupStats:
    """What a group has used: RAM charged now, CPU time consumed so far."""

    memory_bytes: int
    cpu_time_ns: int


def limits_from_flavor(vcpus: int, memory_mb: int, swap_mb: int,
                       extra_specs: Mapping[str, str], default_pids_max: int,
                       block_device: str | None) -> CgroupLimits:
    """Map a flavor to ``CgroupLimits`` (design.md §4): ``flavor_limits``
    with ``disk_limits`` on ``block_device``."""
    return dataclasses.replace(
        flavor_limits(vcpus, memory_mb, swap_mb, extra_specs,
                      default_pids_max),
        io_limits=disk_limits(extra_specs, block_device))


def flavor_limits(vcpus: int, memory_mb: int, swap_mb: int,
                  extra_specs: Mapping[str, str],
                  default_pids_max: int) -> CgroupLimits:
    """A flavor's limits but its disk quotas (every extra spec validated,
    those too), for a guest whose root device is not known yet.

    The CPU weight is 1024 per vCPU unless ``quota:cpu_shares`` says
    otherwise; the cap is vCPUs × period (like a VM that cannot use more
    cores than it has) unless ``quota:cpu_quota`` overrides it (-1 = no cap).
    """
    if vcpus < 1 or memory_mb < 1 or swap_mb < 0 or default_pids_max < 1:
        raise exception.InvalidInput(
            reason=f"flavor needs vcpus>=1, ram>=1, swap>=0 (got vcpus={vcpus}"
                   f", ram={memory_mb}, swap={swap_mb}) and pids default >=1")
    # whether host-root guests are allowed is the driver's check
    specs_mod.validate_extra_specs(extra_specs, allow_host_root=True)
    shares = specs_mod.cpu_shares_from(extra_specs)
    if shares is None:
        shares = min(max(SHARES_PER_VCPU * vcpus, specs_mod.CPU_SHARES_MIN),
                     specs_mod.CPU_SHARES_MAX)
    period = specs_mod.cpu_period_from(extra_specs) or DEFAULT_CPU_PERIOD_US
    quota = specs_mod.cpu_quota_from(extra_specs)
    if quota is None:
        quota = vcpus * period
    elif quota == -1:
        quota = None
    pids = specs_mod.pids_max_from(extra_specs) or default_pids_max
    return CgroupLimits(cpu_shares=shares, cpu_quota_us=quota,
                        cpu_period_us=period, memory_bytes=memory_mb * _MiB,
                        swap_bytes=swap_mb * _MiB, pids_max=pids)


def disk_limits(extra_specs: Mapping[str, str],
                block_device: str | None) -> tuple[IoLimit, ...]:
    """The flavor's disk quotas on ``block_device`` ("MAJ:MIN" of the
    whole disk backing the guest's root); asking for them without a device
    raises ``CgroupError`` rather than silently dropping the limit."""
    disk = specs_mod.disk_limits_from(extra_specs)
    if not disk.any():
        return ()
    if block_device is None:
        raise exception.CgroupError(
            reason="the flavor sets quota:disk_* limits but the guest's "
                   "root has no block device to throttle")
    if not _DEVICE_RE.match(block_device):
        raise exception.CgroupError(
            reason=f"block device {block_device!r} is not MAJ:MIN")
    return (IoLimit(block_device, disk.read_bps, disk.write_bps,
                    disk.read_iops, disk.write_iops),)


def check_name(name: str) -> str:
    """Refuse group names that would escape the parent or clash with files."""
    if (not name or "/" in name or name in (".", "..") or "\0" in name
            or name.startswith("cgroup.")):
        raise exception.CgroupError(reason=f"invalid cgroup name {name!r}")
    return name


def read_text(path: str) -> str:
    try:
        with open(path, encoding="ascii") as f:
            return f.read()
    except OSError as err:
        raise exception.CgroupError(
            reason=f"cannot read {path}: {err}") from err


def write_text(path: str, value: str) -> None:
    """Write ``value`` in one write(2), as the kernel parses one per call.

    O_CREAT|O_TRUNC is harmless on cgroupfs (as a shell's ``>`` is) and lets
    the same code write a plain-directory layout in tests; on cgroupfs a
    missing file still fails, because kernfs cannot create files.
    """
    try:
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC
        fd = os.open(path, flags, 0o644)
        try:
            os.write(fd, value.encode("ascii"))
        finally:
            os.close(fd)
    except OSError as err:
        raise exception.CgroupError(
            reason=f"cannot write {value!r} to {path}: {err}") from err


def read_pids(procs_file: str) -> list[int]:
    try:
        with open(procs_file, encoding="ascii") as f:
            return [int(line) for line in f if line.strip()]
    except FileNotFoundError:
        return []
    except OSError as err:
        if err.errno == errno.ENODEV:
            # removed between our open and read (a guest's systemd drops
            # its service groups as they stop): no processes, as if gone
            return []
        raise exception.CgroupError(
            reason=f"cannot read {procs_file}: {err}") from err


def subtree(path: str) -> list[str]:
    """``path`` and every group below it, deepest first (the rmdir order)."""
    if not os.path.isdir(path):
        return []
    out = []
    for root, dirs, _files in os.walk(path, topdown=False):
        out.extend(os.path.join(root, d) for d in dirs)
    out.append(path)
    return out


def rmdir_tree(path: str, deadline: float) -> None:
    """Remove a group and the sub-groups a guest may have made, bottom-up.

    rmdir can fail with EBUSY for a moment after the last task was killed
    (it is still exiting), so retry until ``deadline``.
    """
    for d in subtree(path):
        while True:
            try:
                os.rmdir(d)
                break
            except FileNotFoundError:
                break
            except OSError as err:
                if time.monotonic() > deadline:
                    raise exception.CgroupError(
                        reason=f"cannot remove {d}: {err}") from err
                time.sleep(0.01)


class CgroupBackend(abc.ABC):
    """One cgroup version's way of running a guest's group below ``parent``."""

    def __init__(self, mount_root: str, parent: str) -> None:
        self.mount_root = mount_root
        self.parent = parent.strip("/")

    @abc.abstractmethod
    def create(self, name: str, limits: CgroupLimits) -> None:
        """Create the group (where missing) and apply ``limits``.

        Calling it again on an existing group re-applies the limits (a
        resize). If it fails on a group it created, the group is removed.
        """

    @abc.abstractmethod
    def procs_files(self, name: str) -> list[str]:
        """The cgroup.procs files a launcher writes a new pid into."""

    def exec_procs_files(self, name: str) -> list[str]:
        """Where a process run into the running guest goes (``exec``)."""
        return self.procs_files(name)

    def add_pid(self, name: str, pid: int) -> None:
        """Move process ``pid`` into the group (in every hierarchy)."""
        for path in self.procs_files(name):
            write_text(path, str(pid))

    @abc.abstractmethod
    def pids(self, name: str) -> list[int]:
        """All processes in the group, including its sub-groups."""

    @abc.abstractmethod
    def exists(self, name: str) -> bool:
        """Whether any part of the group is present."""

    @abc.abstractmethod
    def freeze(self, name: str, timeout: float = 5.0) -> None:
        """Stop every task of the group; return once they are all frozen."""

    @abc.abstractmethod
    def thaw(self, name: str) -> None:
        """Let a frozen group run again."""

    @abc.abstractmethod
    def is_frozen(self, name: str) -> bool:
        """Whether the group is (fully) frozen."""

    @abc.abstractmethod
    def stats(self, name: str) -> CgroupStats:
        """RAM charged to the group now and CPU time it has used."""

    @abc.abstractmethod
    def list_groups(self) -> list[str]:
        """Names of the groups below the parent."""

    @abc.abstractmethod
    def _remove_dirs(self, name: str, deadline: float) -> None:
        """rmdir the (empty) group everywhere it exists."""

    def cpuset_dir(self, name: str | None) -> str:
        """Where group ``name``'s (None: the parent's) cpuset files are."""
        raise exception.CgroupError(reason="no cpuset in this backend")

    @abc.abstractmethod
    def parent_dirs(self) -> list[str]:
        """The parent group's existing directories (one per hierarchy)."""

    def remove_parent(self, timeout: float = 10.0) -> None:
        """Destroy every group below the parent, then the parent itself
        (only its last path component: the levels above may be shared).
        ``create`` makes it again."""
        deadline = time.monotonic() + timeout
        for name in self.list_groups():
            self.destroy(name, timeout=max(0.1, deadline - time.monotonic()))
        for path in self.parent_dirs():
            rmdir_tree(path, deadline)

    def kill_all(self, name: str, timeout: float = 10.0) -> None:
        """SIGKILL every task of the group until it is empty.

        The group is frozen first so nothing can fork between reading the
        pid list and killing it; the kills are delivered when it is thawed.
        A pid read from a frozen group cannot be recycled before the kill:
        a frozen task cannot exit, and a dead one is still unreaped.
        """
        deadline = time.monotonic() + timeout
        while True:
            if not self.pids(name):
                return
            try:
                # A task stuck in uninterruptible I/O may keep the group
                # FREEZING; kill what we can see anyway and loop.
                self.freeze(name, timeout=min(1.0, timeout / 4))
            except exception.CgroupError:
                pass
            for pid in self.pids(name):
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
            try:
                self.thaw(name)
            except exception.CgroupError:
                pass  # a half-created group may lack its freezer directory
            while time.monotonic() < deadline and self.pids(name):
                time.sleep(0.005)
            if not self.pids(name):
                return
            if time.monotonic() > deadline:
                raise exception.CgroupError(
                    reason=f"group {name} still has tasks after {timeout}s: "
                           f"{self.pids(name)[:10]}")

    def destroy(self, name: str, timeout: float = 10.0) -> None:
        """Kill everything in the group and remove it; no error if absent."""
        check_name(name)
        if not self.exists(name):
            return
        deadline = time.monotonic() + timeout
        self.kill_all(name, timeout=timeout)
        self._remove_dirs(name, deadline)
