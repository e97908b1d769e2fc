"""The launcher's two-phase spawn on the real kernel: ``begin`` forks the
guest's C1 into its cgroup before the root exists, ``start`` boots it,
``forget`` abandons it; with an id range the user namespace ``begin``
hands out is the one the guest runs in.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import tempfile

import pytest

from pyct_driver import exception
from pyct_driver.virt.process import guest
from pyct_driver.virt.kernel import mounts as sc
from tests.privileged.test_process_launcher import (  # noqa: F401 fixtures
    _booted, _cgroup_pids, _children, _spec, _wait, busybox_root, cgroup,
    launcher, workdir)

ID_RANGE = (3 << 30) + 977 * 65536, 65536
NS_GET_USERNS = 0xB701  # _IO(0xb7, 0x1)


@contextlib.contextmanager
def _late_root(workdir, source):
    """An empty directory now; ``source`` bound onto it when called."""
    path = tempfile.mkdtemp(prefix="pyct-late-root-", dir=workdir)
    try:
        yield path, lambda: sc.mount(source, path, None, sc.MS_BIND)
    finally:
        with contextlib.suppress(OSError):
            sc.umount2(path, sc.MNT_DETACH)
        os.rmdir(path)


def _kill_all(cgroup_dir):
    for pid in _cgroup_pids(cgroup_dir):
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, 9)


def test_root_made_after_begin_boots(launcher, busybox_root, cgroup,
                                     workdir):
    with _late_root(workdir, busybox_root) as (root, make_root):
        s = _spec(root, cgroup, workdir, hostname="pyct-late")
        begun = launcher.begin(s)
        # C1 joins the guest's cgroup and forks the guest's PID 1 there,
        # in a new pid namespace, while the root does not exist yet
        early = _wait(lambda: _in_new_pid_ns(_cgroup_pids(cgroup)),
                      what="the guest's PID 1 in the cgroup")
        assert begun.wait() is None  # privileged: no user namespace
        assert not os.path.exists(os.path.join(root, "sbin", "init"))
        make_root()
        handle = launcher.start(s.uuid)
        try:
            assert early == [handle.pid]
            lpid = launcher.ensure_running()
            _wait(lambda: _children(lpid) & set(_cgroup_pids(cgroup))
                  == {handle.pid}, timeout=5, what="C1 gone")
            assert guest.is_same_process(handle.pid, handle.start_time)
            _wait(_booted(s.console_log, "pyct-guest-booted", "pyct-late"),
                  what="boot messages on the console")
        finally:
            launcher.forget(s.uuid)
            _kill_all(cgroup)


def _in_new_pid_ns(pids) -> list[int]:
    """Those of ``pids`` in a pid namespace other than ours."""
    mine = os.stat("/proc/self/ns/pid").st_ino
    found = []
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):
            if os.stat(f"/proc/{pid}/ns/pid").st_ino != mine:
                found.append(pid)
    return found


def _in_namespaces_of(ns_fd: int, pids) -> list[int]:
    """Those of ``pids`` in ``ns_fd``'s user namespace and a pid
    namespace other than ours."""
    ours = os.fstat(ns_fd)
    mine = os.stat("/proc/self/ns/pid")
    found = []
    for pid in pids:
        try:
            user = os.stat(f"/proc/{pid}/ns/user")
            pidns = os.stat(f"/proc/{pid}/ns/pid")
        except FileNotFoundError:
            continue
        if (user.st_dev, user.st_ino) == (ours.st_dev, ours.st_ino) \
                and pidns.st_ino != mine.st_ino:
            found.append(pid)
    return found


def test_guest_pid1_waits_in_its_namespaces_before_start(
        launcher, busybox_root, cgroup, workdir):
    """``begin`` makes the guest's namespaces and PID 1 while the host
    still makes the root: ``start`` only hands over the root."""
    with _late_root(workdir, busybox_root) as (root, make_root):
        s = _spec(root, cgroup, workdir, id_range=ID_RANGE,
                  hostname="pyct-early")
        ns_fd = launcher.begin(s).wait()
        try:
            early = _wait(lambda: _in_namespaces_of(ns_fd,
                                                    _cgroup_pids(cgroup)),
                          what="the guest's PID 1 before start")
            assert not os.path.exists(os.path.join(root, "sbin", "init"))
            # its mount namespace is staged already: the host's mount
            # tree was detached before the request, one tmpfs is left
            with open(f"/proc/{early[0]}/mountinfo") as f:
                staged = [line.split(" - ")[1].split()[0] for line in f]
            assert staged == ["tmpfs"]
            make_root()
            handle = launcher.start(s.uuid)
            try:
                assert early == [handle.pid]
                _wait(_booted(s.console_log, "pyct-guest-booted",
                              "pyct-early"), what="boot messages")
                # the root bound after C1 took its mount namespace is
                # the guest's /, and no host mount came along
                with open(f"/proc/{handle.pid}/mountinfo") as f:
                    points = [line.split()[4] for line in f]
                assert "/" in points and "/proc" in points
                assert not [p for p in points if p.startswith(workdir)]
                assert os.path.exists(f"/proc/{handle.pid}/root/sbin/init")
            finally:
                launcher.forget(s.uuid)
                _kill_all(cgroup)
        finally:
            os.close(ns_fd)


def test_forget_abandons_a_begun_guest(launcher, busybox_root, cgroup,
                                       workdir):
    s = _spec(busybox_root, cgroup, workdir)
    begun = launcher.begin(s)
    assert begun.wait() is None
    _wait(lambda: _cgroup_pids(cgroup), what="C1 in the cgroup")
    lpid = launcher.ensure_running()
    launcher.forget(s.uuid)
    _wait(lambda: not _cgroup_pids(cgroup), timeout=5, what="C1 to exit")
    _wait(lambda: not _children(lpid), timeout=5, what="C1 reaped")
    with pytest.raises(exception.ProcessError):
        launcher.start(s.uuid)
    assert "pyct-guest-booted" not in guest.read_console(s.console_log)


def test_guest_runs_in_the_user_namespace_begin_gave(launcher, busybox_root,
                                                     cgroup, workdir):
    s = _spec(busybox_root, cgroup, workdir, id_range=ID_RANGE)
    ns_fd = launcher.begin(s).wait()
    assert ns_fd is not None
    try:
        handle = launcher.start(s.uuid)
        try:
            guest_ns = os.stat(f"/proc/{handle.pid}/ns/user")
            ours = os.fstat(ns_fd)
            assert (guest_ns.st_dev, guest_ns.st_ino) == \
                (ours.st_dev, ours.st_ino)
            with open(f"/proc/{handle.pid}/uid_map") as f:
                assert f.read().split() == ["0", str(ID_RANGE[0]),
                                            str(ID_RANGE[1])]
            with open(f"/proc/{handle.pid}/status") as f:
                uids = next(line for line in f if line.startswith("Uid:"))
            assert uids.split()[1:] == [str(ID_RANGE[0])] * 4
            # every other namespace of the guest belongs to that one
            for ns in ("net", "uts", "ipc", "pid", "cgroup", "mnt"):
                fd = os.open(f"/proc/{handle.pid}/ns/{ns}", os.O_RDONLY)
                try:
                    owner = _owner_ns(fd)
                    try:
                        st = os.fstat(owner)
                    finally:
                        os.close(owner)
                finally:
                    os.close(fd)
                assert (st.st_dev, st.st_ino) == \
                    (ours.st_dev, ours.st_ino), ns
        finally:
            launcher.forget(s.uuid)
            _kill_all(cgroup)
    finally:
        os.close(ns_fd)


def _owner_ns(fd: int) -> int:
    """An fd of the user namespace owning namespace ``fd``."""
    return fcntl.ioctl(fd, NS_GET_USERNS)
