"""Flavor extra specs: which keys pyct understands and what values they take.

A leaf module used twice: the API layer calls ``validate_extra_specs`` when a
flavor's extra specs are set, so a bad value is refused then (HTTP 400) and
not when a server boots; the virt layer calls the ``*_from`` parsers to turn
the same strings into typed values. Keys in Nova's ``quota:`` namespace and
pyct's own ``pyct:`` namespace are checked strictly (an unknown key there is
refused, as Nova refuses unknown ``quota:`` keys); keys in any other namespace
(``hw:``, ``trait:``, ``aggregate_instance_extra_specs:``...) belong to the
scheduler or other services and are accepted and ignored.
"""

from __future__ import annotations

import dataclasses
import re
from typing import Mapping

from pyct_driver import exception

# cgroup v1's own bounds for cpu.shares; v2's cpu.weight is derived from them.
CPU_SHARES_MIN = 2
CPU_SHARES_MAX = 262144
CPU_PERIOD_MIN_US = 1000
CPU_PERIOD_MAX_US = 1000000
CPU_QUOTA_MIN_US = 1000
# The kernel keeps quota in 44 bits (MAX_BW); above it a write is EINVAL.
CPU_QUOTA_MAX_US = (1 << 44) - 1
PIDS_MAX_MIN = 16
PIDS_MAX_MAX = 4194304  # PID_MAX_LIMIT on 64-bit kernels
DISK_LIMIT_MAX = (1 << 63) - 1

_INT_RE = re.compile(r"-?[0-9]+\Z")

_DISK_KEYS = tuple(
    f"quota:disk_{direction}_{unit}_sec"
    for unit in ("bytes", "iops")
    for direction in ("read", "write", "total"))

#: Every key pyct acts on, with the value it takes (for the docs and the API).
SUPPORTED_KEYS: dict[str, str] = {
    "quota:cpu_shares": (
        f"integer {CPU_SHARES_MIN}..{CPU_SHARES_MAX}; relative CPU weight in "
        "cgroup v1 units (default 1024 per vCPU)"),
    "quota:cpu_period": (
        f"integer {CPU_PERIOD_MIN_US}..{CPU_PERIOD_MAX_US} (microseconds); "
        "CFS enforcement period (default 100000)"),
    "quota:cpu_quota": (
        f"-1 (no cap) or integer {CPU_QUOTA_MIN_US}.. (microseconds); CPU "
        "time allowed per period (default vCPUs x period)"),
    "quota:disk_read_bytes_sec": "positive integer; read bytes per second",
    "quota:disk_write_bytes_sec": "positive integer; write bytes per second",
    "quota:disk_total_bytes_sec": (
        "positive integer; applied to reads and to writes each (cgroups have "
        "no combined limit); not together with the read/write keys"),
    "quota:disk_read_iops_sec": "positive integer; read operations per second",
    "quota:disk_write_iops_sec": (
        "positive integer; write operations per second"),
    "quota:disk_total_iops_sec": (
        "positive integer; applied to reads and to writes each; not together "
        "with the read/write keys"),
    "pyct:pids_max": (
        f"integer {PIDS_MAX_MIN}..{PIDS_MAX_MAX}; most tasks the guest may "
        "run (a host default applies otherwise)"),
    "pyct:privileged": (
        "true or false; run the guest without a user namespace: guest root "
        "is host uid 0 with Docker's default capability set"),
    "pyct:host_root": (
        "true or false; guest root is host root with every capability -- "
        "it can take over the host. Refused unless the operator sets "
        "[container] allow_host_root_guests"),
    "pyct:dedicated_cpuset": (
        "true or false (default true where the host's [container] "
        "guest_cpuset is on); false: the guest shares every host CPU "
        "(its CPU quota still caps it) instead of a cpuset of its vCPUs"),
    "pyct:nesting": (
        "true or false; the guest may run containers of its own (fresh "
        "proc and sysfs mounts, its cgroups delegated to its root, "
        "keyrings ENOSYS), still in its user namespace; not with "
        "pyct:privileged or pyct:host_root"),
}

_STRICT_NAMESPACES = ("quota:", "pyct:")


@dataclasses.dataclass(frozen=True)
class DiskLimits:
    """Per-direction block I/O limits; ``None`` means unlimited."""

    read_bps: int | None = None
    write_bps: int | None = None
    read_iops: int | None = None
    write_iops: int | None = None

    def any(self) -> bool:
        return any(v is not None for v in dataclasses.astuple(self))


def _int(key: str, value: object, low: int, high: int,
         also: tuple[int, ...] = ()) -> int:
    if not isinstance(value, str) or not _INT_RE.match(value):
        raise exception.InvalidExtraSpec(
            key=key, reason=f"{value!r} is not a decimal integer")
    number = int(value)
    if number in also or low <= number <= high:
        return number
    extra = "".join(f"{a} or " for a in also)
    raise exception.InvalidExtraSpec(
        key=key, reason=f"{number} is out of range (allowed: {extra}"
                        f"{low}..{high})")


def _check_value(key: str, value: object) -> None:
    if key == "quota:cpu_shares":
        _int(key, value, CPU_SHARES_MIN, CPU_SHARES_MAX)
    elif key == "quota:cpu_period":
        _int(key, value, CPU_PERIOD_MIN_US, CPU_PERIOD_MAX_US)
    elif key == "quota:cpu_quota":
        _int(key, value, CPU_QUOTA_MIN_US, CPU_QUOTA_MAX_US, also=(-1,))
    elif key in _DISK_KEYS:
        _int(key, value, 1, DISK_LIMIT_MAX)
    elif key == "pyct:pids_max":
        _int(key, value, PIDS_MAX_MIN, PIDS_MAX_MAX)
    elif key in ("pyct:privileged", "pyct:host_root",
                 "pyct:dedicated_cpuset", "pyct:nesting"):
        _bool(key, value)
    else:
        raise exception.InvalidExtraSpec(
            key=key, reason="unknown key in a namespace pyct enforces; "
                            "supported: " + ", ".join(sorted(SUPPORTED_KEYS)))


def _bool(key: str, value: object) -> bool:
    if isinstance(value, str) and value.lower() in ("true", "false"):
        return value.lower() == "true"
    raise exception.InvalidExtraSpec(
        key=key, reason=f"{value!r} is not 'true' or 'false'")


def validate_extra_specs(specs: Mapping[str, str],
                         allow_host_root: bool = False) -> None:
    """Refuse the extra specs pyct cannot honour; return None if all is well.

    ``pyct:host_root=true`` is refused unless ``allow_host_root`` (the
    operator's ``[container] allow_host_root_guests``). Raises
    ``exception.InvalidExtraSpec`` naming the first bad key.
    """
    for key in sorted(specs):
        if not isinstance(key, str):
            raise exception.InvalidExtraSpec(key=repr(key),
                                             reason="keys must be strings")
        if key.startswith(_STRICT_NAMESPACES):
            _check_value(key, specs[key])
    if host_root_from(specs) and not allow_host_root:
        raise exception.InvalidExtraSpec(
            key="pyct:host_root",
            reason="a guest with it is root on the host; refused while "
                   "[container] allow_host_root_guests is off")
    if nesting_from(specs) and privileged_from(specs):
        # nesting is delegation inside a user namespace; a guest without
        # one would get host-owned cgroups and host-visible mounts instead
        raise exception.InvalidExtraSpec(
            key="pyct:nesting",
            reason="needs a guest in a user namespace: not with "
                   "pyct:privileged or pyct:host_root")
    for unit in ("bytes", "iops"):
        total = f"quota:disk_total_{unit}_sec"
        split = [f"quota:disk_{d}_{unit}_sec" for d in ("read", "write")]
        both = [k for k in split if k in specs]
        if total in specs and both:
            # Nova refuses this too: a total and a per-direction limit
            # on the same unit contradict each other.
            raise exception.InvalidExtraSpec(
                key=total, reason=f"cannot be set together with {both[0]}")


def _get(specs: Mapping[str, str], key: str) -> str | None:
    value = specs.get(key)
    if value is not None:
        _check_value(key, value)
    return value


def cpu_shares_from(specs: Mapping[str, str]) -> int | None:
    """``quota:cpu_shares`` as an int, or None when unset."""
    value = _get(specs, "quota:cpu_shares")
    return None if value is None else int(value)


def cpu_period_from(specs: Mapping[str, str]) -> int | None:
    """``quota:cpu_period`` in microseconds, or None when unset."""
    value = _get(specs, "quota:cpu_period")
    return None if value is None else int(value)


def cpu_quota_from(specs: Mapping[str, str]) -> int | None:
    """``quota:cpu_quota`` in µs (-1 = no cap), or None when unset."""
    value = _get(specs, "quota:cpu_quota")
    return None if value is None else int(value)


def disk_limits_from(specs: Mapping[str, str]) -> DiskLimits:
    """The ``quota:disk_*`` keys folded into per-direction limits.

    A ``total`` limit is applied to each direction: cgroup throttling has no
    combined read+write budget, so this is the closest enforceable meaning
    (each direction alone never exceeds the total).
    """
    validate_extra_specs(
        {k: v for k, v in specs.items() if k in _DISK_KEYS})
    out = {}
    for unit, suffix in (("bytes", "bps"), ("iops", "iops")):
        total = _get(specs, f"quota:disk_total_{unit}_sec")
        for direction in ("read", "write"):
            value = _get(specs, f"quota:disk_{direction}_{unit}_sec") or total
            out[f"{direction}_{suffix}"] = (
                None if value is None else int(value))
    return DiskLimits(**out)


def pids_max_from(specs: Mapping[str, str]) -> int | None:
    """``pyct:pids_max`` as an int, or None when unset."""
    value = _get(specs, "pyct:pids_max")
    return None if value is None else int(value)


def privileged_from(specs: Mapping[str, str]) -> bool:
    """Whether the guest runs without a user namespace: ``pyct:privileged``
    or ``pyct:host_root`` (False when unset)."""
    value = specs.get("pyct:privileged")
    privileged = False if value is None else _bool("pyct:privileged", value)
    return privileged or host_root_from(specs)


def dedicated_cpuset_from(specs: Mapping[str, str]) -> bool:
    """``pyct:dedicated_cpuset`` as a bool (True when unset)."""
    value = specs.get("pyct:dedicated_cpuset")
    return True if value is None else _bool("pyct:dedicated_cpuset", value)


def host_root_from(specs: Mapping[str, str]) -> bool:
    """``pyct:host_root`` as a bool (False when unset)."""
    value = specs.get("pyct:host_root")
    return False if value is None else _bool("pyct:host_root", value)


def nesting_from(specs: Mapping[str, str]) -> bool:
    """``pyct:nesting`` as a bool (False when unset)."""
    value = specs.get("pyct:nesting")
    return False if value is None else _bool("pyct:nesting", value)
