"""Server diagnostics and root passwords, for the container driver.

``diagnostics`` builds Nova's 2.48 standard body (state, uptime, one CPU
entry with the cgroup's CPU time, memory maximum and use in MiB, one NIC
entry per port with the counters of its host-side veth -- the host end
receives what the guest sends, so rx and tx swap). ``GuestAdmin`` is the
container driver's part: it reads the cgroup and the host's own links,
and sets root's password by running the guest's own ``chpasswd`` (or its
``sed`` on its own ``/etc/shadow``) the way
``pyct-manage server exec`` runs commands (``exec_in_guest``: guest root
in the guest's namespaces, cgroup and seccomp filter), so no guest path
is ever opened from the host.
"""

from __future__ import annotations

import os
import warnings

from pyct_driver import exception, states
from pyct_driver.virt import base
from pyct_driver.virt.network.names import veth_name

_STATE_NAMES = {states.RUNNING: "running", states.PAUSED_POWER: "paused",
                states.SHUTDOWN: "shutdown", states.NOSTATE: "pending",
                states.CRASHED: "crashed",
                states.SUSPENDED_POWER: "suspended"}
_COUNTERS = ("octets", "errors", "drop", "packets")
# the names of /sys/class/net/<dev>/statistics files per counter
_SYS = {"octets": "bytes", "errors": "errors", "drop": "dropped",
        "packets": "packets"}


def diagnostics(instance: base.InstanceSpec, info: base.InstanceInfo,
                uptime: int, driver: str,
                nic_counters: list[dict[str, int]]) -> dict:
    """The 2.48 body; ``nic_counters`` per vif, ``rx_octets`` etc."""
    nics = []
    for vif, counters in zip(instance.vifs, nic_counters):
        nic = {"mac_address": vif.mac, "rx_rate": None, "tx_rate": None}
        for way in ("rx", "tx"):
            for name in _COUNTERS:
                nic[f"{way}_{name}"] = counters.get(f"{way}_{name}", 0)
        nics.append(nic)
    return {
        "state": _STATE_NAMES.get(info.power_state, "pending"),
        "driver": driver, "hypervisor": "linux-container",
        "hypervisor_os": "linux", "uptime": uptime,
        "config_drive": instance.config_drive,
        "num_cpus": instance.flavor.vcpus, "num_nics": len(nics),
        "num_disks": 1,
        "cpu_details": [{"id": 0, "time": info.cpu_time_ns,
                         "utilisation": None}],
        "nic_details": nics,
        "disk_details": [{"read_bytes": 0, "read_requests": 0,
                          "write_bytes": 0, "write_requests": 0,
                          "errors_count": 0}],
        "memory_details": {"maximum": instance.flavor.memory_mb,
                           # MiB, rounded up: a tiny guest uses some
                           "used": -(-info.memory_used_kb // 1024)},
    }


def host_veth_counters(port_id: str, sys_net: str = "/sys/class/net"
                       ) -> dict[str, int]:
    """The guest's view of its port, from the host end of its veth (a
    host path: the host's own link, not the guest's file system)."""
    out: dict[str, int] = {}
    base_dir = os.path.join(sys_net, veth_name(port_id), "statistics")
    for guest_way, host_way in (("rx", "tx"), ("tx", "rx")):
        for name in _COUNTERS:
            try:
                with open(os.path.join(
                        base_dir, f"{host_way}_{_SYS[name]}")) as f:
                    out[f"{guest_way}_{name}"] = int(f.read().strip())
            except (OSError, ValueError):
                out[f"{guest_way}_{name}"] = 0
    return out


def process_uptime(start_ticks: int | None) -> int:
    """Seconds since a process started (its /proc start time in ticks)."""
    if not start_ticks:
        return 0
    try:
        with open("/proc/uptime") as f:
            now = float(f.read().split()[0])
    except (OSError, ValueError, IndexError):
        return 0
    return max(0, int(now - start_ticks / os.sysconf("SC_CLK_TCK")))


class GuestAdmin:
    """The container driver's diagnostics and password setting (mixed
    into ``ContainerDriver``, which provides ``get_info``, ``records``
    and ``exec_in_guest``)."""

    def get_diagnostics(self, instance: base.InstanceSpec) -> dict:
        info = self.get_info(instance)
        record = self.records.load(instance.uuid) or {}
        uptime = (process_uptime(record.get("start_time"))
                  if info.power_state != states.SHUTDOWN else 0)
        return diagnostics(instance, info, uptime, "pyct-container",
                           [host_veth_counters(v.port_id)
                            for v in instance.vifs])

    def set_admin_password(self, instance: base.InstanceSpec,
                           password: str, timeout: float = 30.0) -> None:
        """The guest's ``chpasswd``; a guest without one (busybox builds
        often lack it) gets the SHA-512 crypt hash made here and written
        by the guest's own ``sed`` into its own ``/etc/shadow``."""
        if "\n" in password or "\r" in password:
            raise exception.Invalid("The password may not hold a newline")
        code, err = self._guest_run(instance.uuid, ["chpasswd"],
                                    f"root:{password}\n", timeout)
        if code == 127:
            code, err = self._guest_run(
                instance.uuid, ["sh", "-c", _SED_SHADOW],
                _crypt(password) + "\n", timeout)
        if code != 0:
            raise exception.Conflict(
                "setting the password in the guest failed: "
                + err.strip()[-200:])

    def _guest_run(self, uuid: str, argv: list[str], stdin: str,
                   timeout: float) -> tuple[int, str]:
        """(exit code, stderr) of ``argv`` in the guest; 127, as a shell
        says, when the guest has no such program."""
        try:
            session = self.exec_in_guest(uuid, argv)
            code, _out, err = session.communicate(stdin.encode(),
                                                  timeout=timeout)
        except TimeoutError as exc:
            raise exception.Conflict(
                f"{argv[0]} did not finish in the guest") from exc
        except exception.ProcessError as exc:
            if "No such file or directory" in exc.message:
                return 127, exc.message
            raise
        return code, err.decode(errors="replace")


# run by the guest's shell: the hash comes on stdin, never on a command
# line other guest processes could read
_SED_SHADOW = ('read -r h && sed -i "s|^root:[^:]*:|root:$h:|" '
               '/etc/shadow && grep -q "^root:$h:" /etc/shadow')


def _crypt(password: str) -> str:
    """A SHA-512 crypt(3) hash (the crypt module warns that it goes in
    3.13; passlib is not a dependency)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import crypt
    return crypt.crypt(password, crypt.mksalt(crypt.METHOD_SHA512))
