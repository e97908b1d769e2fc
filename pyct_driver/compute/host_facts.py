"""What the compute host tells os-hypervisors about itself beyond capacity.

The kernel is the hypervisor of container guests, so its release is the
``hypervisor_version`` (Nova's integer form: major * 1,000,000 + minor *
1,000 + patch). ``uptime`` is the host's, in the words of uptime(1) that
Nova's libvirt driver returns, read from /proc at each resource report.
``host_ip`` is ``[DEFAULT] my_ip`` or the address of the default route's
interface.
"""

from __future__ import annotations

import os
import re
import time

from oslo_utils import netutils


def kernel_version(release: str | None = None) -> int:
    """``5.10.0-28-amd64`` -> 5010000."""
    release = release if release is not None else os.uname().release
    parts = [int(p) for p in re.findall(r"\d+", release)[:3]]
    parts += [0] * (3 - len(parts))
    return parts[0] * 1_000_000 + parts[1] * 1_000 + parts[2]


def uptime_text(proc: str = "/proc", now: float | None = None) -> str | None:
    """`` 14:03:08 up 3 days,  2:11,  load average: 0.52, 0.58, 0.59``."""
    try:
        with open(os.path.join(proc, "uptime")) as f:
            seconds = int(float(f.read().split()[0]))
        with open(os.path.join(proc, "loadavg")) as f:
            loads = f.read().split()[:3]
    except (OSError, ValueError, IndexError):
        return None
    clock = time.strftime("%H:%M:%S", time.gmtime(now))
    days, rest = divmod(seconds, 86400)
    hours, minutes = rest // 3600, rest % 3600 // 60
    up = f"{days} day{'s' if days != 1 else ''}, " if days else ""
    up += f"{hours:2d}:{minutes:02d}" if hours else f"{minutes} min"
    return f" {clock} up {up},  load average: {', '.join(loads)}"


def host_ip(configured: str | None) -> str:
    return configured or netutils.get_my_ipv4()
