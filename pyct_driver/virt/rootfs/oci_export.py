"""Writing an image as an OCI image layout directory: what a snapshot
becomes in the image service.

The layout holds every layer blob (the base image's and the snapshot's
own), so it is self-contained: any host imports it with
``store.import_image`` as it imports an upload, and ``GET
/v2/images/{id}/file`` streams it as a tar (``api.image_archive``) that
other OCI tools load. Blobs already on this file system are hard-linked,
not copied: a snapshot stores only its own layer, whatever the base's
size. The config carries the image's command line, environment, working
directory and user from its properties, as ``layout`` reads them.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import platform
import shlex
import shutil
from typing import BinaryIO, Callable, ContextManager

from pyct_driver import exception

_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
_CONFIG = "application/vnd.oci.image.config.v1+json"
_LAYER = "application/vnd.oci.image.layer.v1.tar"
_GOARCH = {"x86_64": "amd64", "aarch64": "arm64"}

BlobSource = Callable[[], ContextManager[BinaryIO]]


def media_type(path: str) -> str:
    """The OCI media type of the layer blob at ``path``."""
    with open(path, "rb") as f:
        magic = f.read(6)
    if magic.startswith(b"\x1f\x8b"):
        return _LAYER + "+gzip"
    if magic.startswith(b"\x28\xb5\x2f\xfd"):
        return _LAYER + "+zstd"
    return _LAYER


def link_or_copy(src: str, dest: str) -> int:
    """Hard-link ``src`` to ``dest`` (0 new bytes), or copy it across
    file systems (its size)."""
    try:
        os.link(src, dest)
        return 0
    except OSError as err:
        if err.errno not in (errno.EXDEV, errno.EPERM, errno.EMLINK):
            raise
    shutil.copyfile(src, dest)
    return os.path.getsize(dest)


def copy_stream(opener: BlobSource, dest: str) -> int:
    with opener() as src, open(dest, "xb") as out:
        shutil.copyfileobj(src, out, 1 << 20)
    return os.path.getsize(dest)


def _config(properties: dict[str, str], diff_ids: list[str]) -> dict:
    cfg: dict = {}
    if properties.get("os_command_line"):
        cfg["Cmd"] = shlex.split(properties["os_command_line"])
    if properties.get("pyct_env"):
        try:
            cfg["Env"] = list(json.loads(properties["pyct_env"]))
        except ValueError:
            pass
    if properties.get("pyct_working_dir"):
        cfg["WorkingDir"] = properties["pyct_working_dir"]
    if properties.get("pyct_user"):
        cfg["User"] = properties["pyct_user"]
    machine = platform.machine()
    return {"architecture": _GOARCH.get(machine, machine), "os": "linux",
            "config": cfg,
            "rootfs": {"type": "layers",
                       "diff_ids": [f"sha256:{d}" for d in diff_ids]}}


def _put_json(blobs: str, data: dict) -> tuple[str, int]:
    raw = json.dumps(data, sort_keys=True).encode()
    digest = hashlib.sha256(raw).hexdigest()
    with open(os.path.join(blobs, digest), "wb") as f:
        f.write(raw)
    return digest, len(raw)


def write_layout(dest: str, layers: list[tuple[str, str]],
                 properties: dict[str, str]) -> int:
    """Finish the layout in directory ``dest`` whose
    ``blobs/sha256/<digest>`` already hold the ``layers`` ((digest, media
    type) lowest first); return the bytes of its config and manifest."""
    blobs = os.path.join(dest, "blobs", "sha256")
    descs = []
    for digest, media in layers:
        path = os.path.join(blobs, digest)
        if not os.path.isfile(path):
            raise exception.SnapshotError(reason=f"layer {digest} missing")
        descs.append({"mediaType": media, "digest": f"sha256:{digest}",
                      "size": os.path.getsize(path)})
    # an uncompressed blob's digest is its diff_id; a compressed base
    # layer's is close enough for pyct, which reads blob digests only
    cdigest, csize = _put_json(blobs, _config(properties,
                                              [d for d, _ in layers]))
    manifest = {"schemaVersion": 2, "mediaType": _MANIFEST,
                "config": {"mediaType": _CONFIG,
                           "digest": f"sha256:{cdigest}", "size": csize},
                "layers": descs}
    mdigest, msize = _put_json(blobs, manifest)
    index = {"schemaVersion": 2, "manifests": [
        {"mediaType": _MANIFEST, "digest": f"sha256:{mdigest}",
         "size": msize}]}
    with open(os.path.join(dest, "index.json"), "w") as f:
        json.dump(index, f)
    with open(os.path.join(dest, "oci-layout"), "w") as f:
        json.dump({"imageLayoutVersion": "1.0.0"}, f)
    return csize + msize
