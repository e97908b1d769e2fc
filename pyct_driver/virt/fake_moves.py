"""The fake driver's cold migration: a stopped guest's pretend files and
console as one JSON document (``send_guest``), and a stopped guest made
from one (``receive_guest``), so the compute and API layers' migration
paths run without root over the real transfer channel. It has no
checkpoints: a live migration is refused with its reason."""

from __future__ import annotations

import json
import time
from typing import BinaryIO

from pyct_driver import exception, states
from pyct_driver.virt import base


class FakeMoves:
    """Mixed into ``FakeDriver`` (its lock, entries and failure hook)."""

    def send_guest(self, instance: base.InstanceSpec,
                   sink: BinaryIO) -> None:
        """The guest's pretend files and console as one JSON document."""
        self._fail(instance, "send_guest")
        with self._lock:
            entry = self._get(instance)
            if entry["power_state"] == states.RUNNING:
                raise exception.VirtError(reason="guest must be stopped")
            data = {"files": dict(entry.get("files", {})),
                    "console": list(entry["console"])}
        sink.write(json.dumps(data).encode())

    def receive_guest(self, instance: base.InstanceSpec,
                      source: BinaryIO) -> None:
        data = json.loads(source.read().decode())
        self._fail(instance, "receive_guest")
        with self._lock:
            if instance.uuid in self._instances:
                raise exception.Duplicate(what=f"Instance {instance.uuid}")
            self._instances[instance.uuid] = {
                "power_state": states.SHUTDOWN, "started": time.monotonic(),
                "cpu_ns": 0, "console": data["console"], "boots": 0,
                "flavor": instance.flavor,
                "disk_gb": instance.flavor.root_gb,
                "image_id": instance.image_id, "files": data["files"]}

    def live_migration_support(self) -> tuple[bool, str]:
        return False, "the fake driver cannot checkpoint guests"
