"""What every handler is given: the seams and settings of one API app.

Built once by ``app.create_app``; handlers never read configuration.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from pyct_driver.api.policy import Policy
from pyct_driver.db.engine import Database
from pyct_driver.db.networks import IpamSettings, Routes
from pyct_driver.notifications.notifier import Notifications


@dataclasses.dataclass(frozen=True)
class Settings:
    max_limit: int = 1000
    max_instances_per_request: int = 100
    public_endpoint: str | None = None
    service_down_time: int = 60
    # [container] allow_host_root_guests: pyct:host_root flavors allowed
    allow_host_root: bool = False
    image_member_quota: int = 128
    # [quota]: each resource's configured default (api.quota_check), and
    # whether quotas are enforced at all (driver != noop)
    quota_defaults: dict = dataclasses.field(default_factory=dict)
    quota_enforced: bool = True
    # [DEFAULT] default_availability_zone / internal_service_...
    default_zone: str = "nova"
    internal_zone: str = "internal"
    # [serial_console] enabled, base_url, token_ttl (api.remote_consoles)
    console: dict = dataclasses.field(default_factory=lambda: {
        "enabled": True, "base_url": "ws://127.0.0.1:6083/",
        "token_ttl": 600})
    # [image]: where uploaded image files live, the largest upload, and
    # the formats accepted (api.image_create, api.image_upload)
    image_dir: str = "/var/lib/pyct/images"
    max_image_bytes: int = 10240 << 20
    disk_formats: tuple[str, ...] = ("raw",)
    container_formats: tuple[str, ...] = ("bare", "docker")
    # [api] enable_instance_password: a rescue answers its adminPass
    instance_password: bool = True
    # [network] floating_ip_range and floating_network_name: the external
    # network (api.floating_ips); "" none
    floating_range: str = ""
    floating_network_name: str = "public"


@dataclasses.dataclass
class Api:
    db: Database
    compute: Any           # rpc.client.ComputeClient or a test double
    policy: Policy
    scheduler: Any         # api.scheduler.Scheduler
    settings: Settings
    ipam: IpamSettings = dataclasses.field(default_factory=IpamSettings)
    # the host's routes, read when a network is created (api.host_routes)
    host_routes: Routes = list
    # what the API itself notifies (a delete no compute service does);
    # not given: nothing is sent
    notifications: Notifications = None  # type: ignore[assignment]
    # the image store uploads go into: import_image(id, path) and
    # delete_image(id) (the virt driver's, api.image_upload.DriverImages)
    images: Any = None

    def __post_init__(self) -> None:
        if self.notifications is None:
            self.notifications = Notifications(self.db, "")
