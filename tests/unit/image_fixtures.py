"""Shared helpers of the image API tests: a harness whose uploads go into
a real ``ImageStore`` (the unpacker and its hostile-archive rules), and
tarballs good and bad."""

from __future__ import annotations

import gzip
import os
import tarfile

from pyct_driver.api import app as api_app
from pyct_driver.virt.rootfs.store import ImageStore
from tests.fixtures.rootfs_images import layer_tar
from tests.unit.test_api_app import Harness

MEMBER, OTHER, READER, ADMIN = ("alice:p1", "bob:p2", "reader:p1",
                                "admin:adminproj")
OCTETS = {"Content-Type": "application/octet-stream"}


class StoreHarness(Harness):
    """``Harness`` with uploads imported by a real image store."""

    def __init__(self, **overrides) -> None:
        super().__init__(**overrides)
        self.store = ImageStore(os.path.join(self.state_dir, "store"),
                                max_bytes=1 << 30, max_files=10000)
        self.app = api_app.create_app(self.conf, self.db, self.compute,
                                      images=self.store)
        self.image_dir = os.path.join(self.state_dir, "images")

    def layers(self) -> list[str]:
        return sorted(n for n in os.listdir(
            os.path.join(self.store.base_dir, "layers"))
            if not n.startswith("."))

    def leftovers(self) -> list[str]:
        """Files in the image directory and partial layers."""
        files = (os.listdir(self.image_dir)
                 if os.path.isdir(self.image_dir) else [])
        return sorted(files) + [n for n in os.listdir(
            os.path.join(self.store.base_dir, "layers"))
            if n.startswith(".")]

    def create(self, token: str = MEMBER, **body) -> dict:
        body = {"name": "img", "disk_format": "raw",
                "container_format": "bare", **body}
        resp = self.request("POST", "/image/v2/images", body, token=token)
        assert resp.status_int == 201, resp.text
        return resp.json

    def upload(self, image_id: str, data: bytes, token: str = MEMBER,
               headers: dict | None = None):
        return self.request("PUT", f"/image/v2/images/{image_id}/file",
                            raw=data, token=token,
                            headers={**OCTETS, **(headers or {})})

    def show(self, image_id: str, token: str = ADMIN) -> dict:
        return self.request("GET", f"/image/v2/images/{image_id}",
                            token=token).json


def tarball(members: list[tuple[str, bytes]] | None = None,
            compress: bool = True, extra: list[tarfile.TarInfo] = ()
            ) -> bytes:
    """A rootfs tarball: ``members`` as regular files (a busybox-like
    tree by default) plus ``extra`` raw headers."""
    raw = layer_tar(dict(members or [("etc/hostname", b"up\n"),
                                     ("hello.txt", b"hello upload\n")]),
                    extra)
    return gzip.compress(raw) if compress else raw
