"""Default rule of the remote consoles (Nova's name and persona)."""

from __future__ import annotations

from pyct_driver.api.policies.base import PROJECT_MEMBER_OR_ADMIN

RULES: list[tuple[str, str, str]] = [
    ("os_compute_api:os-remote-consoles", PROJECT_MEMBER_OR_ADMIN,
     "Get a URL of a server's remote console (POST "
     "/servers/{server_id}/remote-consoles; the os-getSerialConsole, "
     "os-getVNCConsole and os-getSPICEConsole actions before 2.6)."),
]
