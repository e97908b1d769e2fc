"""Default rules of snapshots, backups and shelving (Nova's names and
defaults): a project's members snapshot, back up, shelve and unshelve its
servers; offloading a shelved server at once and unshelving onto a named
host are an admin's."""

from __future__ import annotations

from pyct_driver.api.policies.base import ADMIN, PROJECT_MEMBER_OR_ADMIN

_S = "os_compute_api:os-shelve:"

RULES: list[tuple[str, str, str]] = [
    ("os_compute_api:servers:create_image", PROJECT_MEMBER_OR_ADMIN,
     "Create an image from a server (createImage)."),
    ("os_compute_api:os-create-backup", PROJECT_MEMBER_OR_ADMIN,
     "Back up a server (createBackup)."),
    (_S + "shelve", PROJECT_MEMBER_OR_ADMIN, "Shelve a server."),
    (_S + "shelve_offload", ADMIN, "Offload a shelved server."),
    (_S + "unshelve", PROJECT_MEMBER_OR_ADMIN, "Unshelve a server."),
    (_S + "unshelve_to_host", ADMIN,
     "Unshelve a server onto a named host (2.91)."),
]
