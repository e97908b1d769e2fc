"""ImageStore: formats, layer dedup, digest verification, GC."""

from __future__ import annotations

import gzip
import os
import shlex

import pytest

from pyct_driver import exception
from pyct_driver.virt.rootfs import store
from tests.fixtures import rootfs_images as imgs

BASE = imgs.layer_tar({"etc": None, "etc/os-release": b"base\n",
                       "bin": None, "bin/sh": b"#!sh\n"})
APP = imgs.layer_tar({"app": None, "app/run": b"run\n"})


@pytest.fixture
def st(tmp_path):
    return store.ImageStore(str(tmp_path / "pyct-store"), max_bytes=1 << 30,
                            max_files=10_000)


def test_plain_tarball_is_one_layer(st, tmp_path):
    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(gzip.compress(BASE))
    info = st.import_image("plain", str(path))
    assert (info.disk_format, info.container_format) == ("raw", "bare")
    assert info.size == path.stat().st_size and len(info.checksum) == 32
    [layer] = st.layers("plain")
    assert open(os.path.join(layer, "etc/os-release")).read() == "base\n"
    assert st.has_image("plain")


@pytest.mark.parametrize("as_tar", [False, True])
def test_oci_layout_two_layers(st, tmp_path, as_tar):
    root = tmp_path / "oci"
    meta = imgs.oci_layout(str(root), [BASE, APP], cmd=["echo 'a b'"])
    path = str(root)
    if as_tar:
        path = str(tmp_path / "oci.tar")
        imgs.tar_dir(str(root), path)
    info = st.import_image("oci", path)
    assert info.container_format == "docker"
    assert shlex.split(info.properties["os_command_line"]) == \
        ["/bin/sh", "-c", "echo 'a b'"]
    assert info.properties["architecture"] == "x86_64"
    layers = st.layers("oci")
    assert [os.path.basename(p) for p in layers] == \
        ["sha256-" + d for d in meta["layers"]]
    assert os.path.exists(os.path.join(layers[0], "bin/sh"))
    assert os.path.exists(os.path.join(layers[1], "app/run"))


def test_docker_save_two_layers(st, tmp_path):
    path = str(tmp_path / "save.tar")
    digests = imgs.docker_save(path, [BASE, APP])
    info = st.import_image("dk", path)
    assert info.properties["os_command_line"] == "/sbin/init"
    assert info.properties["pyct_image_format"] == "docker-save"
    assert [os.path.basename(p) for p in st.layers("dk")] == \
        ["sha256-" + d for d in digests]


def test_layer_shared_between_images_and_gc(st, tmp_path):
    imgs.oci_layout(str(tmp_path / "a"), [BASE, APP])
    other = imgs.layer_tar({"other": b"o"})
    imgs.oci_layout(str(tmp_path / "b"), [BASE, other])
    st.import_image("a", str(tmp_path / "a"))
    base_dir = st.layers("a")[0]
    marker = os.stat(base_dir).st_ino
    st.import_image("b", str(tmp_path / "b"))
    assert st.layers("b")[0] == base_dir
    assert os.stat(base_dir).st_ino == marker  # reused, not re-unpacked
    layer_root = os.path.dirname(base_dir)
    assert len(os.listdir(layer_root)) == 3
    st.delete_image("a")
    assert not st.has_image("a")
    assert sorted(os.listdir(layer_root)) == sorted(
        os.path.basename(p) for p in st.layers("b"))
    held = st.acquire("inst-1", "b")
    st.delete_image("b")
    assert all(os.path.isdir(p) for p in held)  # the instance keeps them
    st.release("inst-1")
    assert os.listdir(layer_root) == []
    st.delete_image("b")  # idempotent


def test_digest_mismatch_refused(st, tmp_path):
    root = tmp_path / "oci"
    meta = imgs.oci_layout(str(root), [BASE, APP])
    blob = root / "blobs" / "sha256" / meta["layers"][1]
    blob.write_bytes(gzip.compress(imgs.layer_tar({"evil": b"x"})))
    with pytest.raises(exception.InvalidImage, match="digest"):
        st.import_image("bad", str(root))
    assert not st.has_image("bad")
    assert os.listdir(os.path.join(st.base_dir, "layers")) == []


def test_cache_hit_still_verified(st, tmp_path):
    """A second image claiming a cached digest must ship the same bytes."""
    meta = imgs.oci_layout(str(tmp_path / "a"), [BASE])
    st.import_image("a", str(tmp_path / "a"))
    root = tmp_path / "b"
    imgs.oci_layout(str(root), [BASE])
    (root / "blobs" / "sha256" / meta["layers"][0]).write_bytes(b"other")
    with pytest.raises(exception.InvalidImage, match="digest"):
        st.import_image("b", str(root))
    assert st.has_image("a") and not st.has_image("b")


def test_duplicate_and_missing(st, tmp_path):
    path = tmp_path / "r.tar"
    path.write_bytes(BASE)
    st.import_image("x", str(path))
    with pytest.raises(exception.Duplicate):
        st.import_image("x", str(path))
    with pytest.raises(exception.ImageNotFound):
        st.layers("nope")
    with pytest.raises(exception.InvalidInput):
        st.layers("../x")


def test_hostile_layer_leaves_nothing(st, tmp_path):
    evil = imgs.layer_tar({"etc": "/etc", "etc/passwd": b"pwned"})
    imgs.oci_layout(str(tmp_path / "e"), [BASE, evil])
    with pytest.raises(exception.HostileImage, match="etc/passwd"):
        st.import_image("evil", str(tmp_path / "e"))
    assert os.listdir(os.path.join(st.base_dir, "layers")) == []
    assert not st.has_image("evil")


def test_concurrent_first_imports_on_a_host_all_succeed(st, tmp_path):
    """Builds of one image racing on a host that has not imported it yet
    (the first builds after an evacuation, a multi-create): each waits
    for the first import, none fails on its "importing" record."""
    import threading

    from pyct_driver.virt.container_host import HostSide

    path = tmp_path / "rootfs.tar.gz"
    path.write_bytes(gzip.compress(BASE))
    host = HostSide()
    host.images = st
    errors, start = [], threading.Barrier(8)

    def build():
        start.wait()
        try:
            host.import_image("raced", str(path))
        except exception.PyctError as err:
            errors.append(err)
    threads = [threading.Thread(target=build) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == [] and st.has_image("raced")


def test_release_reads_other_holders_only_when_layers_may_go(
        st, tmp_path, monkeypatch):
    imgs.oci_layout(str(tmp_path / "a"), [BASE, APP])
    st.import_image("a", str(tmp_path / "a"))
    for num in range(5):
        st.acquire(f"inst-{num}", "a")
    opened = []
    real_open = open
    monkeypatch.setattr("builtins.open", lambda path, *a, **kw: (
        opened.append(str(path)), real_open(path, *a, **kw))[1])
    st.release("inst-0")  # image still there: no other holder read
    assert not [p for p in opened if "holders" in p
                and not p.endswith("inst-0.json")], opened
    layers = st.layers("a")
    st.delete_image("a")
    for num in range(1, 4):
        st.release(f"inst-{num}")
        assert all(os.path.isdir(p) for p in layers)  # inst-4 holds them
    st.release("inst-4")
    assert not any(os.path.exists(p) for p in layers)
