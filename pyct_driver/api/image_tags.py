"""Glance v2 image tags: ``PUT`` and ``DELETE /v2/images/{id}/tags/{tag}``.

A tag is a string of at most 255 characters; adding one twice is no
change, an image holds at most 128 (Glance's ``image_tag_quota``: 413
past it), removing one it does not have is a 404. Both take Glance's
``modify_image``; an image the caller may not see is a 404 first.
"""

from __future__ import annotations

from pyct_driver import exception
from pyct_driver.api import images
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import image_query

_MAX_TAGS = 128


def _image(api: Api, req: ApiRequest, image_id: str) -> dict:
    image = images.visible(api, req, image_id)
    images.authorize(api, req, "modify_image", image)
    return image


def add(api: Api, req: ApiRequest, image_id: str, tag: str) -> Result:
    image = _image(api, req, image_id)
    if len(tag) > 255:
        raise exception.Invalid("Provided object does not match schema "
                                f"'image': '{tag}' is too long")
    tags = set(image["tags"]) | {tag}
    if len(tags) > _MAX_TAGS:
        raise exception.TooLarge("Maximum number of tags exceeded "
                                 f"({_MAX_TAGS}).")
    image_query.set_tags(api.db, image_id, sorted(tags))
    return Result(204)


def delete(api: Api, req: ApiRequest, image_id: str, tag: str) -> Result:
    image = _image(api, req, image_id)
    if tag not in image["tags"]:
        raise exception.NotFound(f"Tag {tag} not found")
    image_query.set_tags(api.db, image_id,
                         [t for t in image["tags"] if t != tag])
    return Result(204)
