"""Image upload through the Glance API: a 100 MB rootfs tarball, 10 times.

Usage (root): ``.venv/bin/python tools/bench/image_upload.py [--runs 10]
[--size-mb 100] [--json]``

Starts a real ``pyct-api`` (SQLite, the container driver's image store
and unpacker, ``tests/services.Deployment``) and, per run, over raw HTTP
(token ``demo:demo``): POST /image/v2/images (raw/bare), then PUT
.../file streaming the tarball from disk in 1 MiB writes, timed until the
204 (the server has hashed md5 and sha512, unpacked the layer and made the
image active); then DELETE, so every run unpacks afresh instead of
re-hashing a cached layer. The tarball holds 100 files of random bytes
(incompressible, so the bytes on the wire are the size asked for).
Reported: create, upload (PUT to 204), and the upload's MB/s. At exit the
service is stopped and the temp dir removed.
"""

from __future__ import annotations

import http.client
import io
import json
import os
import shutil
import sys
import tarfile
import tempfile
import time

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.services import Deployment  # noqa: E402

_HEADERS = {"X-Auth-Token": "demo:demo"}


def make_tarball(path: str, size_mb: int) -> int:
    per_file = (size_mb << 20) // 100
    with tarfile.open(path, "w") as tar:
        for n in range(100):
            info = tarfile.TarInfo(f"data/blob{n:03d}")
            info.size = per_file
            tar.addfile(info, io.BytesIO(os.urandom(per_file)))
    return os.path.getsize(path)


def _request(port: int, method: str, path: str, body=None,
             headers: dict | None = None) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=600)
    try:
        conn.request(method, path, body=body,
                     headers={**_HEADERS, **(headers or {})})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def one_run(port: int, tarball: str, size: int, n: int) -> tuple[float,
                                                                  float]:
    t0 = time.monotonic()
    status, body = _request(port, "POST", "/image/v2/images", json.dumps({
        "name": f"bench{n}", "disk_format": "raw",
        "container_format": "bare"}), {"Content-Type": "application/json"})
    assert status == 201, body
    image_id = json.loads(body)["id"]
    t1 = time.monotonic()
    with open(tarball, "rb") as f:
        status, body = _request(port, "PUT",
                                f"/image/v2/images/{image_id}/file", f, {
                                    "Content-Type":
                                        "application/octet-stream",
                                    "Content-Length": str(size)})
    t2 = time.monotonic()
    assert status == 204, body
    status, body = _request(port, "DELETE", f"/image/v2/images/{image_id}")
    assert status == 204, body
    return t1 - t0, t2 - t1


def main() -> int:
    p = report.parser(__doc__.splitlines()[0], 10)
    p.add_argument("--size-mb", type=int, default=100)
    args = p.parse_args()
    report.interrupt_on_term()
    tmp = tempfile.mkdtemp(prefix="pyct-bench-upload-")
    dep = None
    try:
        tarball = os.path.join(tmp, "rootfs.tar")
        size = make_tarball(tarball, args.size_mb)
        dep = Deployment(tmp, f"sqlite:///{tmp}/pyct.sqlite",
                         virt_driver="container",
                         extra={"image": {"max_image_size_mb": 4096}})
        dep.manage("db", "sync")
        dep.start("pyct-api")
        one_run(dep.port, tarball, size, -1)   # warm-up: driver load
        creates, uploads = [], []
        for n in range(args.runs):
            created, uploaded = one_run(dep.port, tarball, size, n)
            creates.append(created)
            uploads.append(uploaded)
        rate = size / (1 << 20) / sorted(uploads)[len(uploads) // 2]
        report.emit(f"image upload ({size / (1 << 20):.0f} MiB tarball)",
                    {"create (POST)": report.summarize(creates),
                     "upload (PUT .../file -> 204)":
                         report.summarize(uploads)},
                    {"median upload MiB/s": rate}, args.json)
    finally:
        if dep is not None:
            dep.stop_all()
        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
