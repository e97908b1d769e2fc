"""Default rules of the image API (Glance's rule names and defaults).

The targets (``api.images.target``): ``project_id`` is the image's owner,
``member_id`` the caller when it reached a shared image it does not own,
``visibility`` the image's.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (ADMIN, ADMIN_OR_OWNER,
                                           ADMIN_OWNER_OR_MEMBER, ANY,
                                           IMAGE_MEMBER)

RULES: list[tuple[str, str, str]] = [
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


