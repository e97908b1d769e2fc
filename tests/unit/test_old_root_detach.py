"""The mount helper's wait for the old root's detach (issue #16): C1
detaches the old root after the helper's pivot_root, so its RCU grace
period runs beside the helper's last mounts; the helper lets the init
copy the namespace only once the old root is gone, and detaches it
itself if C1 does not."""

from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.process.guestinit import mounts

MOUNTINFO = """\
21 20 0:40 / / rw,relatime - overlay overlay rw,lowerdir=3
25 21 0:41 / / rw,relatime - tmpfs tmpfs rw,size=16k,mode=700
26 21 0:42 / /proc rw,nosuid,nodev,noexec - proc proc rw
"""


def test_counts_the_mounts_stacked_at_the_root(tmp_path):
    path = tmp_path / "mountinfo"
    path.write_text(MOUNTINFO)
    assert mounts._mounts_at_root(str(path)) == 2
    path.write_text(MOUNTINFO.replace(" / / rw,relatime - tmpfs",
                                      " / /run rw,relatime - tmpfs"))
    assert mounts._mounts_at_root(str(path)) == 1


def test_waits_until_the_detacher_detached(monkeypatch):
    seen = iter([2, 2, 1])
    detached = []
    monkeypatch.setattr(mounts, "_mounts_at_root", lambda: next(seen))
    monkeypatch.setattr(km, "umount2", lambda *a: detached.append(a))
    mounts.wait_detached(timeout=5)
    assert detached == []
    assert next(seen, None) is None  # polled until it was gone


def test_detaches_it_itself_past_the_timeout(monkeypatch):
    detached = []
    monkeypatch.setattr(mounts, "_mounts_at_root", lambda: 2)
    monkeypatch.setattr(km, "umount2", lambda *a: detached.append(a))
    mounts.wait_detached(timeout=0.01)
    assert detached == [(".", km.MNT_DETACH)]
