"""The container driver's rescue and suspend on real guests.

Rescue: the guest boots from a fresh root of the rescue image with its
own root at /mnt (a file written before is there, a file written at /mnt
is in its root after unrescue, what the rescue root got is thrown
away), root's password is set in the rescue root, and the rescue guest
is confined exactly as the guest: same user namespace map, capabilities
and seccomp mode, and its /mnt is the guest's own overlay (the same
mount source and options its "/" shows, no other host path); a rescue
image whose /mnt is a symlink up and out gets the guest's root inside the
rescue root, never on the host's path. Destroying
a rescued guest leaves neither root. Suspend: a frozen guest uses no CPU
while a busy loop runs in it, a new driver on the same state (a compute
restart) still sees it suspended and frozen, resume keeps its init; with
a stand-in ``criu`` whose ``check`` passes and whose dump fails, the
suspend falls back to freezing and the guest survives.
"""

from __future__ import annotations

import os
import tarfile
import time

import pytest

from pyct_driver import states
from pyct_driver.virt.container import ContainerDriver
from pyct_driver.virt.criu import Criu
from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
from tests.privileged.e2e_fixtures import mounts_with
from tests.privileged.test_e2e_root_password import \
    _matches as password_matches
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    IMAGE_ID, busybox_image, cpu_ns, driver, guest_exec, guests, init_pid,
    make_conf, wait_for)

BUSY = ["/bin/sh", "-c", "while :; do :; done"]


def sh(drv, uuid, script, **kw):
    return guest_exec(drv, uuid, ["sh", "-c", script], **kw)


def mount_line(drv, uuid, point):
    """The fields after " - " of the guest's mountinfo line for
    ``point`` (fstype, source, super options)."""
    out = sh(drv, uuid, "cat /proc/self/mountinfo").stdout
    for line in out.splitlines():
        fields = line.split()
        if fields[4] == point:
            return line.split(" - ", 1)[1]
    raise AssertionError(f"no {point} in {out}")


def host_paths(options: str) -> set[str]:
    """The absolute paths a mountinfo line's options name."""
    for sep in ",=:":
        options = options.replace(sep, " ")
    return {w for w in options.split() if w.startswith("/")}


def confinement(drv, uuid):
    status = sh(drv, uuid, "cat /proc/self/status").stdout
    keep = ("CapEff", "CapBnd", "CapPrm", "Seccomp", "NoNewPrivs")
    return (sh(drv, uuid, "cat /proc/self/uid_map").stdout.split(),
            sh(drv, uuid, "cat /proc/self/gid_map").stdout.split(),
            sorted(ln for ln in status.splitlines()
                   if ln.split(":")[0] in keep))


def rescue_dir(drv, uuid):
    return os.path.join(drv.roots.base_dir, "instances", uuid + "-rescue")


def test_rescue_boots_rescue_root_with_own_root_at_mnt(driver, guests):
    spec = guests.boot()
    uuid = spec.uuid
    sh(driver, uuid, "echo before > /before-rescue")
    normal = confinement(driver, uuid)
    own_root = mount_line(driver, uuid, "/")
    driver.rescue(spec, IMAGE_ID, "Rescue-pw1", timeout=5)
    assert driver.get_info(spec).power_state == states.RUNNING
    assert os.path.isdir(rescue_dir(driver, uuid))
    # the rescue root is fresh: the guest's own file only under /mnt
    assert sh(driver, uuid, "cat /mnt/before-rescue").stdout == "before\n"
    assert sh(driver, uuid, "test -e /before-rescue",
              check=False).returncode == 1
    sh(driver, uuid, "echo fixed > /mnt/during-rescue; "
                     "echo scratch > /rescue-only")
    # root's password is the rescue's, in the rescue root's shadow only
    line = sh(driver, uuid, "grep ^root: /etc/shadow").stdout.strip()
    hashed = line.split(":")[1]
    assert password_matches("Rescue-pw1", hashed)
    own_shadow = sh(driver, uuid, "grep ^root: /mnt/etc/shadow").stdout
    assert hashed not in own_shadow
    # confined as the guest itself; /mnt is its own overlay, nothing else
    assert confinement(driver, uuid) == normal
    mnt = mount_line(driver, uuid, "/mnt")
    assert mnt.split()[:2] == own_root.split()[:2]  # overlay, same source
    assert host_paths(mnt) == host_paths(own_root)

    pid = init_pid(driver, uuid)
    driver.unrescue(spec)
    assert init_pid(driver, uuid) != pid
    assert not os.path.exists(rescue_dir(driver, uuid))
    assert sh(driver, uuid, "cat /during-rescue /before-rescue").stdout \
        == "fixed\nbefore\n"
    assert sh(driver, uuid, "test -e /rescue-only",
              check=False).returncode == 1
    assert not mounts_with(uuid + "-rescue")
    # idempotent: a guest not in rescue keeps running as it is
    pid = init_pid(driver, uuid)
    driver.unrescue(spec)
    assert init_pid(driver, uuid) == pid


def test_rescued_guest_survives_a_driver_restart_and_is_destroyed_whole(
        driver, guests):
    spec = guests.boot()
    uuid = spec.uuid
    sh(driver, uuid, "echo mine > /mine")
    driver.rescue(spec, IMAGE_ID, "pw", timeout=5)
    pid = init_pid(driver, uuid)
    # a compute restart: a new driver on the same state adopts it as is
    again = ContainerDriver(driver_conf(driver))
    assert again.get_info(spec).power_state == states.RUNNING
    assert init_pid(again, uuid) == pid
    assert sh(again, uuid, "cat /mnt/mine").stdout == "mine\n"
    driver.destroy(spec)
    assert not os.path.exists(rescue_dir(driver, uuid))
    assert not os.path.exists(os.path.join(driver.roots.base_dir,
                                           "instances", uuid))
    wait_for(lambda: not mounts_with(uuid), 5, "mounts released")


def driver_conf(drv):
    return make_conf(drv.test_tmp, drv.cgroups.parent)


def test_suspend_freezes_and_resume_keeps_init(driver, guests):
    spec = guests.boot()
    uuid = spec.uuid
    guest_exec(driver, uuid, BUSY, background=True, guests=guests)
    before = cpu_ns(driver, spec)
    time.sleep(0.3)
    assert cpu_ns(driver, spec) > before  # the loop runs
    pid = init_pid(driver, uuid)
    mode = driver.suspend(spec)
    assert mode.startswith("frozen"), mode
    assert driver.get_info(spec).power_state == states.SUSPENDED_POWER
    used = cpu_ns(driver, spec)
    time.sleep(1.0)
    assert cpu_ns(driver, spec) == used
    # a compute restart: still suspended, still frozen
    again = ContainerDriver(driver_conf(driver))
    assert again.get_info(spec).power_state == states.SUSPENDED_POWER
    assert driver.cgroups.is_frozen(uuid)
    assert "thawed" in driver.resume(spec)
    assert init_pid(driver, uuid) == pid
    assert driver.get_info(spec).power_state == states.RUNNING
    used = cpu_ns(driver, spec)
    time.sleep(0.3)
    assert cpu_ns(driver, spec) > used


@pytest.fixture
def fake_criu(tmp_path):
    """A ``criu`` on a PATH of its own: ``check`` passes, ``dump``
    fails (and says so in its log), as a broken CRIU would."""
    script = tmp_path / "criu"
    script.write_text("#!/bin/sh\n"
                      "case \"$1\" in\n"
                      "check) echo 'Looks good.'; exit 0;;\n"
                      "dump) echo 'Error (criu/cr-dump.c): dump failed' "
                      ">&2; exit 1;;\n"
                      "esac\nexit 2\n")
    script.chmod(0o755)
    return str(tmp_path)


def test_failing_criu_dump_falls_back_to_freezing(driver, guests,
                                                  fake_criu):
    spec = guests.boot()
    pid = init_pid(driver, spec.uuid)
    saved = driver.criu
    driver.criu = Criu(path=fake_criu)
    try:
        assert driver.criu.available
        mode = driver.suspend(spec)
    finally:
        driver.criu = saved
    assert mode.startswith("frozen") and "CRIU checkpoint failed" in mode
    assert "dump failed" in mode
    assert driver.cgroups.is_frozen(spec.uuid)
    assert init_pid(driver, spec.uuid) == pid
    assert not os.path.exists(driver.records.path(spec.uuid, "checkpoint"))
    driver.resume(spec)
    assert init_pid(driver, spec.uuid) == pid
    assert sh(driver, spec.uuid, "echo alive").stdout == "alive\n"


def _image_with_mnt_link(drv, target: str) -> str:
    """A busybox image whose /mnt is a symlink to ``target`` (an image a
    tenant could upload)."""
    base = os.path.join(drv.test_tmp, "busybox-base.tar")
    build_busybox_rootfs(base)
    hostile = os.path.join(drv.test_tmp, "mnt-link.tar")
    with tarfile.open(base) as src, tarfile.open(hostile, "w") as dst:
        for member in src.getmembers():
            if member.name.strip("./") != "mnt":
                dst.addfile(member, src.extractfile(member)
                            if member.isfile() else None)
        link = tarfile.TarInfo("mnt")
        link.type, link.linkname = tarfile.SYMTYPE, target
        dst.addfile(link)
    drv.import_image("mnt-link", hostile)
    return "mnt-link"


def test_rescue_image_mnt_symlink_stays_inside_the_rescue_root(driver,
                                                              guests):
    """A rescue image's /mnt pointing up and out lands the guest's root
    inside the rescue root (resolved as the guest would), never on the
    host's path of that name."""
    image = _image_with_mnt_link(driver, "../../../../../../../tmp")
    spec = guests.boot()
    sh(driver, spec.uuid, "echo before > /before-rescue")
    host_tmp_mounted = os.path.ismount("/tmp")
    host_mounts = open("/proc/self/mountinfo").read().count(" /tmp ")
    driver.rescue(spec, image, "pw", timeout=5)
    assert os.path.ismount("/tmp") == host_tmp_mounted
    assert open("/proc/self/mountinfo").read().count(" /tmp ") == \
        host_mounts
    assert not os.path.exists("/tmp/before-rescue")
    assert sh(driver, spec.uuid, "cat /tmp/before-rescue").stdout == \
        "before\n"
    driver.unrescue(spec)
    assert sh(driver, spec.uuid, "cat /before-rescue").stdout == "before\n"


def test_failing_criu_check_selects_freezing(driver, guests, tmp_path):
    """``criu check`` failing (as Debian's does on this kernel): the dump
    is never tried, the guest is frozen and the event says why."""
    script = tmp_path / "criu"
    script.write_text("#!/bin/sh\n[ \"$1\" = check ] && "
                      "{ echo 'Error: kerndat failed' >&2; exit 1; }\n"
                      "touch \"$0.dumped\"; exit 1\n")
    script.chmod(0o755)
    spec = guests.boot()
    saved = driver.criu
    driver.criu = Criu(path=str(tmp_path))
    try:
        assert not driver.criu.available
        mode = driver.suspend(spec)
    finally:
        driver.criu = saved
    assert mode == ("frozen: the guest's cgroup is frozen (CPU released, "
                    "memory kept); criu check failed: Error: kerndat failed")
    assert not (tmp_path / "criu.dumped").exists()
    assert driver.cgroups.is_frozen(spec.uuid)
    driver.resume(spec)
    assert not driver.cgroups.is_frozen(spec.uuid)
