"""The device allow-list on the real kernel: v1 devices cgroup and v2 BPF.

A child interpreter blocks on stdin until the test has moved it into the
group, then tries the allowed nodes and the host's root disk (open of the
disk itself, mknod of a node with its numbers, open of a node the test made
outside the group) and prints the errno of each. The test process, outside
any restricted group, makes the same host-disk node first: the EPERM seen
inside comes from the group, not from the filesystem.
"""

import json
import os
import stat
import subprocess
import sys
import tempfile
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.cgroups import base
from pyct_driver.virt.cgroups import devices_bpf
from pyct_driver.virt.cgroups import v1

ROOT = "/sys/fs/cgroup"
# the hybrid host's cgroup2 mount, or the root itself on a v2-only kernel
UNIFIED = ("/sys/fs/cgroup/unified"
           if os.path.isdir("/sys/fs/cgroup/unified") else "/sys/fs/cgroup")

CHILD = r'''
import errno, json, os, stat, sys
sys.stdin.readline()
tmp, disk, host_node, maj, mnr = sys.argv[1:6]
maj, mnr = int(maj), int(mnr)

def attempt(func):
    try:
        func()
        return "ok"
    except OSError as err:
        return errno.errorcode[err.errno]

def open_close(path, flags):
    os.close(os.open(path, flags))

res = {
    "null_rw": attempt(lambda: open_close("/dev/null", os.O_RDWR)),
    "urandom_r": attempt(lambda: open_close("/dev/urandom", os.O_RDONLY)),
    "zero_r": attempt(lambda: open_close("/dev/zero", os.O_RDONLY)),
    "disk_open": attempt(lambda: open_close(disk, os.O_RDONLY)),
    "host_node_open": attempt(lambda: open_close(host_node, os.O_RDONLY)),
    "mknod_disk": attempt(lambda: os.mknod(
        os.path.join(tmp, "blk"), stat.S_IFBLK | 0o600,
        os.makedev(maj, mnr))),
    "mknod_null": attempt(lambda: os.mknod(
        os.path.join(tmp, "null"), stat.S_IFCHR | 0o600, os.makedev(1, 3))),
    "mknod_pts": attempt(lambda: os.mknod(
        os.path.join(tmp, "pts9"), stat.S_IFCHR | 0o600,
        os.makedev(136, 9))),
    "mknod_mem": attempt(lambda: os.mknod(
        os.path.join(tmp, "mem"), stat.S_IFCHR | 0o600, os.makedev(1, 1))),
    "mknod_kmsg": attempt(lambda: os.mknod(
        os.path.join(tmp, "kmsg"), stat.S_IFCHR | 0o600, os.makedev(1, 11))),
}
print(json.dumps(res))
'''


def _root_disk():
    dev = os.stat("/").st_dev
    for name in os.listdir("/dev"):
        path = os.path.join("/dev", name)
        st = os.lstat(path)
        if stat.S_ISBLK(st.st_mode) and st.st_rdev == dev:
            return path, os.major(dev), os.minor(dev)
    pytest.fail(f"no /dev node for the root disk {os.major(dev)}:"
                f"{os.minor(dev)}")


def _openable_block_device():
    """A block device this test may open outside any group (the baseline).

    This host refuses even root an open of the mounted root disk, so the
    "host disk node" is made from a device that does open here.
    """
    for name in sorted(os.listdir("/dev")):
        path = os.path.join("/dev", name)
        st = os.lstat(path)
        if stat.S_ISBLK(st.st_mode):
            try:
                os.close(os.open(path, os.O_RDONLY | os.O_CLOEXEC))
            except OSError:
                continue
            return st.st_rdev
    pytest.fail("no block device opens here, even outside a group")


@pytest.fixture
def probe():
    """run(join) -> results; join(pid) moves the child into the group."""
    disk, maj, mnr = _root_disk()
    tmp = tempfile.mkdtemp(prefix="pyct-devices-")
    host_node = os.path.join(tmp, "host-made")
    os.mknod(host_node, stat.S_IFBLK | 0o600, _openable_block_device())
    procs = []

    def run(join):
        p = subprocess.Popen(
            [sys.executable, "-c", CHILD, tmp, disk, host_node, str(maj),
             str(mnr)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            text=True)
        procs.append(p)
        join(p.pid)
        out, _ = p.communicate("go\n", timeout=30)
        assert p.returncode == 0
        return json.loads(out)

    yield run
    for p in procs:
        if p.poll() is None:
            p.kill()
            p.wait()
    for name in os.listdir(tmp):
        os.unlink(os.path.join(tmp, name))
    os.rmdir(tmp)


def _check_restricted(res):
    assert res["null_rw"] == res["urandom_r"] == res["zero_r"] == "ok"
    assert res["mknod_null"] == res["mknod_pts"] == "ok"
    for key in ("disk_open", "host_node_open", "mknod_disk", "mknod_mem",
                "mknod_kmsg"):
        assert res[key] == "EPERM", (key, res)


def test_unrestricted_baseline(probe):
    res = probe(lambda pid: None)
    assert res["host_node_open"] == "ok"
    assert res["mknod_disk"] == res["mknod_mem"] == "ok"


@pytest.fixture
def v1_backend():
    parent = f"pyct-test-{uuid.uuid4().hex[:8]}"
    be = v1.V1Backend(ROOT, parent)
    yield be
    for name in be.list_groups():
        try:
            be.destroy(name)
        except exception.CgroupError:
            pass
    for m in {os.path.realpath(os.path.join(ROOT, c))
              for c in (*v1.CONTROLLERS, "systemd")}:
        path = os.path.join(m, parent)
        if os.path.isdir(path):
            os.rmdir(path)


def test_v1_allow_list(v1_backend, probe):
    be = v1_backend
    limits = base.limits_from_flavor(1, 256, 0, {}, 100, None)
    be.create("pyct-dev", limits)
    devs = os.path.join(ROOT, "devices", be.parent)
    want = set(base.DEFAULT_DEVICES)
    for path in (devs, os.path.join(devs, "pyct-dev")):
        with open(os.path.join(path, "devices.list")) as f:
            assert set(f.read().split("\n")) - {""} == want
    _check_restricted(probe(lambda pid: be.add_pid("pyct-dev", pid)))
    # A resize re-applies the unchanged list without error, even with a
    # sub-group (where "deny a" would be refused).
    os.mkdir(os.path.join(devs, "pyct-dev", "sub"))
    be.create("pyct-dev", limits)


def test_v1_guest_cannot_widen_its_own_list(v1_backend):
    be = v1_backend
    be.create("pyct-dev", base.limits_from_flavor(1, 256, 0, {}, 100, None))
    allow = os.path.join(ROOT, "devices", be.parent, "pyct-dev",
                         "devices.allow")
    # What guest root could write from inside its cgroup namespace.
    with pytest.raises(PermissionError):
        with open(allow, "w") as f:
            f.write("a *:* rwm")


def test_v1_device_outside_parent_list_refused(v1_backend):
    be = v1_backend
    limits = base.limits_from_flavor(1, 256, 0, {}, 100, None)
    be.create("pyct-ok", limits)
    with pytest.raises(exception.CgroupError):
        be.create("pyct-bad", base.CgroupLimits(
            **{**limits.__dict__, "devices": ("b 254:0 r",)}))
    assert not be.exists("pyct-bad")


@pytest.fixture
def v2_group():
    path = os.path.join(UNIFIED, f"pyct-test-{uuid.uuid4().hex[:8]}")
    os.mkdir(path)
    fds = []
    yield path, fds
    with open(os.path.join(path, "cgroup.procs")) as f:
        assert f.read().strip() == ""  # probe() reaped its children
    for fd in fds:
        try:
            devices_bpf.detach_fd(path, fd)
        except exception.CgroupError:
            pass
        os.close(fd)
    for sub in os.listdir(path):
        if os.path.isdir(os.path.join(path, sub)):
            os.rmdir(os.path.join(path, sub))
    os.rmdir(path)


def _join_v2(path):
    def join(pid):
        with open(os.path.join(path, "cgroup.procs"), "w") as f:
            f.write(str(pid))
    return join


def test_v2_bpf_allow_list(v2_group, probe):
    path, fds = v2_group
    assert devices_bpf.is_cgroup2(path)
    fds.append(devices_bpf.load(base.DEFAULT_DEVICES))
    devices_bpf.attach_fd(path, fds[-1])
    _check_restricted(probe(_join_v2(path)))


def test_v2_replace_and_no_override_below(v2_group, probe):
    path, fds = v2_group
    fds.append(devices_bpf.load(("a *:* rwm",)))
    devices_bpf.attach_fd(path, fds[-1])
    # attach() replaces the permissive program (a resize re-applies).
    devices_bpf.attach(path, base.DEFAULT_DEVICES)
    sub = os.path.join(path, "sub")
    os.mkdir(sub)
    _check_restricted(probe(_join_v2(sub)))
    with pytest.raises(exception.CgroupError) as err:
        devices_bpf.attach(sub, ("a *:* rwm",))
    assert err.value.kwargs["errno"] == 1  # EPERM
