"""Hostile images at the driver and pyct-manage level.

tests/unit/test_rootfs_unpack.py covers the unpacker on its own and
tests/unit/test_rootfs_store.py one two-layer OCI escape through the
store; here every hostile shape goes through what an operator (or Glance
glue) really calls -- ``ContainerDriver.import_image`` and ``pyct-manage
image import`` -- with the driver's configured limits (a small
``image_max_files``/``image_max_bytes`` instead of a million files), and
each must be refused with a HostileImage naming the member, leave no
layer or image record behind, and leave the host canaries unchanged.
Device nodes and setuid-root files are neutralised rather than refused
(dropped and stripped; the import names them in its counts), so for them
the test asserts the stored layer holds neither.

The second half is a stronger fuzz of the unpacker than the unit one:
random multi-layer stacks (laid over each other as the store does, with
OCI whiteouts on), symlinks and hard links aimed at an existing host
canary by absolute and relative paths, device nodes, FIFOs and
``.wh.`` names; the oracle is "nothing outside the destination changed"
(type, mode, owner, inode, link count, content, symlink target).
"""

from __future__ import annotations

import io
import os
import shutil
import stat
import sys
import subprocess
import tarfile
import tempfile
import uuid as uuid_mod

import hypothesis
import pytest
from hypothesis import strategies as st

from pyct_driver import exception
from pyct_driver.virt.container import ContainerDriver
from pyct_driver.virt.rootfs import unpack
from tests.fixtures import rootfs_images as imgs
from tests.privileged import escape_fixtures as ef
from tests.privileged.guest_tools import make_conf

MAX_FILES = 64
MAX_BYTES = 1 << 20


def _tar(members) -> bytes:
    """members: (name, kind, extra): file (bytes|mode), dir, sym, hard,
    chr/blk ((major, minor)), fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for name, kind, extra in members:
            ti = tarfile.TarInfo(name)
            ti.mtime, ti.uid, ti.gid = 1_600_000_000, 0, 0
            data = None
            if kind == "file":
                payload = extra if isinstance(extra, bytes) else b"x"
                ti.size, data = len(payload), io.BytesIO(payload)
                ti.mode = extra if isinstance(extra, int) else 0o644
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
            elif kind in ("chr", "blk"):
                ti.type = tarfile.CHRTYPE if kind == "chr" else tarfile.BLKTYPE
                ti.devmajor, ti.devminor = extra
                ti.mode = 0o666
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            tar.addfile(ti, data)
    return buf.getvalue()


@pytest.fixture
def canaries():
    can = ef.Canaries([])
    can.take()
    yield can
    can.check()
    shutil.rmtree(can.dir, ignore_errors=True)


@pytest.fixture
def img_driver():
    tmp = tempfile.mkdtemp(prefix="pyct-escimg-")
    conf = make_conf(tmp, f"pyct-test-{uuid_mod.uuid4().hex[:8]}")
    conf.set_override("image_max_files", MAX_FILES, group="container")
    conf.set_override("image_max_bytes", MAX_BYTES, group="container")
    drv = ContainerDriver(conf)  # no init_host: imports need no launcher
    drv.test_tmp = tmp
    yield drv
    shutil.rmtree(tmp, ignore_errors=True)


def _write(drv, name: str, data: bytes) -> str:
    path = os.path.join(drv.test_tmp, name)
    with open(path, "wb") as f:
        f.write(data)
    return path


def _oci(drv, name: str, layers: list[bytes]) -> str:
    root = os.path.join(drv.test_tmp, name + "-oci")
    imgs.oci_layout(root, layers)
    path = os.path.join(drv.test_tmp, name + ".tar")
    imgs.tar_dir(root, path)
    return path


def _hostile_cases(canary: str) -> dict:
    secret = os.path.join(canary, "secret")
    rel = os.path.relpath(canary, "/")
    deep = "/".join(["d"] * 200) + "/f"
    return {
        "dotdot": ([_tar([("../../../../tmp/pyct-escaped", "file", b"x")])],
                   "'..'"),
        "absolute": ([_tar([("/tmp/pyct-escaped", "file", b"x")])],
                     "absolute"),
        "symlink_to_root_write_through": (
            [_tar([("etc", "sym", "/"), ("etc/pyct-escaped", "file", b"x")])],
            "outside"),
        "symlink_to_canary_write_through": (
            [_tar([("c", "sym", canary), ("c/secret", "file", b"pwned")])],
            "outside"),
        "relative_symlink_escape": (
            [_tar([("c", "sym", "../" * 20 + rel),
                   ("c/secret", "file", b"pwned")])], "escapes|outside"),
        "hardlink_to_host_file": (
            [_tar([("h", "hard", secret.lstrip("/"))])], "not a regular"),
        "hardlink_absolute": ([_tar([("h", "hard", secret)])], "absolute"),
        "hardlink_dotdot": ([_tar([("h", "hard", "../" * 20 + rel)])],
                            "'..'"),
        "very_deep_path": ([_tar([(deep, "file", b"x")])], "deeper than"),
        "too_many_files": (
            [_tar([(f"f{i}", "file", b"x") for i in range(MAX_FILES + 1)])],
            f"more than {MAX_FILES} members"),
        "huge_declared_size": (
            [_tar([("huge", "file", bytes(2 * MAX_BYTES))])],
            "declares more than"),
    }


CASES = sorted(_hostile_cases("/tmp/x"))


def _assert_nothing_left(drv, image_id: str) -> None:
    assert not drv.images.has_image(image_id)
    layers = os.path.join(drv.images.base_dir, "layers")
    assert os.listdir(layers) == [], os.listdir(layers)


@pytest.mark.parametrize("case", CASES)
def test_driver_refuses_hostile_image(img_driver, canaries, case):
    layers, match = _hostile_cases(canaries.dir)[case]
    path = _write(img_driver, case + ".tar", layers[0]) if len(layers) == 1 \
        else _oci(img_driver, case, layers)
    with pytest.raises(exception.HostileImage, match=match) as err:
        img_driver.import_image(case, path)
    assert str(err.value).startswith(f"Refused image archive {case}: ")
    _assert_nothing_left(img_driver, case)


@pytest.mark.parametrize("target", ["/", "canary"])
def test_symlink_in_one_layer_write_in_the_next(img_driver, canaries,
                                                target):
    """Layer 1 plants ``c -> /`` (or the canary's host path), layer 2
    writes ``c/secret``. The store unpacks each layer into its own
    directory, so layer 2's ``c`` is a fresh directory there and overlayfs
    shows it over the symlink (an upper directory hides a lower
    non-directory): no write follows the link. Refusing the image would
    be as good; following the link is what must never happen."""
    link = canaries.dir if target == "canary" else "/"
    path = _oci(img_driver, "two", [
        _tar([("c", "sym", link)]),
        _tar([("c/secret", "file", b"pwned"),
              ("c/pyct-escaped", "file", b"x")])])
    try:
        img_driver.import_image("two", path)
    except exception.HostileImage:
        _assert_nothing_left(img_driver, "two")
        return
    lower, upper = img_driver.images.layers("two")
    assert os.readlink(os.path.join(lower, "c")) == link
    assert not os.path.islink(os.path.join(upper, "c"))
    with open(os.path.join(upper, "c", "secret"), "rb") as f:
        assert f.read() == b"pwned"
    img_driver.delete_image("two")


@pytest.mark.parametrize("oci", [False, True])
def test_devices_and_setuid_neutralised(img_driver, canaries, oci):
    root_dev = os.stat("/").st_dev
    layer = _tar([("dev", "dir", None), ("dev/mem", "chr", (1, 1)),
                  ("dev/hostdisk", "blk", (os.major(root_dev),
                                           os.minor(root_dev))),
                  ("dev/fifo", "fifo", None), ("bin", "dir", None),
                  ("bin/su", "file", 0o4755), ("bin/sg", "file", 0o2755)])
    path = _oci(img_driver, "dev", [layer]) if oci else \
        _write(img_driver, "dev.tar", layer)
    img_driver.import_image("dev", path)
    for layer_dir in img_driver.images.layers("dev"):
        for dirpath, dirnames, filenames in os.walk(layer_dir):
            for name in dirnames + filenames:
                st_ = os.lstat(os.path.join(dirpath, name))
                assert not (stat.S_ISBLK(st_.st_mode)
                            or stat.S_ISFIFO(st_.st_mode)), name
                if stat.S_ISCHR(st_.st_mode):  # only overlay whiteouts
                    assert st_.st_rdev == 0, name
                assert not st_.st_mode & (stat.S_ISUID | stat.S_ISGID), name
    img_driver.delete_image("dev")


def test_pyct_manage_refuses_hostile_image(canaries, tmp_path):
    """The operator's command: a clear one-line error, exit 1, nothing
    registered, no layer kept."""
    state = tmp_path / "pyct-state"
    state.mkdir()
    conf = tmp_path / "pyct.conf"
    conf.write_text(
        f"[DEFAULT]\nstate_path = {state}\nvirt_driver = container\n"
        f"[database]\nconnection = sqlite:///{state}/pyct.sqlite\n"
        f"[container]\ncgroup_parent = pyct-test-{uuid_mod.uuid4().hex[:8]}\n"
        f"image_max_files = {MAX_FILES}\n")
    evil = tmp_path / "evil-oci"
    imgs.oci_layout(str(evil), [_tar([("x", "file", b"base")]),
                                _tar([("c", "sym", canaries.dir),
                                      ("c/secret", "file", b"pwned")])])
    evil_tar = tmp_path / "evil.tar"
    imgs.tar_dir(str(evil), str(evil_tar))
    manage = os.path.join(os.path.dirname(sys.executable), "pyct-manage")
    base = [manage, "--config-file", str(conf)]
    subprocess.run(base + ["db", "sync"], check=True, capture_output=True)
    res = subprocess.run(base + ["image", "import", "evil", str(evil_tar)],
                         capture_output=True, text=True, timeout=60)
    assert res.returncode == 1, (res.stdout, res.stderr)
    assert "ERROR: Refused image archive" in res.stderr, res.stderr
    assert "c/secret" in res.stderr, res.stderr
    assert "Traceback" not in res.stderr
    listed = subprocess.run(base + ["image", "list"], capture_output=True,
                            text=True, check=True).stdout
    assert "evil" not in listed
    layers = state / "container" / "images" / "layers"
    assert not layers.exists() or os.listdir(layers) == []


# -- fuzz: multi-layer stacks, whiteouts, host-aimed links ----------------

_COMP = st.sampled_from(["a", "b", "c", "..", ".", "", ".wh.a", ".wh.b",
                         ".wh..wh..opq"])
_REL = st.lists(_COMP, min_size=1, max_size=4).map("/".join)


def _members(canary_abs: str):
    targets = st.one_of(
        _REL, _REL.map(lambda n: "/" + n),
        st.sampled_from([canary_abs, canary_abs + "/etc",
                         canary_abs + "/etc/passwd", "/", "..", "../../..",
                         "../canary", "../canary/etc/passwd",
                         "../link-to-canary", "/proc/self/root"]))
    return st.tuples(
        st.one_of(_REL, _REL.map(lambda n: "/" + n)),
        st.sampled_from(["file", "dir", "sym", "hard", "chr", "fifo"]),
        targets)


def _fix(members) -> list:
    out = []
    for name, kind, extra in members:
        if kind == "file":
            extra = b"fuzz"
        elif kind == "chr":
            extra = (1, 3)
        elif kind in ("dir", "fifo"):
            extra = None
        out.append((name, kind, extra))
    return out


_TOP = tempfile.mkdtemp(prefix="pyct-escfuzz-")
_CANARY = os.path.join(_TOP, "canary")


def _outside(top: str, dest: str) -> dict:
    snap = ef._tree(top)
    return {p: v for p, v in snap.items()
            if p != dest and not p.startswith(dest + "/")}


@hypothesis.settings(max_examples=300, deadline=None)
@hypothesis.given(st.lists(st.lists(_members(_CANARY), min_size=1,
                                    max_size=6), min_size=1, max_size=3))
def test_fuzz_layer_stacks_change_nothing_outside(stack):
    top = tempfile.mkdtemp(prefix="case-", dir=_TOP)
    try:
        canary = os.path.join(top, "canary")
        os.makedirs(os.path.join(canary, "etc"))
        with open(os.path.join(canary, "etc", "passwd"), "w") as f:
            f.write("root\n")
        os.symlink("canary", os.path.join(top, "link-to-canary"))
        dest = os.path.join(top, "dest")
        os.mkdir(dest)
        before = _outside(top, dest)
        for i, layer in enumerate(stack):
            members = [(n.replace(_CANARY, canary), k,
                        e.replace(_CANARY, canary) if isinstance(e, str)
                        else e) for n, k, e in _fix(layer)]
            try:
                unpack.unpack(io.BytesIO(_tar(members)), dest,
                              image=f"fuzz-{i}", whiteouts=True,
                              existing=True,
                              limits=unpack.Limits(max_files=100,
                                                   max_bytes=1 << 20,
                                                   max_depth=16))
            except exception.InvalidImage:
                pass
        assert _outside(top, dest) == before
    finally:
            shutil.rmtree(top, ignore_errors=True)


def teardown_module(module) -> None:
    shutil.rmtree(_TOP, ignore_errors=True)
