"""The view service's supervisor without lxcfs: it never invents a
service, only ever signals the lxcfs serving its own directory, adopts
what a previous compute service left (live, or started but unpublished)
instead of starting another, and publishes only the anchors it made --
listed, never looked up through a possibly dead service."""

from __future__ import annotations

import os

import pytest

from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.process.caller import viewservice
from pyct_driver.virt.process.guestinit import views


def test_without_lxcfs_guests_get_no_views(tmp_path):
    svc = viewservice.ViewService(str(tmp_path),
                                  binary="no-such-lxcfs-binary")
    assert not svc.live()
    assert svc.ensure() is None
    assert svc.recover() is False and svc.restarts == 0
    assert svc.service_pid() is None


def test_a_recycled_pid_is_not_taken_for_the_service(tmp_path):
    svc = viewservice.ViewService(str(tmp_path))
    with open(svc.pid_file, "w") as f:
        f.write(str(os.getpid()))  # this test's python, not lxcfs
    assert svc.service_pid() is None


def test_a_stopped_service_is_not_restarted_by_its_watcher(tmp_path,
                                                            monkeypatch):
    started = []
    svc = viewservice.ViewService(str(tmp_path))
    monkeypatch.setattr(km, "umount2", lambda *a: None)
    svc.ensure = lambda: started.append(1)  # would start one
    svc.stop()
    assert svc.recover() is False and not started


def test_a_live_service_is_adopted_not_started(tmp_path, monkeypatch):
    """A restarted compute service: the anchors answer, so ``ensure``
    hands them out and ``recover`` counts no restart."""
    svc = viewservice.ViewService(str(tmp_path))
    anchors = tmp_path / "files" / "proc"
    anchors.mkdir(parents=True)
    (anchors / "uptime").write_text("1.0 1.0\n")  # the probe answers
    monkeypatch.setattr(svc, "_start", lambda: 1 / 0)
    assert svc.live()
    assert svc.ensure() == svc.files_dir
    assert svc.recover() is False and svc.restarts == 0


def test_a_started_but_unpublished_service_is_published(tmp_path,
                                                        monkeypatch):
    """lxcfs answers at its own mount but its files never reached the
    anchors (the compute service died in between): publish it, start no
    second lxcfs."""
    svc = viewservice.ViewService(str(tmp_path), binary="true")
    published = []
    monkeypatch.setattr(svc, "_serving", lambda: True)
    monkeypatch.setattr(svc, "_start", lambda: 1 / 0)
    monkeypatch.setattr(svc, "_publish", lambda: published.append(1) or 1)
    assert svc.recover() is True and svc.restarts == 1
    assert published == [1]


def test_publish_pairs_the_listed_anchors_then_detaches(tmp_path,
                                                        monkeypatch):
    """Each anchor the service made gets a pair of binds of the new file
    (staged on a private tmpfs); the staging tmpfs and then the
    service's own mount are detached, so its tree is never walked
    again."""
    svc = viewservice.ViewService(str(tmp_path))
    for rel in ("proc/meminfo", "proc/uptime"):
        os.makedirs(os.path.dirname(os.path.join(svc.files_dir, rel)),
                    exist_ok=True)
        open(os.path.join(svc.files_dir, rel), "w").close()
    calls = []
    stage = os.path.join(svc.directory, "stage")
    monkeypatch.setattr(os.path, "ismount", lambda p: True)
    monkeypatch.setattr(km, "mount", lambda src, dst, fstype, flags, *a:
                        calls.append(("mount", fstype, dst, flags)))
    monkeypatch.setattr(viewservice, "_pair", lambda src, staged, anchor:
                        calls.append(("pair", os.path.relpath(
                            src, svc.mount_dir), os.path.relpath(
                            staged, stage), os.path.relpath(
                            anchor, svc.files_dir))))
    monkeypatch.setattr(km, "umount2", lambda path, flags: calls.append(
        ("detach", path, flags)))
    assert svc._publish() is True
    assert calls == [
        ("mount", "tmpfs", stage, km.MS_NOSUID | km.MS_NODEV
         | km.MS_NOEXEC),
        ("mount", None, stage, km.MS_PRIVATE),
        ("pair", "proc/meminfo", "proc_meminfo", "proc/meminfo"),
        ("pair", "proc/uptime", "proc_uptime", "proc/uptime"),
        ("detach", stage, km.MNT_DETACH),
        ("detach", svc.mount_dir, km.MNT_DETACH)]


def test_publish_failure_is_reported_not_raised(tmp_path, monkeypatch):
    svc = viewservice.ViewService(str(tmp_path))
    os.makedirs(os.path.join(svc.files_dir, "proc"))
    open(os.path.join(svc.files_dir, "proc", "meminfo"), "w").close()
    monkeypatch.setattr(os.path, "ismount", lambda p: True)

    def enoent(*args):
        raise OSError(2, "No such file or directory")

    monkeypatch.setattr(km, "mount", enoent)
    assert svc._publish() is False


def test_the_guest_binds_only_what_the_service_publishes(tmp_path,
                                                         monkeypatch):
    """A view file the kernel has but the service does not publish (an
    older lxcfs) keeps the kernel's; one the guest lacks is skipped."""
    root, anchors = tmp_path / "root", tmp_path / "files"
    for rel in ("proc/meminfo", "proc/cpuinfo"):
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_text("")
    for rel in ("proc/meminfo", "proc/stat"):
        (anchors / rel).parent.mkdir(parents=True, exist_ok=True)
        (anchors / rel).write_text("")
    cloned, bound = [], []
    fds = iter(range(1000, 1010))

    def clone(src, flags):
        cloned.append(src)
        fd = next(fds)
        os.dup2(0, fd)  # a descriptor bind_views may close
        return fd

    monkeypatch.setattr(km, "open_tree", clone)
    monkeypatch.setattr(km, "move_mount", lambda fd, _dirfd, dst: bound.append(
        (fd, dst)))
    held = views.clone_views(str(anchors))
    assert cloned == [str(anchors / "proc/meminfo"),
                      str(anchors / "proc/stat")]
    monkeypatch.chdir(root)
    views.bind_views(held)
    assert bound == [(1000, "proc/meminfo")]
    assert held == []  # closed
    with pytest.raises(OSError):
        os.fstat(1001)


def test_an_adopted_service_left_attached_is_detached(tmp_path,
                                                      monkeypatch):
    """Published, but the compute service died before it detached
    lxcfs' own mount: the next ``ensure`` detaches it (a walk of its tree
    after it died would leave its published files unable to take the
    next service's on top)."""
    svc = viewservice.ViewService(str(tmp_path))
    anchors = tmp_path / "files" / "proc"
    anchors.mkdir(parents=True)
    (anchors / "uptime").write_text("1.0 1.0\n")
    detached = []
    monkeypatch.setattr(os.path, "ismount", lambda p: p == svc.mount_dir)
    monkeypatch.setattr(km, "umount2", lambda path, flags: detached.append(
        (path, flags)))
    assert svc.ensure() == svc.files_dir
    assert detached == [(svc.mount_dir, km.MNT_DETACH)]
