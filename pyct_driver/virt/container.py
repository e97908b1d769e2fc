"""The container virt driver: a flavor and an image become a running guest.

This is the composition root of the four virt sub-packages: ``rootfs``
gives the copy-on-write root with an enforced size, ``cgroups`` the
flavor's limits, ``process`` the guest's init in fresh namespaces (started
by the single-threaded launcher), and ``network`` its links. Each instance
has a JSON record on disk (its init's pid and start time), so a restarted
compute service re-adopts running guests (a live pid with that start time,
in the instance's cgroup). A failed spawn step undoes the earlier ones.

Guests are unprivileged (a user namespace on the instance's id range:
``ownership``) unless the admin-owned flavor says otherwise
(``guest_config.launch_spec``). Limits and privilege are read only from
the flavor snapshot, never from image properties or instance metadata
(tenant input); image properties choose only the guest's own init
(``os_command_line``), which runs inside the guest like any guest binary.

No-new-privs: host-side helpers pyct runs get it (mkfs.ext4 via
``setpriv``); the launcher cannot (guest inits inherit it; sudo in guests).
"""

from __future__ import annotations

import contextlib
import os
import shutil
import threading
import time
from typing import Callable

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.virt import base, guest_config, ownership
from pyct_driver.virt import host_resources as host_resources_mod
from pyct_driver.virt.cgroups.detect import detect_backend
from pyct_driver.virt.container_console import ConsoleSide
from pyct_driver.virt.container_host import HostSide
from pyct_driver.virt.container_migrate import MigrationSide
from pyct_driver.virt.container_rescue import RescueSide
from pyct_driver.virt.container_resize import FlavorChanges
from pyct_driver.virt.container_snapshot import Snapshots
from pyct_driver.virt.container_suspend import SuspendSide
from pyct_driver.virt.container_views import ViewSide
from pyct_driver.virt.diagnostics import GuestAdmin
from pyct_driver.virt.network.bridge import NetworkPlumber
from pyct_driver.virt.process import guest
from pyct_driver.virt.process.caller.client import Begun, LauncherClient
from pyct_driver.virt.process.caller.exec_session import ExecSession
from pyct_driver.virt.records import InstanceRecords
from pyct_driver.virt.rootfs import configdrive
from pyct_driver.virt.rootfs.overlay import RootManager
from pyct_driver.virt.rootfs.store import ImageStore

LOG = logging.getLogger(__name__)


class ContainerDriver(GuestAdmin, HostSide, ConsoleSide, FlavorChanges,
                      RescueSide, SuspendSide, Snapshots, ViewSide,
                      MigrationSide, base.VirtDriver):
    """Linux containers that behave like VMs; the mixins hold the host as a
    whole, consoles, flavor changes, rescue, suspend, snapshots,
    migrations and the guest's administration."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        opts = conf.container
        self.base_dir = opts.base_dir or os.path.join(conf.state_path,
                                                      "container")
        self.images = ImageStore(os.path.join(self.base_dir, "images"),
                                 max_bytes=opts.image_max_bytes,
                                 max_files=opts.image_max_files)
        self.roots = RootManager(
            os.path.join(self.base_dir, "roots"), userns_for=self._userns_fd,
            preallocate=opts.preallocate_images == "space",
            reserved_bytes=conf.compute.reserved_host_disk_mb << 20)
        self.cgroups = detect_backend(opts.cgroup_root, opts.cgroup_parent)
        self.launcher = LauncherClient(os.path.join(self.base_dir, "launcher"))
        self.records_dir = os.path.join(self.base_dir, "instances")
        self.records = InstanceRecords(self.records_dir)
        self.default_pids_max = opts.default_pids_max
        self.soft_reboot_timeout = opts.soft_reboot_timeout
        self.guest_limits = guest_config.GuestLimits.from_conf(opts)
        self._net_args = NetworkPlumber.options(conf.network, conf.metadata)
        self._plumber: NetworkPlumber | None = None
        self.host: str | None = None
        # The manager may run two operations on one instance at once (a
        # power-state sync during a reboot); each instance's steps are
        # serialised, different instances run in parallel.
        self._guard = threading.Lock()
        self._locks: dict[str, threading.Lock] = {}
        self._begun_userns: dict[tuple | None, int | None] = {}
        self._init_views(opts)

    @property
    def net(self) -> NetworkPlumber:
        """The host's network plumbing, opened on first use."""
        with self._guard:
            if self._plumber is None:
                self._plumber = NetworkPlumber(**self._net_args)
            return self._plumber

    def _userns_fd(self, id_range: tuple[int, int]) -> int:
        # the guest's own, from launcher.begin; else the launcher makes
        # one (this process is multi-threaded: no fork here)
        fd = self._drop_userns(tuple(id_range), close=False)
        return self.launcher.userns_fd(id_range) if fd is None else fd

    def _drop_userns(self, id_range: tuple | None, close: bool = True):
        with self._guard:
            fd = self._begun_userns.pop(id_range, None)
        return os.close(fd) if close and fd is not None else fd

    def _lock(self, uuid: str) -> threading.Lock:
        with self._guard:
            return self._locks.setdefault(uuid, threading.Lock())

    def _init_host(self, host: str) -> None:  # init_host: SuspendSide
        self.host = host
        for path in (self.base_dir, self.records_dir):
            os.makedirs(path, mode=0o700, exist_ok=True)
        for warning in host_resources_mod.tuning_warnings():
            LOG.warning("host tuning: %s", warning)
        self.launcher.ensure_running()
        self._start_views()

    def spawn(self, instance: base.InstanceSpec) -> None:
        uuid = instance.uuid
        id_range = ownership.id_range(instance)
        with self._lock(uuid), contextlib.ExitStack() as undo:
            self.records.create_dir(uuid)
            undo.callback(shutil.rmtree, self.records.dir(uuid), True)
            record = guest_config.new_record(self.images, instance, id_range)

            def make_root() -> list[str]:
                layers = self.images.acquire(uuid, instance.image_id)
                undo.callback(self.images.release, uuid)
                self.roots.create(uuid, instance.flavor.root_gb, id_range)
                undo.callback(self.roots.remove, uuid)
                self.records.save(uuid, record)
                return layers

            self._start(instance, record, make_root)
            undo.pop_all()

    def _start(self, instance: base.InstanceSpec, record: dict,
               make_root: Callable[[], list[str]] | None = None) -> None:
        """(Re)create the cgroup, fork C1 into it; while it joins (~10 ms on
        v1) make (``make_root``) and mount the root; then start init."""
        uuid = instance.uuid
        id_range = ownership.recorded_range(instance, record)
        owner = ownership.owner(id_range)
        with contextlib.ExitStack() as undo:
            self.cgroups.destroy(uuid)
            limits = guest_config.flavor_limits(instance,
                                                self.default_pids_max)
            self.cgroups.create(uuid, limits)
            undo.callback(self.cgroups.destroy, uuid)
            self._place_cpus(instance)
            spec = guest_config.launch_spec(
                instance, self.guest_limits, root=self._root_path(uuid),
                argv=record["argv"], id_range=id_range,
                cgroup_procs=self.cgroups.procs_files(uuid),
                console_log=os.path.join(self.records.dir(uuid),
                                         "console.log"),
                views=self._views_dir())
            begun = self._begin(spec)  # answered while the root is made
            undo.callback(self._abandon, uuid, begun)
            if id_range:
                ownership.delegate_cgroup(self.cgroups, uuid, owner,
                                          spec.nesting)
            layers = make_root() if make_root else \
                self.images.held_layers(uuid)
            with self._guard:  # for the idmapped layers (_userns_fd)
                self._begun_userns[id_range] = begun.wait()
            undo.callback(self._drop_userns, id_range)
            handle = self._mount_root(uuid, layers)  # (container_rescue)
            undo.callback(self._unmount_roots, uuid)
            self._drop_userns(id_range)
            # host-side writes and mounts must precede the start: the
            # guest copies the root's mount tree when it goes on
            ownership.inject_owned(handle.path, instance, owner)
            if instance.config_drive_files:
                drive = self.records.path(uuid, "config-drive")
                configdrive.build(drive, instance.config_drive_files)
                configdrive.attach(handle.path, drive)
                undo.callback(configdrive.detach, handle.path)
            if guest_config.needs_device(instance):  # disk quotas
                self.cgroups.create(uuid, guest_config.with_disk_quotas(
                    limits, instance, handle.device))
            handle_ = self.launcher.start(uuid)
            undo.callback(self._kill_guest, uuid, handle_.pid,
                          handle_.start_time)
            if instance.vifs:
                self.net.plug_all(handle_.pid, instance.vifs)
                undo.callback(self.net.unplug_all, instance.vifs)
                self.launcher.release(uuid)
            record.update(pid=handle_.pid, start_time=handle_.start_time,
                          keep_caps=spec.keep_caps, nesting=spec.nesting)
            self.records.save(uuid, record)
            undo.pop_all()

    def _begin(self, spec: GuestSpec) -> Begun:
        try:  # only sends: a failure means nobody listens
            return self.launcher.begin(spec)
        except exception.ProcessError:
            self.launcher.ensure_running()  # the launcher died: restart
            return self.launcher.begin(spec)

    def _abandon(self, uuid: str, begun: Begun) -> None:
        begun.close()  # the answer first: then forget finds the guest
        if not begun.refused:
            self._forget(uuid)

    def _forget(self, uuid: str) -> None:
        with contextlib.suppress(exception.PyctError):
            self.launcher.forget(uuid)

    def _kill_guest(self, uuid: str, pid: int | None,
                    start_time: int | None) -> None:
        """SIGKILL the whole guest; return once its init has died."""
        self._forget(uuid)
        ours = False
        if self.cgroups.exists(uuid):
            # only a pid inside the group is the guest's (pids recycle)
            ours = pid in self.cgroups.pids(uuid)
            self.cgroups.kill_all(uuid, timeout=10)
        # A task leaves its cgroup a moment before it dies, and a pid
        # namespace's init lingers until its other tasks are reaped (by a
        # host parent if nsenter'd). Bounded: that parent may never reap.
        deadline = time.monotonic() + 1.0
        while (ours and start_time is not None
               and guest.is_same_process(pid, start_time)
               and time.monotonic() < deadline):
            time.sleep(0.005)

    def _running(self, uuid: str, record: dict | None) -> bool:
        if not record or not record.get("pid"):
            return False
        pid = record["pid"]
        return (guest.is_same_process(pid, record["start_time"])
                and pid in self.cgroups.pids(uuid))

    def _stop(self, instance: base.InstanceSpec, record: dict,
              timeout: float) -> bool:
        """Ask init to shut down, kill what is left after ``timeout``;
        return True when the guest went down by itself."""
        uuid = instance.uuid
        clean = True
        if self._running(uuid, record):
            if self.cgroups.is_frozen(uuid):
                self.cgroups.thaw(uuid)
            if timeout > 0:
                sig = guest.shutdown_signal(record["argv"],
                                            self._root_path(uuid))
                guest.signal_init(record["pid"], record["start_time"], sig)
                deadline = time.monotonic() + timeout
                while (self._running(uuid, record)
                       and time.monotonic() < deadline):
                    time.sleep(0.05)
            clean = not self._running(uuid, record)
        self._kill_guest(uuid, record.get("pid"), record.get("start_time"))
        if instance.vifs:
            self.net.unplug_all(instance.vifs)  # deferred, off this path
        configdrive.detach(self._root_path(uuid))
        self._unmount_roots(uuid)
        record.update(pid=None, start_time=None, suspended=None)
        self.records.save(uuid, record)
        return clean

    def destroy(self, instance: base.InstanceSpec) -> None:
        uuid = instance.uuid
        with self._lock(uuid):
            try:
                record = self.records.load(uuid) or {}
            except exception.VirtError:
                record = {}  # unreadable: destroy what we find anyway
            self._kill_guest(uuid, record.get("pid"), record.get("start_time"))
            if instance.vifs:
                self.net.unplug_all(instance.vifs)
                for vif in instance.vifs:
                    self.net.remove_bridge_if_unused(vif.network_id)
            self.cgroups.destroy(uuid)
            self._rebalance_cpus()
            configdrive.detach(self._root_path(uuid))
            self._remove_roots(uuid)
            self.images.release(uuid)
            # The record goes last: while it exists, list_instances still
            # names the instance, so a failed destroy can be retried.
            shutil.rmtree(self.records.dir(uuid), ignore_errors=True)
        with self._guard:
            self._locks.pop(uuid, None)

    def reboot(self, instance: base.InstanceSpec, hard: bool) -> None:
        with self._lock(instance.uuid):
            record = self.records.require(instance.uuid)
            timeout = 0.0 if hard else self.soft_reboot_timeout
            if not self._stop(instance, record, timeout) and not hard:
                LOG.info("%s ignored its shutdown signal for %.0fs; "
                         "rebooted hard", instance.uuid, timeout)
            self._start(instance, record)

    def power_off(self, instance: base.InstanceSpec,
                  timeout: float = 60) -> None:
        with self._lock(instance.uuid):
            self._stop(instance, self.records.require(instance.uuid), timeout)

    def power_on(self, instance: base.InstanceSpec) -> None:
        with self._lock(instance.uuid):
            record = self.records.require(instance.uuid)
            if not self._running(instance.uuid, record):
                # A guest that died by itself left its processes' group
                # and mounts behind; start from a clean slate.
                self._stop(instance, record, 0)
                self._start(instance, record)

    def pause(self, instance: base.InstanceSpec) -> None:
        with self._lock(instance.uuid):
            record = self.records.require(instance.uuid)
            if not self._running(instance.uuid, record):
                raise exception.InstanceNotRunning(instance_id=instance.uuid)
            self.cgroups.freeze(instance.uuid)

    def unpause(self, instance: base.InstanceSpec) -> None:
        with self._lock(instance.uuid):
            record = self.records.require(instance.uuid)
            if self._running(instance.uuid, record):
                self.cgroups.thaw(instance.uuid)

    def attach_interface(self, instance: base.InstanceSpec,
                         vif: base.VifSpec) -> None:
        with self._lock(instance.uuid):
            record = self.records.require(instance.uuid)
            if not self._running(instance.uuid, record):
                return  # a stopped guest gets it from spec.vifs at start
            bridge = self.net.ensure_bridge(vif.network_id, vif.gateway,
                                            vif.prefixlen, vif.mtu, vif.vni)
            self.net.plug(record["pid"], vif, bridge)

    def detach_interface(self, instance: base.InstanceSpec,
                         vif: base.VifSpec) -> None:
        with self._lock(instance.uuid):
            self.net.unplug(vif)
            # the last port of a hot-plugged network takes its bridge along
            self.net.remove_bridge_if_unused(vif.network_id)

    def _observe(self, instance: base.InstanceSpec) -> base.InstanceInfo:
        uuid = instance.uuid
        record = self.records.load(uuid)
        if record is None:
            return base.InstanceInfo(power_state=states.NOSTATE)
        if not self._running(uuid, record):
            # a guest that ran `reboot` is reported, not restarted here:
            # the manager's power-state sync reboots it
            return base.InstanceInfo(
                power_state=states.SHUTDOWN,
                reboot_requested=bool(record.get("pid"))
                and guest.requested_reboot(self.launcher.status(uuid)))
        if instance.vifs:  # (a restart's first power sync: DNS again)
            self.net.resume(instance.vifs)
        try:
            power = (states.PAUSED_POWER if self.cgroups.is_frozen(uuid)
                     else states.RUNNING)
            stats = self.cgroups.stats(uuid)
        except exception.CgroupError:  # unless stopped between two looks
            if self._running(uuid, self.records.load(uuid)):
                raise
            return base.InstanceInfo(power_state=states.SHUTDOWN)
        return base.InstanceInfo(power_state=power,
                                 memory_used_kb=stats.memory_bytes // 1024,
                                 cpu_time_ns=stats.cpu_time_ns)

    def list_instances(self) -> list[str]:
        return self.records.list()

    def exec_in_guest(self, uuid: str, argv: list[str],
                      env: dict[str, str] | None = None) -> ExecSession:
        """Run ``argv`` in the running guest as its own processes run
        (``forkserver.guest_exec``); never nsenter: see SECURITY.md."""
        record = self.records.require(uuid)
        if not self._running(uuid, record):
            raise exception.InstanceNotRunning(instance_id=uuid)
        return self.launcher.exec(guest_config.exec_request(
            uuid, record, argv, env, self.cgroups.exec_procs_files(uuid),
            self.guest_limits))

    def get_console_output(self, instance: base.InstanceSpec,
                           length: int | None = None) -> str:
        self.records.require(instance.uuid)
        return guest.read_console(
            os.path.join(self.records.dir(instance.uuid), "console.log"),
            length)
