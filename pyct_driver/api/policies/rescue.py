"""Default rules of rescue and suspend (Nova's names): a project's members
rescue, unrescue, suspend and resume its servers."""

from __future__ import annotations

from pyct_driver.api.policies.base import PROJECT_MEMBER_OR_ADMIN

RULES: list[tuple[str, str, str]] = [
    ("os_compute_api:os-rescue", PROJECT_MEMBER_OR_ADMIN,
     "Rescue a server: boot it from a rescue image with its own root at "
     "/mnt."),
    ("os_compute_api:os-unrescue", PROJECT_MEMBER_OR_ADMIN,
     "Unrescue a server: boot it from its own root again."),
    ("os_compute_api:os-suspend-server:suspend", PROJECT_MEMBER_OR_ADMIN,
     "Suspend a server."),
    ("os_compute_api:os-suspend-server:resume", PROJECT_MEMBER_OR_ADMIN,
     "Resume a suspended server."),
]
