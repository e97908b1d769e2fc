"""Default rules of the compute API (Nova's rule names and defaults).

A project's readers read its servers, their actions and interfaces and the
flavors' extra specs; its members create, change and delete servers and read
their console (Nova keeps console output to members); key pairs belong to their
user. Admin-only by default: flavor create/delete and extra-spec writes,
listing all tenants, the extended server attributes (host names), host status
and the events of instance actions.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (ADMIN, ADMIN_OR_USER,
                                           PROJECT_MEMBER_OR_ADMIN,
                                           PROJECT_READER_OR_ADMIN)

_READ = PROJECT_READER_OR_ADMIN
_ACT = PROJECT_MEMBER_OR_ADMIN

RULES: list[tuple[str, str, str]] = [
    ("os_compute_api:os-flavor-manage:create", ADMIN, "Create a flavor."),
    ("os_compute_api:os-flavor-manage:delete", ADMIN, "Delete a flavor."),
    ("os_compute_api:os-flavor-extra-specs:index", _READ,
     "List a flavor's extra specs."),
    ("os_compute_api:os-flavor-extra-specs:show", _READ,
     "Show one extra spec of a flavor."),
    ("os_compute_api:os-flavor-extra-specs:create", ADMIN,
     "Create or update extra specs of a flavor."),
    ("os_compute_api:os-flavor-extra-specs:update", ADMIN,
     "Update one extra spec of a flavor."),
    ("os_compute_api:os-flavor-extra-specs:delete", ADMIN,
     "Delete one extra spec of a flavor."),
    ("os_compute_api:os-flavor-access", ADMIN,
     "List the projects a private flavor is given to."),
    ("os_compute_api:os-flavor-access:add_tenant_access", ADMIN,
     "Give a project a private flavor (addTenantAccess)."),
    ("os_compute_api:os-flavor-access:remove_tenant_access", ADMIN,
     "Take a private flavor from a project (removeTenantAccess)."),
    ("os_compute_api:servers:index", _READ, "List servers."),
    ("os_compute_api:servers:detail", _READ,
     "List servers with details."),
    ("os_compute_api:servers:index:get_all_tenants", ADMIN,
     "List servers of all projects (all_tenants=1)."),
    ("os_compute_api:servers:detail:get_all_tenants", ADMIN,
     "List servers of all projects with details."),
    ("os_compute_api:servers:allow_all_filters", ADMIN,
     "Use every server list filter."),
    ("os_compute_api:servers:show", _READ, "Show a server."),
    ("os_compute_api:servers:show:host_status", ADMIN,
     "Show the host status of a server (2.16)."),
    ("os_compute_api:servers:create", _ACT, "Create servers."),
    ("os_compute_api:servers:create:forced_host", ADMIN,
     "Pick the host with availability_zone 'zone:host'."),
    ("os_compute_api:servers:update", _ACT, "Update a server."),
    ("os_compute_api:servers:delete", _ACT, "Delete a server."),
    ("os_compute_api:servers:reboot", _ACT, "Reboot a server."),
    ("os_compute_api:servers:start", _ACT, "Start a server."),
    ("os_compute_api:servers:stop", _ACT, "Stop a server."),
    ("os_compute_api:os-pause-server:pause", _ACT,
     "Pause a server."),
    ("os_compute_api:os-pause-server:unpause", _ACT,
     "Unpause a server."),
    ("os_compute_api:os-console-output", _ACT,
     "Show a server's console output."),
    ("os_compute_api:os-extended-server-attributes", ADMIN,
     "Show OS-EXT-SRV-ATTR:* attributes (host, instance name...)."),
    ("os_compute_api:os-instance-actions:list", _READ,
     "List a server's actions."),
    ("os_compute_api:os-instance-actions:show", _READ,
     "Show one action of a server."),
    ("os_compute_api:os-instance-actions:events", ADMIN,
     "Show the events of an action."),
    ("os_compute_api:os-keypairs:index", ADMIN_OR_USER,
     "List a user's key pairs."),
    ("os_compute_api:os-keypairs:show", ADMIN_OR_USER,
     "Show a key pair."),
    ("os_compute_api:os-keypairs:create", ADMIN_OR_USER,
     "Create or import a key pair."),
    ("os_compute_api:os-keypairs:delete", ADMIN_OR_USER,
     "Delete a key pair."),
    ("os_compute_api:os-attach-interfaces:list", _READ,
     "List a server's interfaces."),
    ("os_compute_api:os-attach-interfaces:show", _READ,
     "Show one interface of a server."),
    ("os_compute_api:os-attach-interfaces:create", _ACT,
     "Attach an interface to a server."),
    ("os_compute_api:os-attach-interfaces:delete", _ACT,
     "Detach an interface from a server."),
]
