"""Default rules of the image API (Glance's rule names and defaults).

The targets (``api.images.target``): ``project_id`` is the image's owner,
``member_id`` the caller when it reached a shared image it does not own,
``visibility`` the image's. Readers see and list images; members of the
owning project change them and their member lists; a project an image is
shared with (as member) accepts or rejects it and downloads it. Visibility
itself is enforced whatever these say: an image a caller may not see is a
404 before any rule is asked.
"""

from __future__ import annotations

from pyct_driver.api.policies.base import (
    ADMIN, ADMIN_OR_IMAGE_MEMBER, ADMIN_OR_MEMBER_ON_VISIBLE_IMAGE,
    ADMIN_OR_READER_ON_VISIBLE_IMAGE, ADMIN_OR_READER_OR_IMAGE_MEMBER,
    PROJECT_MEMBER_OR_ADMIN, PROJECT_READER_OR_ADMIN)

RULES: list[tuple[str, str, str]] = [
    ("get_images", PROJECT_READER_OR_ADMIN,
     "List images (target: the caller's project)."),
    ("get_image", ADMIN_OR_READER_ON_VISIBLE_IMAGE,
     "Show an image; an image this refuses is a 404, and left out of "
     "lists."),
    ("download_image", ADMIN_OR_MEMBER_ON_VISIBLE_IMAGE,
     "Download an image's data."),
    ("modify_image", PROJECT_MEMBER_OR_ADMIN, "Update an image (PATCH)."),
    ("add_image", PROJECT_MEMBER_OR_ADMIN,
     "Create an image (target: the project that will own it)."),
    ("upload_image", PROJECT_MEMBER_OR_ADMIN,
     "Upload an image's data (PUT .../file)."),
    ("delete_image", PROJECT_MEMBER_OR_ADMIN, "Delete an image."),
    ("deactivate", PROJECT_MEMBER_OR_ADMIN,
     "Deactivate an image: only admins may then download it, nobody "
     "boots it."),
    ("reactivate", PROJECT_MEMBER_OR_ADMIN, "Reactivate an image."),
    ("publicize_image", ADMIN, "Make an image public."),
    ("communitize_image", PROJECT_MEMBER_OR_ADMIN,
     "Make an image community."),
    ("get_members", ADMIN_OR_READER_OR_IMAGE_MEMBER,
     "List an image's members."),
    ("get_member", ADMIN_OR_READER_OR_IMAGE_MEMBER,
     "Show one member of an image."),
    ("add_member", PROJECT_MEMBER_OR_ADMIN, "Share an image with a "
     "project."),
    ("delete_member", PROJECT_MEMBER_OR_ADMIN, "Remove a project from an "
     "image's members."),
    ("modify_member", ADMIN_OR_IMAGE_MEMBER,
     "Accept, reject or reset a membership (the member itself)."),
]
