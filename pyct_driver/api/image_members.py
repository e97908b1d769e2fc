"""Glance v2 image members: who a shared image is shared with.

``/v2/images/{id}/members[/{member_id}]``. The owner (or an admin) adds
and removes projects; a member accepts, rejects or resets its own
membership, which only decides whether the image is in its default list
(it may show and boot the image whatever the status). Only ``shared``
images have members. Status codes, messages and their order follow
Glance's controller with its default (new) policies: an image the caller
may not see is a 404, acting on a visible image one may not change a 403,
a duplicate member a 409.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import images
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import image_members as db_members
from pyct_driver.db.image_access import MEMBER_STATUSES


def _view(member: dict) -> dict:
    out = {k: member[k] for k in ("member_id", "image_id", "status")}
    out.update(created_at=images.time_text(member["created_at"]),
               updated_at=images.time_text(member["updated_at"]),
               schema="/v2/schemas/member")
    return out


def _shared(api: Api, req: ApiRequest, image_id: str, refusal: str
            ) -> dict:
    """The visible image, which must be shared: else ``refusal`` (a 403)."""
    image = images.visible(api, req, image_id,
                           f"Image {image_id} not found.")
    if image["visibility"] != "shared":
        raise exception.Forbidden(refusal)
    return image


def _body(req: ApiRequest, key: str, missing: str, wrong: str) -> str:
    try:
        body = req.json_body()
    except exception.Invalid as err:
        if not req.raw.body:
            raise exception.Invalid("Body expected in request.") from err
        raise exception.Invalid("Malformed JSON in request body.") from err
    if not isinstance(body, dict):
        raise exception.Invalid(wrong)
    if key not in body:
        raise exception.Invalid(missing)
    return body[key]


def _member(api: Api, req: ApiRequest, image: dict, member_id: str
            ) -> dict:
    """A member row the caller may read (the owner reads all, a member
    only its own), else a 404."""
    images.authorize(api, req, "get_member", image)
    return db_members.member_get(api.db, image, member_id,
                                 images.viewer(req))


def index(api: Api, req: ApiRequest, image_id: str) -> Result:
    image = _shared(api, req, image_id,
                    f"Not allowed to list members for image {image_id}: "
                    "Only shared images have members.")
    images.authorize(api, req, "get_members", image)
    rows = db_members.member_list(api.db, image, images.viewer(req))
    return Result(200, {"members": [_view(m) for m in rows],
                        "schema": "/v2/schemas/members"})


def show(api: Api, req: ApiRequest, image_id: str, member_id: str
         ) -> Result:
    image = images.visible(api, req, image_id,
                           f"Image {image_id} not found.")
    if image["visibility"] != "shared":
        # Glance hides even that it exists as a 404 here
        raise exception.NotFound("Only shared images have members.")
    return Result(200, _view(_member(api, req, image, member_id)))


def create(api: Api, req: ApiRequest, image_id: str) -> Result:
    member = _body(req, "member", "Member to be added not specified",
                   'Expected a member in the form: {"member": "image_id"}')
    if not member:
        raise exception.Invalid("Member can't be empty")
    if not isinstance(member, str) or len(member) > 255:
        raise exception.Invalid(f"Member {member!r} is not a project id.")
    image = _shared(api, req, image_id,
                    f"Not allowed to create members for image {image_id}.")
    images.authorize(api, req, "add_member", image)
    return Result(200, _view(db_members.member_create(
        api.db, image_id, member, api.settings.image_member_quota)))


def update(api: Api, req: ApiRequest, image_id: str, member_id: str
           ) -> Result:
    status = _body(req, "status", "Status not specified",
                   'Expected a status in the form: {"status": "status"}')
    image = _shared(api, req, image_id,
                    f"Not allowed to update members for image {image_id}.")
    _member(api, req, image, member_id)
    images.authorize(api, req, "modify_member", image)
    if status not in MEMBER_STATUSES:
        raise exception.Invalid('Incorrect request: Status must be '
                                '"pending", "accepted" or "rejected".')
    return Result(200, _view(db_members.member_set_status(
        api.db, image_id, member_id, status)))


def delete(api: Api, req: ApiRequest, image_id: str, member_id: str
           ) -> Result:
    image = _shared(api, req, image_id,
                    f"Not allowed to delete members for image {image_id}.")
    _member(api, req, image, member_id)
    images.authorize(api, req, "delete_member", image)
    db_members.member_delete(api.db, image_id, member_id)
    return Result(204)
