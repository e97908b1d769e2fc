"""600 guests through the container driver, past the old ceiling of the
fork server's descriptor numbers (issue #16).

The launcher is started from a process whose soft RLIMIT_NOFILE is 1024
(what most shells and units give): it must raise its own limit, and with
600 guests its descriptor numbers pass 1024, where ``select()`` used to
fail every spawn. Each guest is a default one (user namespace, seccomp,
m1.tiny-like busybox, sparse 1 GiB disk). Every guest must be running and
known alive by the launcher; the launcher's descriptors grow by at most
``DESCRIPTORS_PER_GUEST`` per guest; after destroying them all nothing of
theirs is left (cgroups, mounts, loop devices, root dirs, descriptors).
"""

from __future__ import annotations

import os
import resource
import time

import pytest

from pyct_driver import states
from pyct_driver.virt import base
from pyct_driver.virt.process.forkserver import daemon
from tests.privileged.guest_tools import (IMAGE_ID, cgroup_dirs,
                                          container_driver)
from tests.privileged.test_container_lifecycle import _loop_backing
from tests.waiting import wait_for
from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs

GUESTS = 600
# descriptors the launcher may hold that belong to no guest: a request's
# connection, a pipe of a spawn or reap in flight while they are listed
IN_FLIGHT = 8
TINY = base.FlavorSpec(vcpus=1, memory_mb=512, root_gb=1)
LOW_SOFT_NOFILE = 1024


def _fds(pid: int) -> list[int]:
    return sorted(int(fd) for fd in os.listdir(f"/proc/{pid}/fd"))


def _nofile(pid: int) -> tuple[int, int]:
    with open(f"/proc/{pid}/limits") as f:
        line = next(x for x in f if x.startswith("Max open files"))
    return int(line.split()[3]), int(line.split()[4])


def _spec(num: int) -> base.InstanceSpec:
    uuid = f"00000016-dead-4000-8000-{num:012d}"
    # distinct ranges (the database hands them out in production)
    return base.InstanceSpec(
        uuid=uuid, name=f"dense-{num}", hostname=f"dense-{num}",
        flavor=TINY, image_id=IMAGE_ID,
        id_range=((3 << 30) + (8192 + num) * 65536, 65536))


@pytest.fixture
def low_nofile():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (LOW_SOFT_NOFILE, hard))
    try:
        yield
    finally:
        resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))


def test_600_guests_boot_answer_and_leave_nothing(low_nofile):
    overrides = {"container": {"preallocate_images": "none"}}
    with container_driver(overrides) as drv:
        tar = os.path.join(drv.test_tmp, "busybox.tar")
        build_busybox_rootfs(tar)
        drv.import_image(IMAGE_ID, tar)
        launcher = drv.launcher.ensure_running()
        soft, hard = _nofile(launcher)
        # up to the hard limit (and that to the floor, given
        # CAP_SYS_RESOURCE, which this sandbox may lack)
        ours = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
        assert soft == hard >= min(ours, daemon.NOFILE_FLOOR), (soft, hard)
        assert soft > LOW_SOFT_NOFILE
        base_fds = len(_fds(launcher))
        specs, start = [], time.monotonic()
        try:
            for num in range(GUESTS):
                specs.append(_spec(num))
                drv.spawn(specs[-1])
            booted = time.monotonic() - start
            held = _fds(launcher)
            assert max(held) >= 1024, max(held)
            per_guest = (len(held) - base_fds) / GUESTS
            assert len(held) - base_fds <= (
                daemon.DESCRIPTORS_PER_GUEST * GUESTS + IN_FLIGHT), per_guest
            for spec in specs:
                assert drv.get_info(spec).power_state == states.RUNNING
                status = drv.launcher.status(spec.uuid)
                assert status["known"] and status["alive"], status
            checked = time.monotonic() - start - booted
        finally:
            gone = time.monotonic()
            for spec in specs:
                drv.destroy(spec)
            destroyed = time.monotonic() - gone
        wait_for(lambda: len(_fds(launcher)) <= base_fds, timeout=15,
                 what="launcher's per-guest descriptors closed")
        loops = _loop_backing()
        for spec in specs:
            assert not cgroup_dirs(drv, spec.uuid), spec.uuid
            assert not [n for n, f in loops.items() if spec.uuid in f]
        assert not [line for line in open("/proc/mounts")
                    if "00000016-dead-4000" in line]
        assert drv.roots.list_instances() == []
        print(f"\n{GUESTS} guests: booted in {booted:.1f} s "
              f"({booted / GUESTS * 1000:.1f} ms each), checked in "
              f"{checked:.1f} s, destroyed in {destroyed:.1f} s; launcher "
              f"descriptors {base_fds} -> {len(held)} "
              f"({per_guest:.2f} per guest, highest {max(held)}), "
              f"open files limit {soft}; load {os.getloadavg()[0]:.1f}")
