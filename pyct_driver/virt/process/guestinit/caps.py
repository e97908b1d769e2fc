"""Capability sets: what a privileged guest's root keeps.

Runs in a child the fork server forked and that has not exec'd yet (C1, then
the guest's PID 1): one thread, host root until it becomes guest root in the
user namespace; it imports nothing from ``caller`` or ``forkserver``.
``limit_bounding`` runs there (and in ``server exec``'s E2); ``mask`` and
``DOCKER_DEFAULT`` are pure data that ``spec`` and ``virt.guest_config`` also
read in the caller and the fork server.

A privileged flavor (``pyct:privileged``) runs the guest without a user
namespace, so its root is host uid 0. It must not also hold the
capabilities that reach past its namespaces (CAP_SYS_ADMIN remounts the
read-only /proc/sys and unmounts masks, CAP_SYS_MODULE loads modules,
CAP_SYS_RAWIO, CAP_SYS_PTRACE, ...): it keeps Docker's default set and
nothing else. ``limit_bounding`` runs in the guest's PID 1 just before
exec: it drops every other capability from the bounding set and clears the
inheritable and ambient sets, so the exec'd init (uid 0, whose file
capabilities count as full) gets exactly the bounding set. The effective
set is left alone until exec, because installing the seccomp filter still
needs CAP_SYS_ADMIN.
"""

from __future__ import annotations

from pyct_driver.virt.kernel import proc

# linux/capability.h
CAP_NUMBERS: dict[str, int] = {
    "CHOWN": 0, "DAC_OVERRIDE": 1, "DAC_READ_SEARCH": 2, "FOWNER": 3,
    "FSETID": 4, "KILL": 5, "SETGID": 6, "SETUID": 7, "SETPCAP": 8,
    "LINUX_IMMUTABLE": 9, "NET_BIND_SERVICE": 10, "NET_BROADCAST": 11,
    "NET_ADMIN": 12, "NET_RAW": 13, "IPC_LOCK": 14, "IPC_OWNER": 15,
    "SYS_MODULE": 16, "SYS_RAWIO": 17, "SYS_CHROOT": 18, "SYS_PTRACE": 19,
    "SYS_PACCT": 20, "SYS_ADMIN": 21, "SYS_BOOT": 22, "SYS_NICE": 23,
    "SYS_RESOURCE": 24, "SYS_TIME": 25, "SYS_TTY_CONFIG": 26, "MKNOD": 27,
    "LEASE": 28, "AUDIT_WRITE": 29, "AUDIT_CONTROL": 30, "SETFCAP": 31,
    "MAC_OVERRIDE": 32, "MAC_ADMIN": 33, "SYSLOG": 34, "WAKE_ALARM": 35,
    "BLOCK_SUSPEND": 36, "AUDIT_READ": 37, "PERFMON": 38, "BPF": 39,
    "CHECKPOINT_RESTORE": 40,
}

# moby's defaultCapabilities (oci/caps/defaults.go): what `docker run`
# gives a container's root without --privileged or --cap-add.
DOCKER_DEFAULT: tuple[str, ...] = (
    "CHOWN", "DAC_OVERRIDE", "FSETID", "FOWNER", "MKNOD", "NET_RAW",
    "SETGID", "SETUID", "SETFCAP", "SETPCAP", "NET_BIND_SERVICE",
    "SYS_CHROOT", "KILL", "AUDIT_WRITE")


def mask(names: tuple[str, ...] | list[str]) -> int:
    """The 64-bit capability mask of ``names`` (as /proc/*/status shows)."""
    try:
        return sum(1 << CAP_NUMBERS[n] for n in set(names))
    except KeyError as err:
        raise ValueError(f"unknown capability {err.args[0]!r}") from err


def _last_cap() -> int:
    try:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            return int(f.read())
    except (OSError, ValueError):
        return max(CAP_NUMBERS.values())


def limit_bounding(keep: tuple[str, ...] | list[str]) -> None:
    """Drop every capability not in ``keep`` from the bounding set and
    empty the inheritable and ambient sets (needs CAP_SETPCAP)."""
    # Capabilities the running kernel does not know are refused (EINVAL)
    # and cannot be held anyway.
    proc.drop_bounding(mask(keep), _last_cap())
