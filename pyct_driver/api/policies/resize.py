"""Default rules of resize and rebuild (Nova's names): a project's members
resize, confirm, revert and rebuild its servers; rebuilding with a
trusted image certificate list is a member's too."""

from __future__ import annotations

from pyct_driver.api.policies.base import PROJECT_MEMBER_OR_ADMIN

_P = "os_compute_api:servers:"

RULES: list[tuple[str, str, str]] = [
    (_P + "resize", PROJECT_MEMBER_OR_ADMIN, "Resize a server."),
    (_P + "confirm_resize", PROJECT_MEMBER_OR_ADMIN,
     "Confirm a server's resize."),
    (_P + "revert_resize", PROJECT_MEMBER_OR_ADMIN,
     "Revert a server's resize."),
    (_P + "rebuild", PROJECT_MEMBER_OR_ADMIN, "Rebuild a server."),
    (_P + "rebuild:trusted_certs", PROJECT_MEMBER_OR_ADMIN,
     "Rebuild a server with trusted image certificates (2.63)."),
]
