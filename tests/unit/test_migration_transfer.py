"""A cold migration's stream and its channel, attacked: the archive
(``virt.rootfs.archive``) keeps a tree's files, links and modes and
refuses members that would leave their target (``..``, absolute names,
a symlink made earlier in the stream or already there, a hard link out,
devices); the channel (``compute.migration_transfer``) takes one sender
with the right token for the right instance, once, before the token
expires, on the address it was given, and uses nothing whose SHA-256
differs from the sender's."""

from __future__ import annotations

import io
import os
import socket
import tarfile
import threading
import time

import pytest

from pyct_driver import exception
from pyct_driver.compute import migration_transfer as transfer
from pyct_driver.virt.rootfs import archive


def _tree(top):
    os.makedirs(top / "etc" / "deep")
    (top / "etc" / "deep" / "f").write_text("data")
    os.chmod(top / "etc" / "deep" / "f", 0o640)
    os.symlink("/etc/passwd", top / "abs-link")  # a guest's own link
    os.link(top / "etc" / "deep" / "f", top / "hard")
    return top


def test_pack_unpack_keeps_the_tree(tmp_path):
    src = _tree(tmp_path / "src")
    log = tmp_path / "console.log"
    log.write_text("boot\n")
    buf = io.BytesIO()
    archive.pack({"upper": str(src), "console.log": str(log)}, buf)
    dst = tmp_path / "dst"
    dst.mkdir()
    buf.seek(0)
    archive.unpack(buf, {"upper": str(dst),
                         "console.log": str(tmp_path / "out.log")})
    assert (dst / "etc" / "deep" / "f").read_text() == "data"
    assert os.stat(dst / "etc" / "deep" / "f").st_mode & 0o777 == 0o640
    assert os.readlink(dst / "abs-link") == "/etc/passwd"
    assert os.stat(dst / "hard").st_ino == \
        os.stat(dst / "etc" / "deep" / "f").st_ino
    assert (tmp_path / "out.log").read_text() == "boot\n"


def _stream(*members) -> io.BytesIO:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) \
            as tar:
        for info, data in members:
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    buf.seek(0)
    return buf


def _file(name, data=b"x"):
    info = tarfile.TarInfo(name)
    info.size = len(data)
    return info, data


def _link(name, target, kind=tarfile.SYMTYPE):
    info = tarfile.TarInfo(name)
    info.type, info.linkname = kind, target
    return info, None


@pytest.mark.parametrize("members", [
    [_file("upper/../../escaped")],
    [_file("/upper/escaped")],
    [_file("elsewhere/escaped")],
    [_link("upper/l", str("/tmp")), _file("upper/l/escaped")],
    [_link("upper/l", "../.."), _file("upper/l/escaped")],
    [_link("upper/h", "/etc/hostname", tarfile.LNKTYPE)],
    [_link("upper/h", "upper/../../x", tarfile.LNKTYPE)],
], ids=["dotdot", "absolute", "unknown-root", "symlink-dir-abs",
        "symlink-dir-rel", "hardlink-abs", "hardlink-dotdot"])
def test_hostile_members_are_refused(tmp_path, members):
    dst = tmp_path / "dst"
    dst.mkdir()
    before = set(os.listdir(tmp_path))
    with pytest.raises(exception.HostileImage):
        archive.unpack(_stream(*members), {"upper": str(dst)})
    assert set(os.listdir(tmp_path)) == before
    assert not list(tmp_path.rglob("escaped"))


def test_a_symlink_already_there_is_not_followed(tmp_path):
    dst, outside = tmp_path / "dst", tmp_path / "outside"
    dst.mkdir()
    outside.mkdir()
    os.symlink(outside, dst / "trap")
    with pytest.raises(exception.HostileImage):
        archive.unpack(_stream(_file("upper/trap/x")), {"upper": str(dst)})
    with pytest.raises(exception.HostileImage):  # O_EXCL: no write via it
        archive.unpack(_stream(_file("upper/trap")), {"upper": str(dst)})
    assert os.listdir(outside) == []


def test_devices_are_refused(tmp_path):
    info = tarfile.TarInfo("upper/mem")
    info.type, info.devmajor, info.devminor = tarfile.CHRTYPE, 1, 1
    (tmp_path / "d").mkdir()
    with pytest.raises(exception.HostileImage):
        archive.unpack(_stream((info, None)), {"upper": str(tmp_path / "d")})


def _receiver(tmp_path, ttl=10.0, address="127.0.0.1"):
    got = {}

    def receive(source):
        got["data"] = source.read()
    return transfer.Receiver(address, "inst-1", receive, ttl=ttl), got


def test_transfer_with_the_token_and_digest(tmp_path):
    rec, got = _receiver(tmp_path)
    payload = os.urandom(3 << 20)
    digest = transfer.send(rec.endpoint(), "inst-1",
                           lambda sink: sink.write(payload))
    rec.wait(digest, 10)
    assert got["data"] == payload
    # single use: the listener is gone once its sender was accepted
    with pytest.raises(exception.TransferError):
        transfer.send(rec.endpoint(), "inst-1", lambda sink: None)


def test_a_different_digest_is_refused(tmp_path):
    rec, _ = _receiver(tmp_path)
    transfer.send(rec.endpoint(), "inst-1", lambda sink: sink.write(b"a"))
    with pytest.raises(exception.TransferError, match="SHA-256"):
        rec.wait("0" * 64, 10)


@pytest.mark.parametrize("token,instance", [
    ("f" * 64, "inst-1"), (None, "inst-2")], ids=["token", "instance"])
def test_wrong_token_or_instance_gets_nothing(tmp_path, token, instance):
    rec, got = _receiver(tmp_path)
    endpoint = dict(rec.endpoint())
    endpoint["token"] = token or endpoint["token"]
    with pytest.raises(exception.TransferError):
        transfer.send(endpoint, instance, lambda sink: sink.write(b"evil"))
    assert rec.refused == 1 and "data" not in got
    # the right sender still gets through afterwards
    digest = transfer.send(rec.endpoint(), "inst-1",
                           lambda sink: sink.write(b"good"))
    rec.wait(digest, 10)
    assert got["data"] == b"good"


def test_the_token_expires(tmp_path):
    rec, got = _receiver(tmp_path, ttl=0.3)
    time.sleep(0.6)
    with pytest.raises(exception.TransferError):
        transfer.send(rec.endpoint(), "inst-1", lambda sink: sink.write(b"x"))
    with pytest.raises(exception.TransferError, match="expired"):
        rec.wait("", 5)


def test_the_listener_is_on_its_address_only(tmp_path):
    with pytest.raises(exception.TransferError, match="wildcard"):
        _receiver(tmp_path, address="0.0.0.0")
    rec, _ = _receiver(tmp_path, address="127.0.0.2")
    assert rec.address == "127.0.0.2"
    with pytest.raises(OSError):  # not on another local address
        socket.create_connection(("127.0.0.1", rec.port), timeout=2)
    rec.close()


def test_streams_are_not_held_in_memory(tmp_path):
    """The receiver sees the first bytes before the sender finished."""
    seen = threading.Event()

    def receive(source):
        source.read(1)
        seen.set()
        while source.read(1 << 16):
            pass
    rec = transfer.Receiver("127.0.0.1", "inst-1", receive, ttl=10)

    def write(sink):
        sink.write(b"x" * (1 << 16))
        sink.flush()
        assert seen.wait(10)
        sink.write(b"y")
    rec.wait(transfer.send(rec.endpoint(), "inst-1", write), 10)


def test_the_sender_learns_why_the_destination_refused(tmp_path):
    def receive(source):
        source.read(1 << 16)
        raise exception.HostileImage(image="migration stream",
                                     reason="member 'x' refused")
    rec = transfer.Receiver("127.0.0.1", "inst-1", receive, ttl=10)
    with pytest.raises(exception.TransferError, match="member 'x' refused"):
        transfer.send(rec.endpoint(), "inst-1",
                      lambda sink: sink.write(os.urandom(8 << 20)))
    with pytest.raises(exception.TransferError, match="member 'x'"):
        rec.wait("", 10)
