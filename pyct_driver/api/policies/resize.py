"""Default rules of resize, migration and rebuild (Nova's names): a
project's members resize, confirm, revert and rebuild its servers;
rebuilding with a trusted image certificate list is a member's too; only
admins migrate servers (cold or live) and name the target host."""

from __future__ import annotations

from pyct_driver.api.policies.base import ADMIN, PROJECT_MEMBER_OR_ADMIN

_P = "os_compute_api:servers:"

RULES: list[tuple[str, str, str]] = [
    (_P + "resize", PROJECT_MEMBER_OR_ADMIN, "Resize a server."),
    (_P + "confirm_resize", PROJECT_MEMBER_OR_ADMIN,
     "Confirm a server's resize."),
    (_P + "revert_resize", PROJECT_MEMBER_OR_ADMIN,
     "Revert a server's resize."),
    (_P + "rebuild", PROJECT_MEMBER_OR_ADMIN, "Rebuild a server."),
    ("os_compute_api:os-migrate-server:migrate", ADMIN,
     "Cold migrate a server to another host."),
    ("os_compute_api:os-migrate-server:migrate:host", ADMIN,
     "Cold migrate a server to a host named in the request (2.56)."),
    ("os_compute_api:os-migrate-server:migrate_live", ADMIN,
     "Live migrate a server to another host."),
    (_P + "rebuild:trusted_certs", PROJECT_MEMBER_OR_ADMIN,
     "Rebuild a server with trusted image certificates (2.63)."),
]
