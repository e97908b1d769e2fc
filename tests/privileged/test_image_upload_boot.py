"""An image uploaded with ``openstack image create --file`` boots.

One all-in-one with the container driver: a gzip'd busybox rootfs
tarball carrying an extra file is uploaded through the CLI, a server
boots from it, and the file is read inside the guest (guest_exec).
Hostile uploads (path traversal, a symlink escape, a setuid binary,
device nodes, a file that is no archive) through the same CLI leave no
layer and no staging file; the setuid bit is dropped and the devices
skipped. Deleting the image while the server runs keeps the guest's
layers until the server goes.
"""

from __future__ import annotations

import gzip
import io
import json
import os
import tarfile

import pytest

from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
from tests.privileged.e2e_fixtures import deployment
from tests.waiting import wait_for

MARK = b"uploaded through the image API\n"


@pytest.fixture(scope="module")
def env():
    with deployment("imgup") as e:
        yield e


def _layers(env) -> set[str]:
    path = os.path.join(env.base_dir, "images", "layers")
    return set(os.listdir(path)) if os.path.isdir(path) else set()


def _staged(env) -> list[str]:
    path = os.path.join(env.state_path, "images")
    return [n for n in os.listdir(path) if n.startswith(".staging")]


def _add(tar: tarfile.TarFile, name: str, data: bytes = b"",
         **attrs) -> None:
    info = tarfile.TarInfo(name)
    info.size = len(data)
    for key, value in attrs.items():
        setattr(info, key, value)
    tar.addfile(info, io.BytesIO(data) if data else None)


def _rootfs(env, name: str, extra) -> str:
    """The busybox rootfs with ``extra(tar)``'s members, gzip'd."""
    plain = os.path.join(env.tmp, f"{name}.tar")
    build_busybox_rootfs(plain)
    buf = io.BytesIO()
    with tarfile.open(plain) as src, tarfile.open(fileobj=buf,
                                                  mode="w") as out:
        for member in src.getmembers():
            out.addfile(member, src.extractfile(member)
                        if member.isreg() else None)
        extra(out)
    path = plain + ".gz"
    with open(path, "wb") as f:
        f.write(gzip.compress(buf.getvalue(), compresslevel=1))
    return path


def _create(env, name: str, path: str, check: bool = True):
    return env.cli("image", "create", "--file", path, "--disk-format",
                   "raw", "--container-format", "bare", name, check=check)


def test_uploaded_image_boots_and_shows_its_file(env):
    path = _rootfs(env, "good", lambda t: (
        _add(t, "srv/mark.txt", MARK, mode=0o644),
        _add(t, "bin/suid", b"#!/bin/sh\n", mode=0o4755),
        _add(t, "dev/evil", type=tarfile.CHRTYPE, devmajor=1, devminor=1)))
    before = _layers(env)
    _create(env, "up1", path)
    assert env.cli_json("image", "show", "up1")["status"] == "active"
    assert len(_layers(env) - before) == 1 and _staged(env) == []
    srv = env.cli_json("server", "create", "--image", "up1", "--flavor",
                       "m1.tiny", "--nic", "none", "--wait", "upvm")
    assert srv["status"] == "ACTIVE", srv
    uuid = srv["id"]
    assert env.exec(uuid, ["cat", "/srv/mark.txt"]).stdout.encode() == MARK
    mode = env.exec(uuid, ["stat", "-c", "%a", "/bin/suid"]).stdout.strip()
    assert mode == "755", mode
    assert env.exec(uuid, ["ls", "/dev/evil"], check=False).returncode != 0

    # Deleting the image leaves the running guest its layers...
    held = _layers(env)
    env.cli("image", "delete", "up1")
    assert _layers(env) == held
    assert env.exec(uuid, ["cat", "/srv/mark.txt"]).stdout.encode() == MARK
    # ...until the server goes
    env.cli("server", "delete", "--wait", "upvm")
    wait_for(lambda: _layers(env) == before, 30, "layers freed")


def _traversal(t):
    _add(t, "../../../tmp/pyct-evil-upload", b"pwned")


def _symlink_escape(t):
    _add(t, "escape", type=tarfile.SYMTYPE, linkname="/tmp")
    _add(t, "escape/pyct-evil-upload", b"pwned")


def _absolute(t):
    _add(t, "/tmp/pyct-evil-upload", b"pwned")


@pytest.mark.parametrize("extra", [_traversal, _symlink_escape, _absolute])
def test_hostile_uploads_leave_nothing(env, extra):
    path = _rootfs(env, extra.__name__, extra)
    before = _layers(env)
    res = _create(env, f"bad{extra.__name__}", path, check=False)
    assert res.returncode != 0
    assert "400" in res.stdout + res.stderr
    assert _layers(env) == before and _staged(env) == []
    assert not os.path.exists("/tmp/pyct-evil-upload")
    # the SDK deletes an image whose upload failed; never an active one
    listed = json.loads(env.cli("image", "list", "--long", "-f",
                                "json").stdout)
    assert all(i["Status"] == "killed" for i in listed
               if i["Name"] == f"bad{extra.__name__}"), listed


def test_not_an_archive_is_refused(env):
    path = os.path.join(env.tmp, "notes.txt")
    with open(path, "w") as f:
        f.write("not a tarball\n" * 100)
    before = _layers(env)
    assert _create(env, "notes", path, check=False).returncode != 0
    assert _layers(env) == before and _staged(env) == []
