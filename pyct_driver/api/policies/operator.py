"""Default rules of the operator APIs (Nova's rule names).

Services, hypervisors, aggregates, migrations, every project's usage and
the availability zones' hosts are the operator's, and so is
evacuating a dead host's servers; any authenticated
caller lists the zones, and a project's readers see its own usage.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (ADMIN, ANY,
                                           PROJECT_READER_OR_ADMIN)

_SVC = "os_compute_api:os-services:"
_HYP = "os_compute_api:os-hypervisors:"
_AGG = "os_compute_api:os-aggregates:"

RULES: list[tuple[str, str, str]] = [
    (_SVC + "list", ADMIN, "List compute services."),
    (_SVC + "update", ADMIN,
     "Enable, disable or force down a compute service."),
    (_SVC + "delete", ADMIN, "Delete a compute service."),
    (_HYP + "list", ADMIN, "List hypervisors."),
    (_HYP + "list-detail", ADMIN, "List hypervisors with details."),
    (_HYP + "show", ADMIN, "Show a hypervisor."),
    (_HYP + "statistics", ADMIN,
     "Show the hypervisors' summed statistics (before 2.88)."),
    (_HYP + "uptime", ADMIN, "Show a hypervisor's uptime (before 2.88)."),
    (_HYP + "search", ADMIN,
     "Search hypervisors by host name pattern (before 2.53)."),
    (_HYP + "servers", ADMIN,
     "List the servers of matching hypervisors (before 2.53)."),
    ("os_compute_api:os-availability-zone:list", ANY,
     "List availability zones."),
    ("os_compute_api:os-availability-zone:detail", ADMIN,
     "List availability zones with their hosts and services."),
    (_AGG + "index", ADMIN, "List host aggregates."),
    (_AGG + "create", ADMIN, "Create a host aggregate."),
    (_AGG + "show", ADMIN, "Show a host aggregate."),
    (_AGG + "update", ADMIN, "Rename a host aggregate or change its "
     "availability zone."),
    (_AGG + "delete", ADMIN, "Delete a host aggregate."),
    (_AGG + "add_host", ADMIN, "Add a host to an aggregate."),
    (_AGG + "remove_host", ADMIN, "Remove a host from an aggregate."),
    (_AGG + "set_metadata", ADMIN, "Set an aggregate's metadata."),
    ("os_compute_api:os-simple-tenant-usage:list", ADMIN,
     "Show every project's usage."),
    ("os_compute_api:os-simple-tenant-usage:show", PROJECT_READER_OR_ADMIN,
     "Show one project's usage."),
    ("os_compute_api:os-migrations:index", ADMIN, "List migrations."),
    ("os_compute_api:os-evacuate", ADMIN,
     "Rebuild a server of a host that is down on another host."),
]
