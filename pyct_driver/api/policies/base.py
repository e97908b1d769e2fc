"""Check strings every policy module builds its defaults from.

The personas are Nova's: an admin may do everything, a project's members
act on its resources, its readers only read them, and other projects see
nothing of them. Rule modules use these names (never a literal check
string) so the meaning of a persona is decided in one place.
"""

from __future__ import annotations

ADMIN = "role:admin"
ADMIN_OR_OWNER = "is_admin:True or project_id:%(project_id)s"
ANY = "@"
ADMIN_OR_USER = "rule:admin_api or user_id:%(user_id)s"
# Image rules' targets (api.images.target): project_id is the image's
# owner, member_id the caller when it reached a shared image it does not
# own (so as a member), visibility the image's.
IMAGE_MEMBER = "project_id:%(member_id)s"
ADMIN_OWNER_OR_MEMBER = f"{ADMIN_OR_OWNER} or {IMAGE_MEMBER}"

# Personas (issue #10 makes them role-aware): for now both mean
# "admin or owner", as every rule did before.
PROJECT_READER_OR_ADMIN = ADMIN_OR_OWNER
PROJECT_MEMBER_OR_ADMIN = ADMIN_OR_OWNER
