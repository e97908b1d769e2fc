"""``PUT /v2/images/{id}/file``: the upload streamed into a real image
store (the unpacker's hostile-archive rules), Glance's statuses, size,
checksum and multihash, and every refusal leaving nothing behind."""

from __future__ import annotations

import base64
import hashlib
import io
import os
import stat
import tarfile

import pytest
import webob

from tests.fixtures.rootfs_images import layer_tar
from tests.unit.image_fixtures import (ADMIN, MEMBER, OCTETS, OTHER, READER,
                                       StoreHarness, tarball)


@pytest.fixture
def h() -> StoreHarness:
    return StoreHarness(image__max_image_size_mb=1,
                        api__max_request_body_size=4096)


def _file_in_layers(h: StoreHarness, image_id: str, name: str) -> str:
    for layer in h.store.layers(image_id):
        path = os.path.join(layer, name)
        if os.path.lexists(path):
            return path
    raise AssertionError(f"{name} in no layer")


def test_upload_makes_the_image_active_with_its_hashes(h):
    """A gzip rootfs tarball bigger than the API's body limit: streamed,
    hashed, unpacked into a layer, downloadable byte for byte."""
    data = tarball([("hello.txt", b"hello upload\n"),
                    ("big.bin", os.urandom(64 << 10))])
    assert len(data) > 4096
    image = h.create()
    assert image["status"] == "queued" and image["size"] is None
    resp = h.upload(image["id"], data)
    assert resp.status_int == 204, resp.text
    shown = h.show(image["id"], MEMBER)
    assert shown["status"] == "active"
    assert shown["size"] == len(data)
    assert shown["checksum"] == hashlib.md5(data).hexdigest()
    assert shown["os_hash_algo"] == "sha512"
    assert shown["os_hash_value"] == hashlib.sha512(data).hexdigest()
    with open(_file_in_layers(h, image["id"], "hello.txt"), "rb") as f:
        assert f.read() == b"hello upload\n"
    got = h.request("GET", f"/image/v2/images/{image['id']}/file")
    assert got.status_int == 200 and got.body == data
    assert got.headers["Content-MD5"] == shown["checksum"]
    assert h.leftovers() == [image["id"]]   # the file, no staging


def test_plain_tar_and_matching_declared_checksums(h):
    data = tarball(compress=False)
    image = h.create(**{"owner_specified.openstack.sha256":
                        hashlib.sha256(data).hexdigest()})
    b64 = base64.b64encode(hashlib.md5(data).digest()).decode()
    resp = h.upload(image["id"], data, headers={"Content-MD5": b64})
    assert resp.status_int == 204, resp.text


@pytest.mark.parametrize("declared", [
    {"headers": {"Content-MD5": "0" * 32}},
    {"props": {"owner_specified.openstack.md5": "f" * 32}},
    {"headers": {"Content-MD5": "not base64!"}}])
def test_wrong_declared_checksum_is_400_and_leaves_nothing(h, declared):
    image = h.create(**declared.get("props", {}))
    resp = h.upload(image["id"], tarball(),
                    headers=declared.get("headers"))
    assert resp.status_int == 400, resp.text
    assert h.show(image["id"])["status"] == "queued"   # may retry
    assert h.leftovers() == [] and h.layers() == []


def _hostile_traversal() -> bytes:
    return tarball([("ok.txt", b"x"), ("../../etc/evil", b"pwned")])


def _absolute() -> bytes:
    return tarball([("/etc/evil", b"pwned")])


def _link_escape() -> bytes:
    link = tarfile.TarInfo("up")
    link.type, link.linkname = tarfile.SYMTYPE, "/etc"
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(link)
        info = tarfile.TarInfo("up/evil")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    return buf.getvalue()


@pytest.mark.parametrize("make", [_hostile_traversal, _absolute,
                                  _link_escape,
                                  lambda: b"this is no tarball" * 100,
                                  lambda: tarball([("f", b"x" * 4096)],
                                                  compress=False)[:2000]])
def test_hostile_or_broken_archive_kills_the_image(h, make):
    image = h.create()
    resp = h.upload(image["id"], make())
    assert resp.status_int == 400, resp.text
    assert h.show(image["id"])["status"] == "killed"
    assert h.leftovers() == [] and h.layers() == []
    assert not os.path.exists("/etc/evil")
    # a killed image takes no more data
    assert h.upload(image["id"], tarball()).status_int == 409


def test_devices_skipped_and_setuid_dropped(h):
    dev = tarfile.TarInfo("dev/sda")
    dev.type, dev.devmajor, dev.devminor = tarfile.BLKTYPE, 8, 0
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.addfile(dev)
        suid = tarfile.TarInfo("bin/su")
        suid.size, suid.mode = 2, 0o4755
        tar.addfile(suid, io.BytesIO(b"#!"))
    image = h.create()
    assert h.upload(image["id"], buf.getvalue()).status_int == 204
    mode = os.stat(_file_in_layers(h, image["id"], "bin/su")).st_mode
    assert not mode & (stat.S_ISUID | stat.S_ISGID)
    with pytest.raises(AssertionError):
        _file_in_layers(h, image["id"], "dev/sda")


def test_oversize_by_content_length_is_413_before_reading(h):
    image = h.create()
    resp = h.upload(image["id"], b"\0" * ((1 << 20) + 1))
    assert resp.status_int == 413, resp.text
    assert h.show(image["id"])["status"] == "queued"
    assert h.leftovers() == [] and h.layers() == []


def test_oversize_stream_without_length_is_413_and_leaves_nothing(h):
    """A chunked body (no Content-Length) is cut off at the cap."""
    image = h.create()
    req = webob.Request.blank(f"/image/v2/images/{image['id']}/file",
                              method="PUT")
    req.headers.update({**OCTETS, "X-Auth-Token": MEMBER})
    req.environ["wsgi.input"] = io.BytesIO(b"\0" * (3 << 20))
    req.environ.pop("CONTENT_LENGTH", None)
    req.environ["wsgi.input_terminated"] = True
    resp = req.get_response(h.app)
    assert resp.status_int == 413, resp.text
    assert "too large" in resp.text
    assert h.show(image["id"])["status"] == "queued"
    assert h.leftovers() == [] and h.layers() == []


@pytest.mark.parametrize("token,status", [(OTHER, 404), (READER, 403)])
def test_other_project_and_reader_cannot_upload(h, token, status):
    image = h.create()
    assert h.upload(image["id"], tarball(), token=token).status_int \
        == status
    assert h.show(image["id"])["status"] == "queued"


def test_upload_to_active_image_is_409(h):
    image = h.create()
    assert h.upload(image["id"], tarball()).status_int == 204
    resp = h.upload(image["id"], tarball([("b", b"other")]))
    assert resp.status_int == 409, resp.text
    assert "active to saving" in resp.text
    assert len(h.layers()) == 1


def test_upload_needs_formats_and_octet_stream(h):
    resp = h.request("POST", "/image/v2/images", {"name": "bare"})
    image = resp.json
    assert h.upload(image["id"], tarball()).status_int == 400
    image = h.create()
    resp = h.request("PUT", f"/image/v2/images/{image['id']}/file",
                     raw=tarball())   # application/json
    assert resp.status_int == 415, resp.text
    assert h.upload("no-such-image", tarball()).status_int == 404
    assert h.leftovers() == []


def test_docker_archive_is_imported(h):
    """A ``docker save`` archive (container_format docker) unpacks into
    its layers."""
    layer = tarball([("from-docker.txt", b"docker\n")], compress=False)
    digest = hashlib.sha256(layer).hexdigest()
    config = ('{"config": {}, "rootfs": {"type": "layers", "diff_ids": '
              f'["sha256:{digest}"]}}}}').encode()
    cdigest = hashlib.sha256(config).hexdigest()
    manifest = (f'[{{"Config": "{cdigest}.json", "RepoTags": ["x:1"], '
                f'"Layers": ["{digest}/layer.tar"]}}]').encode()
    archive = layer_tar({f"{digest}/layer.tar": layer,
                         f"{cdigest}.json": config,
                         "manifest.json": manifest})
    image = h.create(container_format="docker")
    resp = h.upload(image["id"], archive)
    assert resp.status_int == 204, resp.text
    with open(_file_in_layers(h, image["id"], "from-docker.txt"),
              "rb") as f:
        assert f.read() == b"docker\n"


def test_admin_uploads_to_any_projects_image(h):
    image = h.create()
    assert h.upload(image["id"], tarball(), token=ADMIN).status_int == 204


def test_client_gone_before_content_length_is_400_and_queued(h):
    image = h.create()
    req = webob.Request.blank(f"/image/v2/images/{image['id']}/file",
                              method="PUT")
    req.headers.update({**OCTETS, "X-Auth-Token": MEMBER})
    req.environ["wsgi.input"] = io.BytesIO(b"\0" * 1000)
    req.environ["CONTENT_LENGTH"] = "100000"
    resp = req.get_response(h.app)
    assert resp.status_int == 400, resp.text
    assert "ended before" in resp.text
    assert h.show(image["id"])["status"] == "queued"
    assert h.leftovers() == [] and h.layers() == []
