"""The fake virt driver: instances as entries in a dict.

It keeps the same contract as the container driver (idempotent destroy,
NOSTATE for unknown instances, power states that follow the lifecycle) so
the API, RPC and compute layers can be tested without root. Failures can be
injected through the image property ``fake_fail`` (``spawn``, ``reboot``,
``power_off``, ``power_on``, ``apply_flavor``, ``suspend``, ``rescue``,
``unrescue``, ``send_guest``, ``receive_guest``) — an image property
because only operators register images.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import threading
import time
from typing import Callable, Iterable

from oslo_config import cfg

from pyct_driver import exception, states
from pyct_driver.progress import SILENT, Progress
from pyct_driver.virt import base, diagnostics, fake_calls
from pyct_driver.virt.fake_moves import FakeMoves


class FakeDriver(FakeMoves, base.VirtDriver):
    """An in-memory hypervisor."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._resources = base.HostResources(
            vcpus=conf.fake_driver.vcpus, memory_mb=conf.fake_driver.memory_mb,
            local_gb=conf.fake_driver.local_gb)
        self._spawn_delay = conf.fake_driver.spawn_delay
        # tests count calls across processes, and slow the long steps
        fake_calls.record(self, conf.fake_driver)
        self._lock = threading.Lock()
        self.floating_ips: dict[str, str] = {}  # set_floating_ips'
        self._instances: dict[str, dict] = {}
        self._images: set[str] = set()
        # the pretend files of each image a snapshot made; a test hook
        # holds a snapshot between its capture and its upload
        self._image_files: dict[str, dict] = {}
        self.snapshot_hold = threading.Event()
        self.snapshot_hold.set()
        self.host: str | None = None

    def _fail(self, instance: base.InstanceSpec, step: str) -> None:
        if instance.image_properties.get("fake_fail") == step:
            raise exception.VirtError(reason=f"injected {step} failure")

    def _get(self, instance: base.InstanceSpec) -> dict:
        entry = self._instances.get(instance.uuid)
        if entry is None:
            raise exception.InstanceNotRunning(instance_id=instance.uuid)
        return entry

    def init_host(self, host: str) -> None:
        self.host = host

    def import_image(self, image_id: str, path: str,
                     progress: Progress = SILENT) -> base.ImageInfo:
        try:
            size = os.path.getsize(path)
            done = 0
            with open(path, "rb") as f:
                digest = hashlib.md5(usedforsecurity=False)
                for chunk in iter(lambda: f.read(1 << 20), b""):
                    digest.update(chunk)
                    done += len(chunk)
                    progress.transfer("checking the image", done, size)
        except OSError as err:
            raise exception.InvalidImage(image=image_id,
                                         reason=str(err)) from err
        with self._lock:
            self._images.add(image_id)
            with open(path, "rb") as f:
                head = f.read(1 << 20)
            if head.startswith(b'{"files": '):  # a snapshot of ours
                self._image_files[image_id] = json.loads(head)["files"]
        return base.ImageInfo(disk_format="raw", container_format="bare",
                              size=size, checksum=digest.hexdigest())

    def delete_image(self, image_id: str) -> None:
        with self._lock:
            self._images.discard(image_id)

    def spawn(self, instance: base.InstanceSpec) -> None:
        if self._spawn_delay:
            time.sleep(self._spawn_delay)
        self._fail(instance, "spawn")
        with self._lock:
            if instance.uuid in self._instances:
                raise exception.VirtError(
                    reason=f"instance {instance.uuid} already exists")
            self._instances[instance.uuid] = {
                "power_state": states.RUNNING, "started": time.monotonic(),
                "cpu_ns": 0, "console": [f"{instance.hostname} login:"],
                "boots": 1, "flavor": instance.flavor,
                "disk_gb": instance.flavor.root_gb,
                "image_id": instance.image_id,
                "files": dict(self._image_files.get(instance.image_id, {}))}

    def destroy(self, instance: base.InstanceSpec) -> None:
        with self._lock:
            self._instances.pop(instance.uuid, None)

    def reboot(self, instance: base.InstanceSpec, hard: bool) -> None:
        self._fail(instance, "reboot")
        with self._lock:
            entry = self._get(instance)
            entry.update(power_state=states.RUNNING, reboot_requested=False)
            entry["boots"] += 1
            entry["console"].append(
                f"{'hard' if hard else 'soft'} reboot #{entry['boots']}")

    def power_off(self, instance: base.InstanceSpec,
                  timeout: float = 60) -> None:
        self._fail(instance, "power_off")
        with self._lock:
            self._get(instance).update(power_state=states.SHUTDOWN,
                                       reboot_requested=False)

    def power_on(self, instance: base.InstanceSpec) -> None:
        self._fail(instance, "power_on")
        with self._lock:
            self._get(instance).update(power_state=states.RUNNING,
                                       reboot_requested=False)

    def pause(self, instance: base.InstanceSpec) -> None:
        with self._lock:
            entry = self._get(instance)
            if entry["power_state"] != states.RUNNING:
                raise exception.InstanceNotRunning(instance_id=instance.uuid)
            entry["power_state"] = states.PAUSED_POWER

    def unpause(self, instance: base.InstanceSpec) -> None:
        with self._lock:
            entry = self._get(instance)
            if entry["power_state"] == states.PAUSED_POWER:
                entry["power_state"] = states.RUNNING

    def suspend(self, instance: base.InstanceSpec) -> str:
        self._fail(instance, "suspend")
        with self._lock:
            entry = self._get(instance)
            if entry["power_state"] != states.RUNNING:
                raise exception.InstanceNotRunning(instance_id=instance.uuid)
            entry["power_state"] = states.SUSPENDED_POWER
        return "fake: suspended in memory"

    def resume(self, instance: base.InstanceSpec) -> str:
        with self._lock:
            entry = self._get(instance)
            if entry["power_state"] == states.SUSPENDED_POWER:
                entry["power_state"] = states.RUNNING
        return "fake: resumed"

    def rescue(self, instance: base.InstanceSpec, rescue_image_id: str,
               password: str, timeout: float = 60) -> None:
        self._fail(instance, "rescue")
        with self._lock:
            entry = self._get(instance)
            entry["rescue"] = {"image_id": rescue_image_id,
                               "root_password": password}
            entry["power_state"] = states.RUNNING
            entry["console"].append(f"rescue boot from {rescue_image_id}")

    def unrescue(self, instance: base.InstanceSpec) -> None:
        self._fail(instance, "unrescue")
        with self._lock:
            entry = self._get(instance)
            entry.pop("rescue", None)
            entry["power_state"] = states.RUNNING
            entry["boots"] += 1

    def apply_flavor(self, instance: base.InstanceSpec,
                     flavor: base.FlavorSpec) -> None:
        self._fail(instance, "apply_flavor")
        with self._lock:
            entry = self._get(instance)
            entry["flavor"] = flavor
            entry["disk_gb"] = max(entry.get("disk_gb", 0), flavor.root_gb)

    def apply_port_filters(self, filters) -> None:
        # what a test may read back: the last set the host enforces
        with self._lock:
            self.port_filters = list(filters)

    def attach_interface(self, instance: base.InstanceSpec,
                         vif: base.VifSpec) -> None:
        with self._lock:
            self._get(instance).setdefault("vifs", {})[vif.port_id] = vif

    def set_floating_ips(self, mapping: dict[str, str]) -> None:
        with self._lock:
            self.floating_ips = dict(mapping)

    def detach_interface(self, instance: base.InstanceSpec,
                         vif: base.VifSpec) -> None:
        with self._lock:
            entry = self._instances.get(instance.uuid)
            if entry is not None:
                entry.get("vifs", {}).pop(vif.port_id, None)

    def get_info(self, instance: base.InstanceSpec) -> base.InstanceInfo:
        with self._lock:
            entry = self._instances.get(instance.uuid)
            if entry is None:
                return base.InstanceInfo(power_state=states.NOSTATE)
            return base.InstanceInfo(
                power_state=entry["power_state"],
                memory_used_kb=instance.flavor.memory_mb * 1024 // 8,
                cpu_time_ns=entry["cpu_ns"],
                reboot_requested=bool(entry.get("reboot_requested")))

    def list_instances(self) -> list[str]:
        with self._lock:
            return list(self._instances)

    def get_console_output(self, instance: base.InstanceSpec,
                           length: int | None = None) -> str:
        with self._lock:
            lines = list(self._get(instance)["console"])
        if length is not None:
            lines = lines[-length:] if length > 0 else []
        return "\n".join(lines) + ("\n" if lines else "")

    def attach_console(self, instance: base.InstanceSpec) -> socket.socket:
        """A pretend shell on the console: echoes each line typed, answers
        ``echo WORDS`` with WORDS, and logs both as a tty would."""
        with self._lock:
            entry = self._instances.get(instance.uuid)
            if entry is None or entry["power_state"] != states.RUNNING:
                raise exception.InstanceNotReady(instance_id=instance.uuid)
        ours, theirs = socket.socketpair()
        threading.Thread(target=self._shell, args=(entry, ours),
                         daemon=True, name=f"console-{instance.uuid}").start()
        return theirs

    def _shell(self, entry: dict, sock: socket.socket) -> None:
        buf = b""
        with sock:
            while chunk := sock.recv(4096):
                buf += chunk.replace(b"\r", b"\n")
                while b"\n" in buf:
                    line, _, buf = buf.partition(b"\n")
                    if not line:
                        continue
                    out = b"# " + line + b"\r\n"
                    if line.startswith(b"echo "):
                        out += line[5:] + b"\r\n"
                    with self._lock:
                        entry["console"].extend(
                            out.decode(errors="replace").splitlines())
                    sock.sendall(out)

    def set_admin_password(self, instance: base.InstanceSpec,
                           password: str) -> None:
        with self._lock:
            self._get(instance)["root_password"] = password

    def snapshot(self, instance: base.InstanceSpec, image_id: str,
                 dest: str, base_path: str | None,
                 update_task_state: Callable[[str], None]
                 ) -> base.ImageInfo:
        """The guest's pretend files as a JSON file at ``dest``."""
        update_task_state("pending_upload")
        with self._lock:
            files = dict(self._get(instance).get("files", {}))
        self._fail(instance, "snapshot")
        self.snapshot_hold.wait(30)
        update_task_state("uploading")
        data = json.dumps({"files": files}).encode()
        with open(dest + ".fake-snapshot", "wb") as f:
            f.write(data)
        os.rename(dest + ".fake-snapshot", dest)
        with self._lock:
            self._images.add(image_id)
            self._image_files[image_id] = files
        return base.ImageInfo(disk_format="raw", container_format="docker",
                              size=len(data), checksum=hashlib.md5(
                                  data, usedforsecurity=False).hexdigest())

    def get_diagnostics(self, instance: base.InstanceSpec) -> dict:
        """Fixed numbers, in the container driver's form."""
        with self._lock:
            self._get(instance)
        info = base.InstanceInfo(power_state=states.RUNNING,
                                 memory_used_kb=65536,
                                 cpu_time_ns=1_000_000_000)
        return diagnostics.diagnostics(
            instance, info, 60, "fake",
            [{"rx_octets": 1000, "tx_octets": 2000, "rx_packets": 10,
              "tx_packets": 20}] * len(instance.vifs))

    def get_available_resource(self) -> base.HostResources:
        return self._resources

    def host_holdings(self, network_ids: Iterable[str]) -> base.HostHoldings:
        with self._lock:
            running = sorted(u for u, e in self._instances.items()
                             if e["power_state"] in (states.RUNNING,
                                                     states.PAUSED_POWER))
        return base.HostHoldings(running=tuple(running))

    def release_host(self, network_ids: Iterable[str]) -> base.HostHoldings:
        return self.host_holdings(network_ids)  # holds nothing on the host

    def simulate_crash(self, uuid: str) -> None:
        """Test hook: the guest stopped on its own."""
        with self._lock:
            if uuid in self._instances:
                self._instances[uuid]["power_state"] = states.SHUTDOWN

    def simulate_guest_reboot(self, uuid: str) -> None:
        """Test hook: the guest ran `reboot` (down until something
        reboots it: get_info only reports it)."""
        with self._lock:
            if uuid in self._instances:
                self._instances[uuid].update(power_state=states.SHUTDOWN,
                                             reboot_requested=True)
