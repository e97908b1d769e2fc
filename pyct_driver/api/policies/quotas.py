"""Default rules of quota sets, quota classes and limits (Nova's names).

A project's readers see its quotas and limits; only admins set, delete
or see another project's; anyone may read the defaults.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (ADMIN, ANY,
                                           PROJECT_READER_OR_ADMIN)

_QS = "os_compute_api:os-quota-sets:"
_QCS = "os_compute_api:os-quota-class-sets:"

RULES: list[tuple[str, str, str]] = [
    (_QS + "show", PROJECT_READER_OR_ADMIN, "Show a project's quotas."),
    (_QS + "update", ADMIN, "Update a project's (or user's) quotas."),
    (_QS + "delete", ADMIN,
     "Revert a project's (or user's) quotas to the defaults."),
    (_QS + "defaults", ANY, "Show the default quotas."),
    (_QS + "detail", PROJECT_READER_OR_ADMIN,
     "Show a project's quotas with their usage."),
    (_QCS + "show", ADMIN, "Show a quota class's limits."),
    (_QCS + "update", ADMIN, "Update a quota class's limits."),
    ("os_compute_api:limits", ANY,
     "Show the caller's project's absolute limits and usage."),
    ("os_compute_api:limits:other_project", ADMIN,
     "Show another project's limits (tenant_id=)."),
]
