"""The personas every policy module builds its defaults from.

The personas are Nova's: an admin may do everything, a project's members
act on its resources, its readers only read them, and other projects see
nothing of them (their lookups are 404s before policy is asked). Each
persona is a named rule registered here (``RULES``), so an operator
redefines "project reader" once in policy.yaml and every rule built on it
follows; rule modules use the ``rule:`` names below, never a literal role
check. Roles are inferred as Keystone does (admin implies member implies
reader): Keystone puts the implied roles in the token, the noauth strategy
adds them itself (``api.roles``), so ``role:reader`` holds for members and
admins too.
"""

from __future__ import annotations

ADMIN = "rule:context_is_admin"
PROJECT_MANAGER_OR_ADMIN = "rule:project_manager_or_admin"
PROJECT_MEMBER_OR_ADMIN = "rule:project_member_or_admin"
PROJECT_READER_OR_ADMIN = "rule:project_reader_or_admin"
SERVICE_OR_ADMIN = "rule:service_or_admin"
ANY = "@"
NOBODY = "!"
# key pairs belong to users, not projects (Nova's default)
ADMIN_OR_USER = f"({ADMIN}) or user_id:%(user_id)s"

# Image rules' targets (api.images.target): project_id is the image's
# owner, member_id the caller when it reached a shared image it does not
# own (so as a member), visibility the image's. Glance's defaults.
IMAGE_MEMBER = "project_id:%(member_id)s"
_PUBLISHED = ("'community':%(visibility)s or 'public':%(visibility)s"
              " or 'shared':%(visibility)s")
_ANY_IMAGE = (f"project_id:%(project_id)s or {IMAGE_MEMBER} or "
              f"{_PUBLISHED}")
ADMIN_OR_READER_ON_VISIBLE_IMAGE = f"{ADMIN} or (role:reader and " \
    f"({_ANY_IMAGE}))"
ADMIN_OR_MEMBER_ON_VISIBLE_IMAGE = f"{ADMIN} or (role:member and " \
    f"({_ANY_IMAGE}))"
ADMIN_OR_IMAGE_MEMBER = f"{ADMIN} or (role:member and {IMAGE_MEMBER})"
ADMIN_OR_READER_OR_IMAGE_MEMBER = f"{ADMIN} or (role:reader and " \
    f"(project_id:%(project_id)s or {IMAGE_MEMBER}))"

_OLD = "is_admin:True or project_id:%(project_id)s"

RULES: list[tuple[str, str, str]] = [
    ("context_is_admin", "role:admin",
     "Who is an admin: decides is_admin:True and every admin-only API."),
    ("project_manager_api", "role:manager and project_id:%(project_id)s",
     "A manager of the resource's project."),
    ("project_member_api", "role:member and project_id:%(project_id)s",
     "A member of the resource's project: acts on its resources."),
    ("project_reader_api", "role:reader and project_id:%(project_id)s",
     "A reader of the resource's project: reads its resources."),
    ("service_api", "role:service", "A service user (service to service "
     "APIs)."),
    ("project_manager_or_admin",
     "rule:project_manager_api or rule:context_is_admin",
     "Project manager or admin APIs."),
    ("project_member_or_admin",
     "rule:project_member_api or rule:context_is_admin",
     "Writes on a project's resources: its members, or an admin."),
    ("project_reader_or_admin",
     "rule:project_reader_api or rule:context_is_admin",
     "Reads of a project's resources: its readers, or an admin."),
    ("service_or_admin", "rule:service_api or rule:context_is_admin",
     "Service to service APIs: a service user, or an admin."),
    # Nova's legacy names, kept so old policy files that refer to them
    # still parse; no default uses them any more.
    ("admin_api", "is_admin:True", "Legacy rule for admin APIs "
     "(deprecated; no default uses it)."),
    ("admin_or_owner", _OLD, "Legacy rule for project APIs (deprecated; "
     "no default uses it)."),
]
