"""What a container host offers its instances: CPUs, RAM and disk, and
whether its shared kernel pools are sized for guests.

Read from the real host (``/proc/meminfo``, ``os.cpu_count``, the file
system under the driver's state directory) for the compute service's
resource report; the compute service takes ``reserved_host_disk_mb`` off
the disk and the scheduler applies the allocation ratios. Disk is what
instances can have on the file system that holds their disks: the space it
can still give to unprivileged writers (``f_bavail``: not its size, which
counts the host's own files, nor the root-reserved blocks) plus what the
existing instance disks already hold (``held_bytes``), so the figure stays
put while guests fill sparse disks and shrinks when anything else -- the
image cache, logs, pyct's database -- grows.
``tuning_warnings`` compares the host's sysctls with ``HOST_SYSCTLS``
(what etc/sysctl.d/60-pyct.conf sets): open files, pseudo-terminals and
pids are host-wide pools, and each must be larger than what a guest's own
limits let it take, or one guest exhausts it for the host and the others.
"""

from __future__ import annotations

import os

from pyct_driver import exception
from pyct_driver.virt import base


# sysctl -> the least value a pyct host should have
HOST_SYSCTLS: dict[str, int] = {
    "fs.file-max": (1 << 63) - 1,
    "kernel.pty.max": 1 << 20,
    "kernel.pid_max": 1 << 22,
}


def tuning_warnings(proc_sys: str = "/proc/sys") -> list[str]:
    """One message per sysctl below ``HOST_SYSCTLS``; none when all fit."""
    out = []
    for key, least in HOST_SYSCTLS.items():
        path = os.path.join(proc_sys, *key.split("."))
        try:
            with open(path) as f:
                value = int(f.read().split()[0])
        except (OSError, ValueError, IndexError):
            continue  # not this kernel's: nothing to size
        if value < least:
            out.append(f"{key} is {value}, below {least}: a guest can "
                       "exhaust this host-wide pool for the host and other "
                       "guests (see etc/sysctl.d/60-pyct.conf)")
    return out


def host_resources(state_dir: str, held_bytes: int = 0) -> base.HostResources:
    """The host's capacity, with disk measured where instances live."""
    try:
        with open("/proc/meminfo") as f:
            mem_kb = next(int(line.split()[1]) for line in f
                          if line.startswith("MemTotal:"))
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        st = os.statvfs(state_dir)
    except (OSError, StopIteration, ValueError) as err:
        raise exception.VirtError(
            reason=f"cannot read host resources: {err}") from err
    return base.HostResources(
        vcpus=os.cpu_count() or 1, memory_mb=mem_kb // 1024,
        local_gb=(st.f_bavail * st.f_frsize + held_bytes) // 1024 ** 3)
