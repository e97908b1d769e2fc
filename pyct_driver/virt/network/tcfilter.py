"""The kernel side of pyct's port and bridge filters: an eBPF program
loaded with bpf(2) (``load``) and attached in direct-action mode as the
one ``bpf`` filter of a link's ingress qdisc (``attach``), or replaced
there. ``antispoof`` writes the programs (with ``virt.kernel.ebpf``); this
module only hands them to the kernel through ``virt.kernel.bpf``, so its
errors carry the verifier's log.
"""

from __future__ import annotations

import errno
import os

from pyct_driver import exception
from pyct_driver.virt.kernel import bpf
from pyct_driver.virt.network import netlink

INGRESS = 0xFFFF0000
ETH_P_ALL = 0x0003


def load(code: bytes, name: str) -> int:
    """Load the program into the kernel; returns its fd (caller closes)."""
    try:
        return bpf.prog_load(bpf.BPF_PROG_TYPE_SCHED_CLS, code, name)
    except OSError as err:
        raise exception.NetworkError(
            reason=f"bpf prog load: {err.strerror}", errno=err.errno
        ) from err


def attach(host: netlink.HostNetlink, index: int, ifname: str,
            code: bytes, name: str, replace: bool = False) -> None:
    fd = load(code, name)
    try:
        with host.lock, netlink.wrap(f"anti-spoofing on {ifname}"):
            if not replace:
                host.ipr.tc("add", "ingress", index, INGRESS)
            host.ipr.tc("replace-filter" if replace else "add-filter",
                        "bpf", index, ":1", parent=INGRESS,
                        prio=1, protocol=ETH_P_ALL, fd=fd,
                        name=name, direct_action=True)
    finally:
        # The filter holds its own reference to the program.
        os.close(fd)


def installed(host: netlink.HostNetlink, index: int) -> bool:
    """Whether a bpf filter sits on the ingress of ``index``."""
    try:
        with host.lock:
            filters = host.ipr.get_filters(index=index, parent=INGRESS)
    except OSError as err:
        if err.errno == errno.ENODEV:
            return False
        raise
    return any(f.get_attr("TCA_KIND") == "bpf" for f in filters)
