"""Per-instance records of the container driver, on the host's disk.

One directory per instance (``<records_dir>/<uuid>/``, mode 0700) holds
``record.json`` — the guest init's pid and start time, its argv — plus the
console log and the config drive. The records are what lets a restarted
compute service re-adopt running guests, so writes are atomic renames.
"""

from __future__ import annotations

import json
import os

from pyct_driver import exception
from pyct_driver.virt.cgroups import base as cg_base


class InstanceRecords:
    """The record directories under ``records_dir``."""

    def __init__(self, records_dir: str) -> None:
        self.records_dir = records_dir

    def dir(self, uuid: str) -> str:
        return os.path.join(self.records_dir, cg_base.check_name(uuid))

    def path(self, uuid: str, name: str) -> str:
        return os.path.join(self.dir(uuid), name)

    def create_dir(self, uuid: str) -> None:
        """Make the instance's directory; an existing one is a Duplicate."""
        try:
            os.makedirs(self.records_dir, mode=0o700, exist_ok=True)
            os.mkdir(self.dir(uuid), mode=0o700)
        except FileExistsError as err:
            raise exception.Duplicate(what=f"Instance {uuid}") from err
        except OSError as err:
            raise exception.VirtError(
                reason=f"cannot create record of {uuid}: {err}") from err

    def load(self, uuid: str) -> dict | None:
        try:
            with open(self.path(uuid, "record.json")) as f:
                return json.load(f)
        except FileNotFoundError:
            return None
        except (OSError, ValueError) as err:
            raise exception.VirtError(
                reason=f"unreadable record of {uuid}: {err}") from err

    def save(self, uuid: str, record: dict) -> None:
        path = self.path(uuid, "record.json")
        tmp = path + ".tmp"
        try:
            with open(tmp, "w") as f:
                json.dump(record, f)
            # no fsync: the record only has to survive pyct-compute dying;
            # a host crash takes the guests with it
            os.replace(tmp, path)
        except OSError as err:
            raise exception.VirtError(
                reason=f"cannot write record of {uuid}: {err}") from err

    def require(self, uuid: str) -> dict:
        record = self.load(uuid)
        if record is None:
            raise exception.InstanceNotRunning(instance_id=uuid)
        return record

    def list(self) -> list[str]:
        try:
            return sorted(e.name for e in os.scandir(self.records_dir)
                          if e.is_dir(follow_symlinks=False))
        except FileNotFoundError:
            return []
