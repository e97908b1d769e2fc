"""The capture of an overlay upper directory as an OCI layer, and that
layer through the image store's unpacker: owners as the guest sees them,
overlay whiteouts and opaque directories as OCI's, hard links kept,
symlinks never followed, sockets skipped, refusals clean."""

from __future__ import annotations

import os
import socket
import stat
import tarfile

import pytest

from pyct_driver import exception
from pyct_driver.virt.rootfs import capture
from pyct_driver.virt.rootfs.store import ImageStore

START = 200000  # a user-namespaced guest's range start


def _upper(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    (up / "etc").mkdir()
    (up / "etc" / "conf").write_text("changed\n")
    os.chown(up / "etc" / "conf", START + 1000, START + 1000)
    os.link(up / "etc" / "conf", up / "etc" / "conf-link")
    os.symlink("/etc/shadow", up / "shadow")
    os.mknod(up / "gone", stat.S_IFCHR | 0o000, os.makedev(0, 0))
    (up / "opaque").mkdir()
    os.setxattr(up / "opaque", "trusted.overlay.opaque", b"y")
    (up / "opaque" / "new").write_text("n")
    sock = socket.socket(socket.AF_UNIX)
    sock.bind(str(up / "sock"))
    sock.close()
    suid = up / "suid"
    suid.write_text("#!/bin/sh\n")
    os.chmod(suid, 0o4755)
    return up


def test_capture_translates_overlay_to_oci(tmp_path):
    up = _upper(tmp_path)
    got = capture.capture(str(up), str(tmp_path / "layer.tar"),
                          (START, 65536), 1 << 30, 1000)
    assert got.whiteouts == 2 and got.sockets_skipped == 1
    with tarfile.open(tmp_path / "layer.tar") as tar:
        members = {m.name: m for m in tar.getmembers()}
    assert ".wh.gone" in members and "opaque/.wh..wh..opq" in members
    assert "sock" not in members
    conf = members["etc/conf"]
    assert (conf.uid, conf.gid) == (1000, 1000)
    assert members["etc/conf-link"].islnk()
    assert members["shadow"].issym()
    assert members["shadow"].linkname == "/etc/shadow"
    assert os.path.getsize(tmp_path / "layer.tar") == got.size

    store = ImageStore(str(tmp_path / "store"), 1 << 30, 1000)
    store.add_layer_image("snap", [], str(tmp_path / "layer.tar"),
                          got.digest, {"k": "v"})
    top = store.layers("snap")[-1]
    assert open(os.path.join(top, "etc", "conf")).read() == "changed\n"
    assert os.stat(os.path.join(top, "etc", "conf")).st_uid == 1000
    assert os.stat(os.path.join(top, "etc", "conf")).st_ino == \
        os.stat(os.path.join(top, "etc", "conf-link")).st_ino
    assert os.readlink(os.path.join(top, "shadow")) == "/etc/shadow"
    assert stat.S_ISCHR(os.lstat(os.path.join(top, "gone")).st_mode)
    assert os.getxattr(os.path.join(top, "opaque"),
                       "trusted.overlay.opaque") == b"y"
    # the unpacker's rule: no setuid program from an image
    assert not os.stat(os.path.join(top, "suid")).st_mode & stat.S_ISUID
    assert store.blob_path(got.digest)
    assert store.properties("snap") == {"k": "v"}


@pytest.mark.parametrize("make, why", [
    (lambda up: (up / ".wh.x").write_text(""), "whiteout"),
    (lambda up: os.mknod(up / "dev", stat.S_IFCHR | 0o600,
                         os.makedev(1, 3)), "device"),
    (lambda up: os.truncate(_touch(up / "sparse"), 2 << 30), "bytes"),
])
def test_refusals_are_clean(tmp_path, make, why):
    up = tmp_path / "upper"
    up.mkdir()
    make(up)
    with pytest.raises(exception.SnapshotError, match=why):
        capture.capture(str(up), str(tmp_path / "layer.tar"), None,
                        1 << 30, 1000)


def _touch(path):
    path.write_text("")
    return path


def test_ids_outside_the_range_become_nobody(tmp_path):
    up = tmp_path / "upper"
    up.mkdir()
    (up / "f").write_text("x")
    os.chown(up / "f", 0, 0)  # host root: not the guest's to make
    capture.capture(str(up), str(tmp_path / "l.tar"), (START, 65536),
                    1 << 30, 10)
    with tarfile.open(tmp_path / "l.tar") as tar:
        assert tar.getmember("f").uid == 65534


def test_a_symlinked_upper_is_not_followed(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "upper")
    with pytest.raises(exception.SnapshotError):
        capture.capture(str(tmp_path / "upper"), str(tmp_path / "l.tar"),
                        None, 1 << 30, 10)
