"""Default rules that later microversions brought (Nova's names): server
tags (2.26), the embedded flavor's extra specs (2.47), flavor
descriptions (2.55), trusted certificates (2.63), requested destinations
(2.74), the server topology (2.78)."""

from __future__ import annotations

from pyct_driver.api.policies.base import (ADMIN, PROJECT_MEMBER_OR_ADMIN,
                                           PROJECT_READER_OR_ADMIN)

_TAGS = "os_compute_api:os-server-tags:"

RULES: list[tuple[str, str, str]] = [
    (_TAGS + "index", PROJECT_READER_OR_ADMIN, "List a server's tags."),
    (_TAGS + "show", PROJECT_READER_OR_ADMIN,
     "Check whether a server has a tag."),
    (_TAGS + "update", PROJECT_MEMBER_OR_ADMIN, "Add one tag to a server."),
    (_TAGS + "update_all", PROJECT_MEMBER_OR_ADMIN,
     "Replace all the tags of a server."),
    (_TAGS + "delete", PROJECT_MEMBER_OR_ADMIN,
     "Delete one tag of a server."),
    (_TAGS + "delete_all", PROJECT_MEMBER_OR_ADMIN,
     "Delete all the tags of a server."),
    ("os_compute_api:os-instance-actions:events:details", ADMIN,
     "Show the details of instance action events (2.84)."),
    ("os_compute_api:os-flavor-manage:update", ADMIN,
     "Update a flavor's description (2.55)."),
    ("os_compute_api:servers:topology:index", PROJECT_READER_OR_ADMIN,
     "Show a server's NUMA topology (2.78)."),
    ("os_compute_api:servers:topology:host:index", ADMIN,
     "Show the host side of a server's NUMA topology (2.78)."),
    ("os_compute_api:servers:show:flavor-extra-specs",
     PROJECT_READER_OR_ADMIN,
     "Show the extra specs of a server's embedded flavor (2.47)."),
    ("os_compute_api:servers:create:trusted_certs", PROJECT_MEMBER_OR_ADMIN,
     "Create a server with trusted image certificates (2.63)."),
    ("os_compute_api:servers:create:requested_destination", ADMIN,
     "Ask for a host or hypervisor when creating a server (2.74)."),
]
