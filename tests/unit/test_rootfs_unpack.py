"""The safe unpacker against hostile archives built here with tarfile."""

from __future__ import annotations

import io
import os
import stat
import tarfile

import hypothesis
import pytest
from hypothesis import strategies as st

from pyct_driver import exception
from pyct_driver.virt.rootfs import unpack


def _tar(members, compression: str = "") -> io.BytesIO:
    """members: (name, kind, extra) with kind file/dir/sym/hard/chr/fifo."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:" + compression) as tar:
        for name, kind, extra in members:
            ti = tarfile.TarInfo(name)
            ti.mtime = 1_600_000_000
            data = None
            if kind == "file":
                payload = (extra or b"x") if isinstance(extra, bytes) \
                    else b"x"
                ti.size, data = len(payload), io.BytesIO(payload)
                ti.mode = extra if isinstance(extra, int) else 0o644
            elif kind == "dir":
                ti.type, ti.mode = tarfile.DIRTYPE, 0o755
            elif kind == "sym":
                ti.type, ti.linkname = tarfile.SYMTYPE, extra
            elif kind == "hard":
                ti.type, ti.linkname = tarfile.LNKTYPE, extra
            elif kind == "chr":
                ti.type, ti.devmajor, ti.devminor = tarfile.CHRTYPE, 1, 3
            elif kind == "fifo":
                ti.type = tarfile.FIFOTYPE
            tar.addfile(ti, data)
    buf.seek(0)
    return buf


@pytest.fixture
def sandbox(tmp_path):
    """dest (not yet created) and a canary tree beside it."""
    canary = tmp_path / "canary"
    (canary / "etc").mkdir(parents=True)
    (canary / "etc" / "passwd").write_text("root:x:0:0\n")
    return tmp_path / "dest", canary


def _snapshot(root) -> dict:
    out = {}
    for dirpath, dirnames, filenames in os.walk(root):
        for name in dirnames + filenames:
            p = os.path.join(dirpath, name)
            st_ = os.lstat(p)
            body = open(p, "rb").read() if stat.S_ISREG(st_.st_mode) else b""
            out[p] = (st_.st_mode, st_.st_nlink, body)
    return out


def _refused(src, dest, canary, match: str, **kw) -> None:
    before = _snapshot(canary)
    with pytest.raises(exception.HostileImage, match=match):
        unpack.unpack(src, str(dest), image="img", **kw)
    assert _snapshot(canary) == before
    if not kw.get("existing"):
        assert not dest.exists(), "partial destination left behind"


def test_good_archive_round_trip(sandbox):
    dest, _ = sandbox
    for comp in ("", "gz", "xz"):
        d = dest.parent / f"ok-{comp or 'plain'}"
        res = unpack.unpack(_tar([("./a", "dir", None),
                                  ("./a/f", "file", b"hello"),
                                  ("./a/l", "sym", "f"),
                                  ("./a/h", "hard", "a/f")], comp), str(d))
        assert (d / "a" / "f").read_bytes() == b"hello"
        assert os.readlink(d / "a" / "l") == "f"
        assert os.stat(d / "a" / "h").st_ino == os.stat(d / "a" / "f").st_ino
        assert os.stat(d / "a").st_mtime == 1_600_000_000
        assert res.files == 4 and res.bytes == 5


@pytest.mark.parametrize("name,match", [
    ("../evil", "'..'"), ("a/../../evil", "'..'"),
    ("/etc/evil", "absolute"), ("a/b/..", "'..'")])
def test_bad_names(sandbox, name, match):
    dest, canary = sandbox
    _refused(_tar([("ok", "file", None), (name, "file", None)]), dest,
             canary, match)


def test_symlink_to_root_then_write_through(sandbox):
    dest, canary = sandbox
    _refused(_tar([("etc", "sym", str(canary / "etc")),
                   ("etc/passwd", "file", b"pwned")]), dest, canary,
             "etc/passwd.*points outside")


def test_relative_symlink_escape(sandbox):
    dest, canary = sandbox
    _refused(_tar([("x", "sym", "../canary/etc"),
                   ("x/passwd", "file", b"pwned")]), dest, canary,
             "escapes")


def test_symlink_chain(sandbox):
    dest, canary = sandbox
    _refused(_tar([("a", "sym", "b"), ("b", "sym", "c/../d"),
                   ("c", "dir", None), ("d", "sym", str(canary)),
                   ("a/etc/passwd", "file", b"pwned")]), dest, canary,
             "points outside")


def test_symlink_inside_is_followed(sandbox):
    dest, _ = sandbox
    unpack.unpack(_tar([("usr/lib", "dir", None), ("lib", "sym", "usr/lib"),
                        ("lib/x.so", "file", b"so")]), str(dest))
    assert (dest / "usr" / "lib" / "x.so").read_bytes() == b"so"
    assert os.path.islink(dest / "lib")


def test_symlink_across_two_layers_flattened(sandbox):
    dest, canary = sandbox
    unpack.unpack(_tar([("etc", "sym", str(canary / "etc"))]), str(dest))
    _refused(_tar([("etc/passwd", "file", b"pwned")]), dest, canary,
             "points outside", existing=True)


@pytest.mark.parametrize("target", ["/etc/passwd", "../canary/etc/passwd",
                                    "nonexistent"])
def test_hardlinks_refused(sandbox, target):
    dest, canary = sandbox
    _refused(_tar([("h", "hard", target)]), dest, canary,
             "(absolute|'..'|not a regular file)")


def test_hardlink_to_symlink_member_refused(sandbox):
    dest, canary = sandbox
    _refused(_tar([("s", "sym", str(canary / "etc" / "passwd")),
                   ("h", "hard", "s")]), dest, canary, "not a regular file")


def test_devices_neutralised_and_setuid_stripped(sandbox):
    dest, _ = sandbox
    res = unpack.unpack(_tar([("null", "chr", None), ("p", "fifo", None),
                              ("su", "file", 0o6755)]), str(dest))
    assert res.devices_skipped == 2
    assert not (dest / "null").exists() and not (dest / "p").exists()
    assert stat.S_IMODE(os.stat(dest / "su").st_mode) == 0o755


def test_too_deep(sandbox):
    dest, canary = sandbox
    _refused(_tar([("/".join(["d"] * 20) + "/f", "file", None)]), dest,
             canary, "deeper than 10", limits=unpack.Limits(max_depth=10))


def test_too_many_files(sandbox):
    dest, canary = sandbox
    _refused(_tar([(f"f{i}", "file", None) for i in range(11)]), dest,
             canary, "more than 10 members",
             limits=unpack.Limits(max_files=10))


def test_huge_declared_size_refused_before_reading(sandbox):
    dest, canary = sandbox
    ti = tarfile.TarInfo("huge")
    ti.size = 1 << 40  # a header only: no data follows
    src = io.BytesIO(ti.tobuf(format=tarfile.PAX_FORMAT) + bytes(1024))
    _refused(src, dest, canary, "declares more than",
             limits=unpack.Limits(max_bytes=1 << 30))


def test_garbage_is_invalid_not_hostile(sandbox):
    dest, _ = sandbox
    with pytest.raises(exception.InvalidImage):
        unpack.unpack(io.BytesIO(b"\x1f\x8bnot gzip at all" * 50), str(dest))
    assert not dest.exists()


_NAMES = st.lists(st.sampled_from(["a", "b", "..", "", ".", "c"]),
                  min_size=1, max_size=4).map("/".join)
_MEMBER = st.tuples(
    st.one_of(_NAMES, _NAMES.map(lambda n: "/" + n)),
    st.sampled_from(["file", "dir", "sym", "hard"]),
    st.one_of(_NAMES, _NAMES.map(lambda n: "/" + n),
              st.sampled_from(["../canary", "../canary/etc", "/", "..",
                               "../../.."])))


@hypothesis.settings(max_examples=200, deadline=None,
                     suppress_health_check=[
                         hypothesis.HealthCheck.function_scoped_fixture])
@hypothesis.given(st.lists(_MEMBER, min_size=1, max_size=8))
def test_fuzz_nothing_outside_changes(tmp_path, members):
    import tempfile
    with tempfile.TemporaryDirectory(dir=tmp_path) as top:
        canary = os.path.join(top, "canary")
        os.makedirs(os.path.join(canary, "etc"))
        with open(os.path.join(canary, "etc", "passwd"), "w") as f:
            f.write("root\n")
        os.symlink("canary", os.path.join(top, "link-to-canary"))
        before = _snapshot(top)
        dest = os.path.join(top, "dest")
        fixed = [(n, k, (e.encode() if k == "file" else e))
                 for n, k, e in members]
        try:
            unpack.unpack(_tar(fixed), dest, image="fuzz")
        except exception.InvalidImage:
            assert not os.path.exists(dest)
        after = _snapshot(top)
        outside = {p: v for p, v in after.items()
                   if not p.startswith(dest + "/") and p != dest}
        assert outside == before
