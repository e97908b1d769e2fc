"""The virt driver interface: what the compute manager asks of a hypervisor.

A driver turns an ``InstanceSpec`` (plain data the manager builds from the
database row; drivers never touch the database) into something that runs and
reports on it. Every method declared here is implemented by every driver —
there are no ``NotImplementedError`` stubs. Drivers are loaded by name from
the stevedore namespace ``pyct_driver.virt_drivers`` (see
``pyct_driver.plugins``).
"""

from __future__ import annotations

import abc
import dataclasses
import socket
from typing import BinaryIO, Callable, Iterable, Protocol, Sequence

from pyct_driver import exception
from pyct_driver.progress import SILENT, Progress
from pyct_driver.virt.port_filter import PortFilter


@dataclasses.dataclass(frozen=True)
class FlavorSpec:
    """The flavor snapshot an instance was booted with."""

    vcpus: int
    memory_mb: int
    root_gb: int
    swap_mb: int = 0
    ephemeral_gb: int = 0
    extra_specs: dict[str, str] = dataclasses.field(default_factory=dict)


# outer IPv4 20 + UDP 8 + VXLAN 8 + inner Ethernet 14: what a project
# network's MTU loses where it spans hosts (network.vxlan)
TUNNEL_OVERHEAD = 50


@dataclasses.dataclass(frozen=True)
class VifSpec:
    """One network interface of an instance: ``eth<device_index>``."""

    port_id: str
    network_id: str
    mac: str
    ip: str
    prefixlen: int
    gateway: str
    mtu: int = 1500
    device_index: int = 0
    dns_nameservers: tuple[str, ...] = ()
    # the network's VXLAN segment (None: no VNI, the bridge stays local)
    vni: int | None = None


@dataclasses.dataclass(frozen=True)
class InstanceSpec:
    """Everything a driver needs to know about one instance."""

    uuid: str
    name: str
    hostname: str
    flavor: FlavorSpec
    image_id: str
    image_properties: dict[str, str] = dataclasses.field(default_factory=dict)
    user_data: str | None = None
    metadata: dict[str, str] = dataclasses.field(default_factory=dict)
    key_data: str | None = None
    project_id: str = ""
    vifs: tuple[VifSpec, ...] = ()
    config_drive: bool = False
    # (path relative to the drive, content); filled by the manager when
    # config_drive is on, since drivers never read the database
    config_drive_files: tuple[tuple[str, bytes], ...] = ()
    # (first host id, count) the guest's user namespace maps its ids 0..
    # onto; allocated in the database, None only for privileged guests
    id_range: tuple[int, int] | None = None
    # from the admin-owned flavor extra specs only: ``pyct:privileged``
    # runs the guest without a user namespace (its root is host uid 0,
    # with Docker's default capabilities); ``pyct:host_root`` also keeps
    # every capability (the driver refuses it unless the operator allows)
    privileged: bool = False
    host_root: bool = False


def bare_spec(uuid: str, image_id: str = "") -> InstanceSpec:
    """Enough of a spec for the steps that need only the uuid (destroy,
    stopping a guest that has no ports)."""
    return InstanceSpec(uuid=uuid, name=uuid, hostname=uuid,
                        flavor=FlavorSpec(vcpus=1, memory_mb=1, root_gb=0),
                        image_id=image_id)


@dataclasses.dataclass(frozen=True)
class InstanceInfo:
    """What the driver observes of one instance right now.

    ``reboot_requested``: the guest is down because it asked to reboot
    (it ran ``reboot``; ``power_state`` is SHUTDOWN). A look restarts
    nothing: the power-state sync decides to reboot it, as a hypervisor
    brings back a VM that reboots itself."""

    power_state: int
    memory_used_kb: int = 0
    cpu_time_ns: int = 0
    reboot_requested: bool = False


@dataclasses.dataclass(frozen=True)
class HostResources:
    """Capacity of the host as the driver sees it; ``local_gb`` is the
    disk instances can have (free space plus their disks' holdings), before
    the compute service takes ``reserved_host_disk_mb`` off."""

    vcpus: int
    memory_mb: int
    local_gb: int


@dataclasses.dataclass(frozen=True)
class HostHoldings:
    """What a driver holds on the host outside the guests' own disks:
    guests still running (uuids), its helper processes (pids), its cgroup
    parent directories and network links (names)."""

    running: tuple[str, ...] = ()
    helpers: tuple[int, ...] = ()
    cgroups: tuple[str, ...] = ()
    links: tuple[str, ...] = ()

    def empty(self) -> bool:
        return not (self.running or self.helpers or self.cgroups
                    or self.links)


@dataclasses.dataclass(frozen=True)
class ImageInfo:
    """What importing an image learned about it."""

    disk_format: str
    container_format: str
    size: int
    checksum: str
    properties: dict[str, str] = dataclasses.field(default_factory=dict)


class NetworkWatcher(Protocol):
    """Told when the host side of a project network (the device its
    guests reach the host through) is set up and when it goes."""

    def up(self, device: str) -> None: ...

    def down(self, device: str) -> None: ...


class VirtDriver(abc.ABC):
    """A hypervisor as the compute manager sees it."""

    @abc.abstractmethod
    def init_host(self, host: str) -> None:
        """Prepare the host; called once when the compute service starts."""

    @abc.abstractmethod
    def import_image(self, image_id: str, path: str,
                     progress: Progress = SILENT) -> ImageInfo:
        """Make the image file at ``path`` bootable under ``image_id``,
        reporting the bytes read to ``progress``."""

    @abc.abstractmethod
    def delete_image(self, image_id: str) -> None:
        """Forget an image; instances already booted from it keep working."""

    @abc.abstractmethod
    def spawn(self, instance: InstanceSpec) -> None:
        """Create and start the instance. On failure nothing is left."""

    @abc.abstractmethod
    def destroy(self, instance: InstanceSpec) -> None:
        """Stop the instance and remove everything it had. Idempotent."""

    @abc.abstractmethod
    def reboot(self, instance: InstanceSpec, hard: bool) -> None:
        """Soft reboot (guest's own shutdown, then hard after a timeout)
        or hard reboot (kill and start again on the same root)."""

    @abc.abstractmethod
    def power_off(self, instance: InstanceSpec, timeout: float = 60) -> None:
        """Stop the guest, keeping its root. Idempotent."""

    @abc.abstractmethod
    def power_on(self, instance: InstanceSpec) -> None:
        """Start a stopped guest on its kept root. Idempotent."""

    @abc.abstractmethod
    def pause(self, instance: InstanceSpec) -> None:
        """Freeze every process of the guest."""

    @abc.abstractmethod
    def unpause(self, instance: InstanceSpec) -> None:
        """Thaw a paused guest."""

    @abc.abstractmethod
    def suspend(self, instance: InstanceSpec) -> str:
        """Suspend the running guest: stop it using CPU (and, where the
        host can checkpoint it, memory); return the mode used, in words
        for the instance action event."""

    @abc.abstractmethod
    def resume(self, instance: InstanceSpec) -> str:
        """Resume a suspended guest as it was; return how, in words."""

    @abc.abstractmethod
    def rescue(self, instance: InstanceSpec, rescue_image_id: str,
               password: str, timeout: float = 60) -> None:
        """Stop the guest (``timeout`` for its own shutdown) and boot it
        from a fresh throw-away root of ``rescue_image_id`` (imported
        already) with its own root at ``/mnt``, the same ports, and
        ``password`` as root's password in the rescue root."""

    @abc.abstractmethod
    def unrescue(self, instance: InstanceSpec) -> None:
        """Stop the rescue guest, discard its root and boot the guest
        from its own root again (what was changed under /mnt kept).
        Idempotent: a guest not in rescue is started."""

    @abc.abstractmethod
    def apply_flavor(self, instance: InstanceSpec, flavor: FlavorSpec
                     ) -> None:
        """Give the instance ``flavor``'s limits (CPU, RAM, swap, I/O,
        pids) without restarting it (a running or paused guest keeps its
        init; a stopped one has them at its next start) and grow its root
        disk to ``flavor.root_gb`` if that is larger (never shrink)."""

    @abc.abstractmethod
    def send_guest(self, instance: InstanceSpec, sink: BinaryIO) -> None:
        """Write the stopped guest's own files (root changes, console log,
        config drive) to ``sink`` as one stream; the guest stays here
        untouched (a cold migration's source)."""

    @abc.abstractmethod
    def receive_guest(self, instance: InstanceSpec, source: BinaryIO
                      ) -> None:
        """Make the guest here, stopped, from a ``send_guest`` stream
        (its image imported already); all or nothing."""

    def live_migration_support(self) -> tuple[bool, str]:
        """Whether this host can checkpoint and restore a running guest
        (a live migration's end), and why in words."""
        return False, "the virt driver cannot checkpoint guests"

    @abc.abstractmethod
    def get_info(self, instance: InstanceSpec) -> InstanceInfo:
        """Observe the instance, changing nothing. An unknown instance is
        NOSTATE, not an error."""

    @abc.abstractmethod
    def list_instances(self) -> list[str]:
        """UUIDs of the instances this driver has on the host."""

    @abc.abstractmethod
    def get_console_output(self, instance: InstanceSpec,
                           length: int | None = None) -> str:
        """The guest console's log; ``length`` keeps only the last lines."""

    @abc.abstractmethod
    def get_available_resource(self) -> HostResources:
        """The host's capacity for instances."""

    @abc.abstractmethod
    def host_holdings(self, network_ids: Iterable[str]) -> HostHoldings:
        """What the driver holds on the host now; ``links`` only of the
        networks ``network_ids``. Changes nothing."""

    @abc.abstractmethod
    def release_host(self, network_ids: Iterable[str]) -> HostHoldings:
        """If no guest runs: stop the driver's helper processes and remove
        its host-wide resources (cgroup parents, the links of
        ``network_ids``, what guests that stopped by themselves still
        hold); a later ``init_host`` makes them again. With a guest
        running nothing changes. Returns what is still held."""

    def watch_networks(self, watcher: NetworkWatcher,
                       network_ids: Iterable[str]) -> None:
        """From now on call ``watcher.up(device)`` whenever the host-side
        device of a project network is set up (before a guest on it can
        send) and ``watcher.down(device)`` when it is removed; right away,
        ``up`` for the devices of ``network_ids`` that exist. A driver
        without such devices has nothing to tell."""

    # Hot-plug is concrete so a driver without it still loads; the
    # manager turns the NetworkError into a failed attach (the API then
    # releases the port).
    def attach_interface(self, instance: InstanceSpec, vif: VifSpec) -> None:
        """Plug ``vif`` (already listed in ``instance.vifs``) into the
        guest as ``eth<vif.device_index>``. The guest may be running,
        paused or stopped (a stopped guest gets it at its next start)."""
        raise exception.NetworkError(
            reason="interface hot-plug is not supported by this driver")

    def apply_port_filters(self, filters: Sequence[PortFilter]) -> None:
        """Enforce exactly ``filters`` (security groups) on this host's
        guest ports, replacing what was enforced before."""
        raise exception.NotImplementedYet(
            "security groups are not enforced by this driver")

    def attach_console(self, instance: InstanceSpec) -> socket.socket:
        """A stream socket on the running guest's serial console: it
        reads what the guest writes from now on (the console log keeps
        it too) and what is sent goes to the guest's console input.
        Concrete so a driver without consoles still loads."""
        raise exception.ConsoleTypeUnavailable(console_type="serial")

    def set_floating_ips(self, mapping: dict[str, str]) -> None:
        """Make the host's 1:1 NAT exactly ``mapping`` (floating IP ->
        fixed IP of a guest here). Concrete: a driver without NAT takes
        only an empty mapping."""
        if mapping:
            raise exception.NetworkError(
                reason="floating IPs are not supported by this driver")

    def tunnel_address(self) -> str:
        """This host's VXLAN endpoint; "" (concrete): project networks
        do not span hosts through this driver."""
        return ""

    def set_tunnels(self, network_id: str,
                    ports: list[tuple[str, str]]) -> None:
        """Send the network's frames to exactly the hosts of ``ports``
        ((MAC, tunnel address) of each of its ports, this host's
        included). Concrete: nothing to do without tunnels."""

    def detach_interface(self, instance: InstanceSpec, vif: VifSpec) -> None:
        """Unplug ``vif`` (still listed in ``instance.vifs``); idempotent."""
        raise exception.NetworkError(
            reason="interface hot-plug is not supported by this driver")

    def set_admin_password(self, instance: InstanceSpec,
                           password: str) -> None:
        """Set the guest's root password inside the guest."""
        raise exception.NotImplementedYet(
            "Unable to set password on instance")

    def snapshot(self, instance: InstanceSpec, image_id: str, dest: str,
                 base_path: str | None,
                 update_task_state: Callable[[str], None]) -> ImageInfo:
        """Capture the guest's root as image ``image_id`` at ``dest`` (a
        file or directory any host's ``import_image`` takes; ``base_path``
        is the file of the image it booted from), calling
        ``update_task_state("pending_upload")`` before the capture and
        ``("uploading")`` after it. This host can boot it at once."""
        raise exception.NotImplementedYet(
            "Unable to snapshot, functionality not implemented")

    def get_diagnostics(self, instance: InstanceSpec) -> dict:
        """Nova's 2.48 standard diagnostics of a running guest."""
        raise exception.NotImplementedYet(
            "Unable to get diagnostics, functionality not implemented")
