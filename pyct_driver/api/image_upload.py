"""Glance v2 image upload: ``PUT /v2/images/{id}/file``.

The body is streamed, never held in memory: 1 MiB at a time into a
staging file beside the image files (``[DEFAULT] state_path``/images),
counting bytes against ``[image] max_image_size_mb`` (413 past it) and
hashing md5 (Glance's ``checksum``) and sha512 (``os_hash_value``) on the
way. A checksum the client declared (``Content-MD5``, hex or base64, or
the openstacksdk's ``owner_specified.openstack.md5``/``sha256``
properties) must match. The data is then handed to the virt driver's
image store — the same content-addressed store and hostile-input-hardened
unpacker ``pyct-manage image import`` uses — and only an image it
accepted becomes active. The status goes queued → saving → active; a
refused upload leaves neither staging file nor layer: too large or a
wrong checksum puts the image back to queued (the client may retry, as
with Glance), a hostile or broken archive kills it.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import os
import threading
from typing import Any

from pyct_driver import exception
from pyct_driver.api import image_create, images
from pyct_driver.api.request import ApiRequest, Result
from pyct_driver.api.state import Api
from pyct_driver.db import image_query

_CHUNK = 1 << 20
_SDK_HASHES = (("owner_specified.openstack.md5", "md5"),
               ("owner_specified.openstack.sha256", "sha256"))


class DriverImages:
    """The virt driver's image import and delete, loaded on first use (an
    API that never sees an upload never builds a driver)."""

    def __init__(self, conf: Any) -> None:
        self._conf = conf
        self._driver: Any = None
        self._lock = threading.Lock()

    def _get(self) -> Any:
        with self._lock:
            if self._driver is None:
                from pyct_driver import plugins  # a driver is heavy
                self._driver = plugins.load_virt_driver(
                    self._conf.virt_driver, self._conf)
            return self._driver

    def import_image(self, image_id: str, path: str) -> Any:
        return self._get().import_image(image_id, path)

    def delete_image(self, image_id: str) -> None:
        self._get().delete_image(image_id)


def _declared(req: ApiRequest, image: dict) -> dict[str, str]:
    """The digests the client says the data has: algorithm -> hex."""
    out = {}
    header = (req.raw.headers.get("Content-MD5") or "").strip()
    if header:
        if len(header) == 32:
            out["md5"] = header.lower()
        else:
            try:
                out["md5"] = base64.b64decode(header, validate=True).hex()
            except (binascii.Error, ValueError) as err:
                raise exception.Invalid("Content-MD5 is neither hex nor "
                                        "base64.") from err
    for key, algo in _SDK_HASHES:
        value = (image["properties"] or {}).get(key)
        if value:
            out[algo] = value.lower()
    return out


def _receive(req: ApiRequest, dest: str, limit: int,
             declared: dict[str, str]) -> dict:
    """Stream the body into ``dest``; its size and digests (md5 and
    sha512 always, sha256 only when the client declared one)."""
    digests = {"md5": hashlib.md5(usedforsecurity=False),
               "sha512": hashlib.sha512()}
    if "sha256" in declared:
        digests["sha256"] = hashlib.sha256()
    size = 0
    source = req.raw.body_file
    fd = os.open(dest, os.O_WRONLY | os.O_CREAT | os.O_TRUNC |
                 os.O_NOFOLLOW | os.O_CLOEXEC, 0o600)
    with os.fdopen(fd, "wb") as out:
        while True:
            try:
                chunk = source.read(_CHUNK)
            except OSError as err:  # webob's DisconnectionError among them
                raise exception.Invalid("The image data ended before its "
                                        f"Content-Length: {err}") from err
            if not chunk:
                break
            size += len(chunk)
            if size > limit:
                raise exception.TooLarge(
                    f"The incoming image is too large: more than {limit} "
                    "bytes ([image] max_image_size_mb)")
            for digest in digests.values():
                digest.update(chunk)
            try:
                out.write(chunk)
            except OSError as err:
                raise exception.TooLarge("Image storage media is full: "
                                         f"{err}") from err
    return {"size": size, **{k: d.hexdigest() for k, d in digests.items()}}


def _start(api: Api, req: ApiRequest, image_id: str) -> dict:
    """Checks before any byte is read; the image, now saving."""
    image = images.visible(api, req, image_id)
    images.authorize(api, req, "upload_image", image)
    if req.raw.content_type != "application/octet-stream":
        raise exception.UnsupportedMediaType(
            "Image data must be sent as application/octet-stream",
            accepted=("application/octet-stream",))
    if not image["disk_format"] or not image["container_format"]:
        raise exception.Invalid("Properties disk_format, container_format "
                                "must be set prior to saving data.")
    image_create.check_formats(api, image)
    length = req.raw.content_length
    if length is not None and length > api.settings.max_image_bytes:
        raise exception.TooLarge(
            f"The incoming image is too large: {length} bytes, more than "
            f"{api.settings.max_image_bytes} ([image] max_image_size_mb)")
    if image["status"] != "queued":
        raise exception.Conflict(f"Image status transition from "
                                 f"{image['status']} to saving is not "
                                 "allowed")
    return image_query.set_status(api.db, image_id, ("queued",),
                                  {"status": "saving"})


def upload(api: Api, req: ApiRequest, image_id: str) -> Result:
    image = _start(api, req, image_id)
    os.makedirs(api.settings.image_dir, mode=0o700, exist_ok=True)
    staging = os.path.join(api.settings.image_dir, f".staging-{image_id}")
    final = os.path.join(api.settings.image_dir, image_id)
    imported = False
    try:
        declared = _declared(req, image)
        got = _receive(req, staging, api.settings.max_image_bytes, declared)
        for algo, value in declared.items():
            if got[algo] != value:
                raise exception.Invalid(
                    f"Image data does not match the declared {algo} "
                    f"checksum {value} (got {got[algo]}).")
        imported = True
        api.images.import_image(image_id, staging)
        os.rename(staging, final)
        image_query.set_status(api.db, image_id, ("saving",), {
            "status": "active", "location": final, "size": got["size"],
            "checksum": got["md5"], "os_hash_algo": "sha512",
            "os_hash_value": got["sha512"]})
    except BaseException as err:
        _undo(api, image_id, (staging, final), imported, err)
        if isinstance(err, exception.ImageNotFound):
            raise exception.Gone(f"Image {image_id} could not be found "
                                 "after upload. The image may have been "
                                 "deleted during the upload.") from err
        raise
    return Result(204)


def _undo(api: Api, image_id: str, paths: tuple[str, ...], imported: bool,
          err: BaseException) -> None:
    """Leave nothing of a refused upload; say so in the image's status."""
    for path in paths:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(path)
    if imported:
        with contextlib.suppress(Exception):  # the import's own error wins
            api.images.delete_image(image_id)
    # a bad archive is dead; a size or checksum refusal may be retried
    status = ("killed" if isinstance(err, exception.InvalidImage) or
              not isinstance(err, exception.PyctError) else "queued")
    with contextlib.suppress(exception.ImageNotFound, exception.Conflict):
        image_query.set_status(api.db, image_id, ("saving",),
                               {"status": status})
