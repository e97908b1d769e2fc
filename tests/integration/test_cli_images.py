"""Images through the API with the real openstack CLI: ``image create
--file`` (streamed upload), ``image save``, ``image set --deactivate`` /
``--activate``, ``image set --tag``/``unset --tag``, ``image list``
filters, ``image delete``, and the
refusals a user sees (a qcow2, an image past ``[image]
max_image_size_mb``).

One ``pyct-api`` over a migrated SQLite database with the fake driver
(it accepts any bytes: the unpacker's rules are proven in
tests/unit/test_image_upload_api.py and, with real guests, in
tests/privileged/test_image_upload_boot.py).
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import json
import os

import pytest

from tests.fixtures.rootfs_images import layer_tar
from tests.integration.conftest import Pipeline


@pytest.fixture(scope="module")
def dep(tmp_path_factory):
    workdir = str(tmp_path_factory.mktemp("cliimage"))
    dep = Pipeline(workdir, f"sqlite:///{os.path.join(workdir, 'db.sqlite')}",
                   extra={"image": {"max_image_size_mb": 2}})
    dep.seed()
    with contextlib.ExitStack() as stack:
        stack.callback(dep.stop_all)
        dep.start("pyct-api")
        yield dep


def _rootfs(path: str, size: int = 256 << 10) -> bytes:
    data = gzip.compress(layer_tar({
        "hello.txt": b"hello from the upload\n",
        "noise.bin": os.urandom(size)}), compresslevel=1)
    with open(path, "wb") as f:
        f.write(data)
    return data


def _json(dep, *args, cloud="user") -> dict | list:
    return json.loads(dep.openstack(*args, "-f", "json", cloud=cloud).stdout)


def _image_files(dep) -> list[str]:
    path = os.path.join(dep.workdir, "state", "images")
    return sorted(os.listdir(path)) if os.path.isdir(path) else []


def test_create_save_deactivate_delete(dep):
    tarball = os.path.join(dep.workdir, "rootfs.tar.gz")
    data = _rootfs(tarball)
    image = _json(dep, "image", "create", "--file", tarball,
                  "--disk-format", "raw", "--container-format", "bare",
                  "--tag", "t1", "--property", "os_distro=busybox",
                  "uploaded")
    assert image["status"] == "active"
    assert image["checksum"] == hashlib.md5(data).hexdigest()
    assert image["size"] == len(data)
    shown = _json(dep, "image", "show", "uploaded")
    assert shown["visibility"] == "shared" and shown["tags"] == ["t1"]
    sdk = dep.sdk_connection().image.get_image(image["id"])
    assert sdk.hash_algo == "sha512"
    assert sdk.hash_value == hashlib.sha512(data).hexdigest()
    out = os.path.join(dep.workdir, "saved.tar.gz")
    dep.openstack("image", "save", "--file", out, "uploaded")
    with open(out, "rb") as f:
        assert f.read() == data
    listed = _json(dep, "image", "list", "--tag", "t1", "--sort",
                   "name:asc")
    assert [i["Name"] for i in listed] == ["uploaded"]
    dep.openstack("image", "set", "--tag", "t2", "uploaded")
    dep.openstack("image", "unset", "--tag", "t1", "uploaded")
    assert _json(dep, "image", "show", "uploaded")["tags"] == ["t2"]
    # another project sees nothing of it
    assert dep.openstack("image", "show", image["id"], cloud="other",
                         check=False).returncode != 0

    dep.openstack("image", "set", "--deactivate", "uploaded")
    assert _json(dep, "image", "show", "uploaded")["status"] == \
        "deactivated"
    refused = dep.openstack("image", "save", "--file", out, "uploaded",
                            check=False)
    # (the SDK reads the 403's body as data and reports a bad checksum)
    assert refused.returncode != 0
    resp = dep.sdk_connection().image.get(f"/images/{image['id']}/file")
    assert resp.status_code == 403 and "deactivated" in resp.text
    dep.openstack("image", "save", "--file", out, image["id"],
                  cloud="admin")
    dep.openstack("image", "set", "--activate", "uploaded")
    assert _json(dep, "image", "show", "uploaded")["status"] == "active"

    assert image["id"] in _image_files(dep)
    dep.openstack("image", "delete", "uploaded")
    assert "uploaded" not in [i["Name"] for i in _json(dep, "image",
                                                        "list")]
    assert image["id"] not in _image_files(dep)


def test_refused_formats_and_sizes_leave_nothing(dep):
    tarball = os.path.join(dep.workdir, "small.tar.gz")
    _rootfs(tarball, 1024)
    res = dep.openstack("image", "create", "--file", tarball,
                        "--disk-format", "qcow2", "qcow", check=False)
    assert res.returncode != 0
    assert "accepted: raw" in res.stdout + res.stderr
    big = os.path.join(dep.workdir, "big.tar.gz")
    _rootfs(big, 3 << 20)
    before = _image_files(dep)
    res = dep.openstack("image", "create", "--file", big, "--disk-format",
                        "raw", "--container-format", "bare", "big",
                        check=False)
    assert res.returncode != 0
    assert "413" in res.stdout + res.stderr
    assert _image_files(dep) == before
    for image in _json(dep, "image", "list", "--long"):
        assert image["Name"] != "big" or image["Status"] == "queued"
