"""What the container driver starts a guest with: its init's argv, what
the launcher is told (``launch_spec``; ``exec_request`` for a command in
a running guest) and its cgroup limits.

The argv comes from the image's ``os_command_line`` property (tenant
input choosing only what runs inside the guest), the limits only from the
flavor snapshot (admin-owned). Disk quotas key on the root's loop device,
which exists only once the root is mounted, while the guest's cgroups
must exist before the launcher forks into them: a start computes the
flavor's limits once without the disk quotas (``flavor_limits``) and,
when the flavor has some (``needs_device``), adds them once the real
device is known (``with_disk_quotas``).
"""

from __future__ import annotations

import dataclasses
import json
import shlex

from pyct_driver import exception
from pyct_driver import extra_specs as specs_mod
from pyct_driver.virt import base
from pyct_driver.virt.cgroups import base as cg_base
from pyct_driver.virt.process.guestinit import caps
from pyct_driver.virt.process.spec import ExecRequest, GuestSpec
from pyct_driver.virt.rootfs.store import ImageStore


@dataclasses.dataclass(frozen=True)
class GuestLimits:
    """The host's rules for every guest ([container] options)."""

    allow_host_root: bool = False
    devpts_max: int = 512
    console_max_bytes: int = 1048576
    console_rate: int = 65536
    console_burst: int = 1048576
    nofile: tuple[int, int] = (1024, 524288)

    @classmethod
    def from_conf(cls, opts) -> GuestLimits:
        """From the ``[container]`` option group."""
        return cls(allow_host_root=opts.allow_host_root_guests,
                   devpts_max=opts.devpts_max,
                   console_max_bytes=opts.console_max_bytes,
                   console_rate=opts.console_rate_bytes,
                   console_burst=opts.console_burst_bytes,
                   nofile=(min(opts.nofile_soft, opts.nofile_hard),
                           opts.nofile_hard))


def launch_spec(instance: base.InstanceSpec, rules: GuestLimits, *,
                root: str, argv: list[str],
                id_range: tuple[int, int] | None,
                cgroup_procs: list[str], console_log: str,
                views: str = "") -> GuestSpec:
    """The launcher's ``GuestSpec``: a privileged guest keeps Docker's
    default capabilities, a host-root one all (only where allowed)."""
    if instance.host_root and not rules.allow_host_root:
        raise exception.VirtError(
            reason="flavor asks for a host-root guest (pyct:host_root) and "
                   "this host does not allow them ([container] "
                   "allow_host_root_guests)")
    nesting = specs_mod.nesting_from(instance.flavor.extra_specs)
    if nesting and id_range is None:
        raise exception.VirtError(
            reason="pyct:nesting needs a guest in a user namespace")
    return GuestSpec(
        uuid=instance.uuid, root=root, hostname=instance.hostname,
        argv=tuple(argv), cgroup_procs=tuple(cgroup_procs),
        console_log=console_log, console_max_bytes=rules.console_max_bytes,
        console_rate=rules.console_rate, console_burst=rules.console_burst,
        id_range=id_range,
        keep_caps=(caps.DOCKER_DEFAULT if instance.privileged
                   and not instance.host_root else None),
        devpts_max=rules.devpts_max, nofile=rules.nofile, views=views,
        nesting=nesting,
        # held until its links exist: its first boot sees eth0
        hold=bool(instance.vifs))


def init_argv(images: ImageStore, instance: base.InstanceSpec) -> list[str]:
    """The guest init's argv (default ``/sbin/init``)."""
    props = dict(images.properties(instance.image_id)) \
        if images.has_image(instance.image_id) else {}
    props.update(instance.image_properties)
    cmdline = props.get("os_command_line")
    if not cmdline:
        return ["/sbin/init"]
    # Image configs give a shell-quoted line (layout.command_line); a JSON
    # list is accepted too.
    try:
        argv = json.loads(cmdline) if cmdline.startswith("[") \
            else shlex.split(cmdline)
    except ValueError as err:
        raise exception.InvalidImage(
            image=instance.image_id,
            reason=f"bad os_command_line {cmdline!r}: {err}") from err
    if not argv:
        raise exception.InvalidImage(image=instance.image_id,
                                     reason="empty os_command_line")
    return [str(a) for a in argv]


def new_record(images: ImageStore, instance: base.InstanceSpec,
               id_range: tuple[int, int] | None) -> dict:
    """An instance's record before its first start (``records``)."""
    return {"uuid": instance.uuid, "hostname": instance.hostname,
            "argv": init_argv(images, instance), "pid": None,
            "start_time": None,
            "id_range": list(id_range) if id_range else None}


def limits(instance: base.InstanceSpec, device: str | None,
           default_pids_max: int) -> cg_base.CgroupLimits:
    """All the flavor's limits, disk quotas on ``device``."""
    return with_disk_quotas(flavor_limits(instance, default_pids_max),
                            instance, device)


def flavor_limits(instance: base.InstanceSpec,
                  default_pids_max: int) -> cg_base.CgroupLimits:
    """The flavor's limits minus the disk quotas (validated all the same)."""
    f = instance.flavor
    return cg_base.flavor_limits(f.vcpus, f.memory_mb, f.swap_mb,
                                 f.extra_specs, default_pids_max)


def with_disk_quotas(limits_: cg_base.CgroupLimits,
                     instance: base.InstanceSpec,
                     device: str | None) -> cg_base.CgroupLimits:
    """``limits_`` with the flavor's disk quotas keyed on ``device``."""
    return dataclasses.replace(limits_, io_limits=cg_base.disk_limits(
        instance.flavor.extra_specs, device))


def needs_device(instance: base.InstanceSpec) -> bool:
    """The flavor sets disk quotas (``quota:disk_*``)."""
    return specs_mod.disk_limits_from(instance.flavor.extra_specs).any()


def exec_request(uuid: str, record: dict, argv: list[str],
                 env: dict[str, str] | None, cgroup_procs: list[str],
                 rules: GuestLimits) -> ExecRequest:
    """What the launcher needs to run a command in a running guest as its
    own processes run. A guest recorded before capabilities were (without
    a user namespace) is treated as a privileged one: Docker's set."""
    keep = record.get("keep_caps", caps.DOCKER_DEFAULT
                      if not record.get("id_range") else None)
    return ExecRequest(
        uuid=uuid, pid=int(record["pid"]),
        start_time=int(record["start_time"]), argv=tuple(argv),
        cgroup_procs=tuple(cgroup_procs), env=env,
        userns=bool(record.get("id_range")),
        keep_caps=tuple(keep) if keep is not None else None,
        nofile=rules.nofile, nesting=record.get("nesting") is True)
