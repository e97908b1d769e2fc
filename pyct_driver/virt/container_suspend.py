"""The container driver's suspend and resume, and its power-state view.

A suspend first tries a CRIU checkpoint, when the compute service found
``criu check`` passing at start-up (``virt.criu``): the guest's process
tree is dumped under its record directory (``checkpoint/``) and killed by
criu, so it holds neither CPU nor memory; its root stays mounted for the
restore, its cgroup stays (empty). A dump that fails leaves the guest
running (criu resumes what it seized), and the suspend falls back to
freezing it. Without CRIU, or after that fallback, the guest's cgroup is
frozen: no CPU, its memory kept. The mode is kept in the guest's record
(``suspended``: ``criu`` or ``freeze``) and returned in words for the
instance action event, so ``get_info`` reports a suspended guest as
SUSPENDED (not PAUSED, not SHUTDOWN for a checkpointed one whose
processes are gone) across compute restarts, and the power-state sync
leaves it alone. Resume thaws the group, or restores the checkpoint and
plugs the guest's ports again (same addresses and MACs); a restore that
fails boots the guest from its root instead (its disk kept, its memory
lost), said in the event.
"""

from __future__ import annotations

import dataclasses
import shutil

from oslo_log import log as logging

from pyct_driver import exception, states
from pyct_driver.virt import base
from pyct_driver.virt.criu import Criu
from pyct_driver.virt.process import guest

LOG = logging.getLogger(__name__)
_FROZEN = "frozen: the guest's cgroup is frozen (CPU released, memory kept)"


class SuspendSide:
    """Suspend of ``ContainerDriver`` (mixed into it)."""

    criu: Criu | None = None

    def init_host(self, host: str) -> None:
        self._init_host(host)
        self.criu = Criu()
        LOG.debug("suspend mode: %s", "CRIU checkpoints (criu check passed)"
                 if self.criu.available else
                 f"cgroup freezer ({self.criu.reason})")

    def get_info(self, instance: base.InstanceSpec) -> base.InstanceInfo:
        record = self.records.load(instance.uuid) or {}
        mode = record.get("suspended")
        if mode == "criu" and not self._running(instance.uuid, record):
            return base.InstanceInfo(power_state=states.SUSPENDED_POWER)
        info = self._observe(instance)
        if mode and info.power_state == states.PAUSED_POWER:
            return dataclasses.replace(info,
                                       power_state=states.SUSPENDED_POWER)
        return info

    def _checkpoint_dir(self, uuid: str) -> str:
        return self.records.path(uuid, "checkpoint")

    def suspend(self, instance: base.InstanceSpec) -> str:
        uuid = instance.uuid
        with self._lock(uuid):
            record = self.records.require(uuid)
            if not self._running(uuid, record):
                raise exception.InstanceNotRunning(instance_id=uuid)
            criu = self.criu
            why = criu.reason if criu else "CRIU not checked"
            if criu is not None and criu.available:
                try:
                    return self._dump(instance, record)
                except exception.VirtError as err:
                    LOG.warning("CRIU checkpoint of %s failed, freezing it "
                                "instead: %s", uuid, err)
                    shutil.rmtree(self._checkpoint_dir(uuid), True)
                    if not self._running(uuid, record):
                        raise  # nothing left to freeze: the fault says why
                    why = f"CRIU checkpoint failed: {err.message}"
            self.cgroups.freeze(uuid)
            record["suspended"] = "freeze"
            self.records.save(uuid, record)
        return f"{_FROZEN}; {why}"

    def _dump(self, instance: base.InstanceSpec, record: dict) -> str:
        uuid = instance.uuid
        self.criu.dump(record["pid"], self._checkpoint_dir(uuid))
        # the tree is gone: its links go too, the root stays for restore
        if instance.vifs:
            self.net.unplug_all(instance.vifs)
        record.update(suspended="criu", pid=None, start_time=None)
        self.records.save(uuid, record)
        return ("checkpointed with CRIU: the guest's processes are on "
                "disk, its CPU and memory released")

    def resume(self, instance: base.InstanceSpec) -> str:
        uuid = instance.uuid
        with self._lock(uuid):
            record = self.records.require(uuid)
            mode = record.pop("suspended", None)
            self.records.save(uuid, record)
            if mode == "criu" and not self._running(uuid, record):
                return self._restore(instance, record)
            if self._running(uuid, record):
                self.cgroups.thaw(uuid)
                return "thawed: the guest's cgroup runs again"
            self._stop(instance, record, 0)
            self._start(instance, record)
            return "the guest was not running: booted from its root"

    def _restore(self, instance: base.InstanceSpec, record: dict) -> str:
        uuid = instance.uuid
        images = self._checkpoint_dir(uuid)
        try:
            pid = self.criu.restore(images, self._root_path(uuid))
            start = guest.proc_start_time(pid)
            if start is None:
                raise exception.VirtError(reason="restored init is gone")
            record.update(pid=pid, start_time=start)
            self.records.save(uuid, record)
            if instance.vifs:
                self.net.plug_all(pid, instance.vifs)
            how = "restored from its CRIU checkpoint"
        except exception.PyctError as err:
            LOG.warning("CRIU restore of %s failed; booting it from its "
                        "root: %s", uuid, err)
            self._stop(instance, record, 0)
            self._start(instance, record)
            how = (f"CRIU restore failed ({err.message}); booted again from "
                   "its root (disk kept, memory lost)")
        shutil.rmtree(images, ignore_errors=True)
        return how

