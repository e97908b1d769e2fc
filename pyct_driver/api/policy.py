"""API policy: rule defaults registered in code, checked with oslo.policy.

Rule names are Nova's (Glance's for the image routes) so an operator's
policy file reads the same. Admin-only by default: flavor create/delete and
extra-spec writes, listing all tenants, the extended server attributes
(host names), host status, the events of instance actions and making an
image public. ``list_rules`` feeds
``oslopolicy-sample-generator`` (namespace ``pyct``).
"""

from __future__ import annotations

from oslo_config import cfg
from oslo_policy import policy as oslo_policy

from pyct_driver import exception
from pyct_driver.context import RequestContext

ADMIN = "role:admin"
ADMIN_OR_OWNER = "is_admin:True or project_id:%(project_id)s"
ANY = "@"
ADMIN_OR_USER = "rule:admin_api or user_id:%(user_id)s"
# Image rules' targets (api.images.target): project_id is the image's
# owner, member_id the caller when it reached a shared image it does not
# own (so as a member), visibility the image's.
IMAGE_MEMBER = "project_id:%(member_id)s"
ADMIN_OWNER_OR_MEMBER = f"{ADMIN_OR_OWNER} or {IMAGE_MEMBER}"

_RULES: list[tuple[str, str, str]] = [
    ("admin_api", ADMIN, "Default rule for administrative APIs."),
    ("admin_or_owner", ADMIN_OR_OWNER,
     "Default rule for most non-admin APIs."),
    ("os_compute_api:os-flavor-manage:create", ADMIN, "Create a flavor."),
    ("os_compute_api:os-flavor-manage:delete", ADMIN, "Delete a flavor."),
    ("os_compute_api:os-flavor-extra-specs:index", ANY,
     "List a flavor's extra specs."),
    ("os_compute_api:os-flavor-extra-specs:show", ANY,
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
    ("os_compute_api:servers:index", ADMIN_OR_OWNER, "List servers."),
    ("os_compute_api:servers:detail", ADMIN_OR_OWNER,
     "List servers with details."),
    ("os_compute_api:servers:index:get_all_tenants", ADMIN,
     "List servers of all projects (all_tenants=1)."),
    ("os_compute_api:servers:detail:get_all_tenants", ADMIN,
     "List servers of all projects with details."),
    ("os_compute_api:servers:allow_all_filters", ADMIN,
     "Use every server list filter."),
    ("os_compute_api:servers:show", ADMIN_OR_OWNER, "Show a server."),
    ("os_compute_api:servers:show:host_status", ADMIN,
     "Show the host status of a server (2.16)."),
    ("os_compute_api:servers:create", ADMIN_OR_OWNER, "Create servers."),
    ("os_compute_api:servers:create:forced_host", ADMIN,
     "Pick the host with availability_zone 'zone:host'."),
    ("os_compute_api:servers:update", ADMIN_OR_OWNER, "Update a server."),
    ("os_compute_api:servers:delete", ADMIN_OR_OWNER, "Delete a server."),
    ("os_compute_api:servers:reboot", ADMIN_OR_OWNER, "Reboot a server."),
    ("os_compute_api:servers:start", ADMIN_OR_OWNER, "Start a server."),
    ("os_compute_api:servers:stop", ADMIN_OR_OWNER, "Stop a server."),
    ("os_compute_api:os-pause-server:pause", ADMIN_OR_OWNER,
     "Pause a server."),
    ("os_compute_api:os-pause-server:unpause", ADMIN_OR_OWNER,
     "Unpause a server."),
    ("os_compute_api:os-console-output", ADMIN_OR_OWNER,
     "Show a server's console output."),
    ("os_compute_api:os-extended-server-attributes", ADMIN,
     "Show OS-EXT-SRV-ATTR:* attributes (host, instance name...)."),
    ("os_compute_api:os-instance-actions:list", ADMIN_OR_OWNER,
     "List a server's actions."),
    ("os_compute_api:os-instance-actions:show", ADMIN_OR_OWNER,
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
    ("os_compute_api:os-attach-interfaces:list", ADMIN_OR_OWNER,
     "List a server's interfaces."),
    ("os_compute_api:os-attach-interfaces:show", ADMIN_OR_OWNER,
     "Show one interface of a server."),
    ("os_compute_api:os-attach-interfaces:create", ADMIN_OR_OWNER,
     "Attach an interface to a server."),
    ("os_compute_api:os-attach-interfaces:delete", ADMIN_OR_OWNER,
     "Detach an interface from a server."),
    ("os_compute_api:images:index", ANY, "List images (Glance API)."),
    ("os_compute_api:images:show", ANY, "Show an image (Glance API)."),
    # Glance's own rule names and defaults (without its reader/member role
    # split); visibility itself is enforced whatever these say.
    ("download_image", f"{ADMIN_OWNER_OR_MEMBER} or 'public':%(visibility)s"
     " or 'community':%(visibility)s", "Download an image's data."),
    ("modify_image", ADMIN_OR_OWNER, "Update an image (PATCH)."),
    ("publicize_image", ADMIN, "Make an image public."),
    ("communitize_image", ADMIN_OR_OWNER, "Make an image community."),
    ("get_members", ADMIN_OWNER_OR_MEMBER, "List an image's members."),
    ("get_member", ADMIN_OWNER_OR_MEMBER, "Show one member of an image."),
    ("add_member", ADMIN_OR_OWNER, "Share an image with a project."),
    ("delete_member", ADMIN_OR_OWNER, "Remove a project from an image's "
     "members."),
    ("modify_member", f"is_admin:True or {IMAGE_MEMBER}",
     "Accept, reject or reset a membership (the member itself)."),
]


def list_rules() -> list[oslo_policy.RuleDefault]:
    """Every rule with its default, for the sample generator."""
    return [oslo_policy.RuleDefault(name, check, description=desc)
            for name, check, desc in _RULES]


class Policy:
    """An enforcer with pyct's defaults registered."""

    def __init__(self, conf: cfg.ConfigOpts) -> None:
        self._enforcer = oslo_policy.Enforcer(conf)
        self._enforcer.register_defaults(list_rules())

    def check(self, ctxt: RequestContext, rule: str,
              target: dict | None = None) -> bool:
        target = target if target is not None else {
            "project_id": ctxt.project_id}
        creds = dict(ctxt.to_policy_values())
        creds["is_admin"] = bool(ctxt.is_admin)
        return bool(self._enforcer.enforce(rule, target, creds))

    def authorize(self, ctxt: RequestContext, rule: str,
                  target: dict | None = None) -> None:
        if not self.check(ctxt, rule, target):
            raise exception.Forbidden(action=rule)
