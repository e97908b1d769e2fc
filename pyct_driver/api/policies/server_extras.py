"""Default rules (Nova's names) of locks, server metadata, the admin
password, the server password, crash dumps, addresses, diagnostics and
server groups."""

from __future__ import annotations

from pyct_driver.api.policies.base import (ADMIN, PROJECT_MEMBER_OR_ADMIN,
                                           PROJECT_READER_OR_ADMIN)

_LOCK = "os_compute_api:os-lock-server:"
_META = "os_compute_api:server-metadata:"
_GROUPS = "os_compute_api:os-server-groups:"
_R, _W = PROJECT_READER_OR_ADMIN, PROJECT_MEMBER_OR_ADMIN

RULES: list[tuple[str, str, str]] = [
    (_LOCK + "lock", _W, "Lock a server."),
    (_LOCK + "unlock", _W, "Unlock a server."),
    (_LOCK + "unlock:unlock_override", ADMIN,
     "Unlock a server that someone else locked."),
    (_META + "index", _R, "List a server's metadata."),
    (_META + "show", _R, "Show one metadata item of a server."),
    (_META + "create", _W, "Add or change metadata items of a server."),
    (_META + "update_all", _W, "Replace all the metadata of a server."),
    (_META + "update", _W, "Set one metadata item of a server."),
    (_META + "delete", _W, "Delete one metadata item of a server."),
    ("os_compute_api:os-admin-password", _W,
     "Change a server's root password (changePassword)."),
    ("os_compute_api:os-server-password:show", _R,
     "Show a server's encrypted password."),
    ("os_compute_api:os-server-password:clear", _W,
     "Clear a server's encrypted password."),
    ("os_compute_api:servers:trigger_crash_dump", _W,
     "Trigger a crash dump in a server."),
    ("os_compute_api:ips:index", _R, "List a server's addresses."),
    ("os_compute_api:ips:show", _R,
     "List a server's addresses on one network."),
    ("os_compute_api:os-server-diagnostics", ADMIN,
     "Show a server's diagnostics."),
    (_GROUPS + "index", _R, "List the project's server groups."),
    (_GROUPS + "index:all_projects", ADMIN,
     "List every project's server groups."),
    (_GROUPS + "show", _R, "Show a server group."),
    (_GROUPS + "create", _W, "Create a server group."),
    (_GROUPS + "delete", _W, "Delete a server group."),
]
