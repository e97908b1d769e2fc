"""pyct picks the cgroup backend the running kernel needs: v1 here, v2 in the lane.

This CI host binds every controller to a v1 hierarchy, so ``detect_backend``
must give ``V1Backend``; inside the v2 lane's VM (``make test-v2``, booted
with ``cgroup_no_v1=all``; it sets PYCT_V2LANE=1) the same test must see a
cgroup2 mount with the controllers at /sys/fs/cgroup and get ``V2Backend``.
What the kernel shows is checked independently of detect.py's own reading,
so a wrong detection on either kind of host fails here.
"""

import os

from pyct_driver.virt.cgroups import detect
from pyct_driver.virt.cgroups import v1
from pyct_driver.virt.cgroups import v2

ROOT = "/sys/fs/cgroup"
EXPECTED = "v2" if os.environ.get("PYCT_V2LANE") == "1" else "v1"


def _mounts():
    out = []
    with open("/proc/self/mountinfo") as f:
        for line in f:
            left, _, right = line.partition(" - ")
            out.append((left.split()[4], right.split()[0]))
    return out


def _kernel_layout():
    """"v2" when /sys/fs/cgroup is a cgroup2 mount holding cpu, memory, io
    and pids and no v1 hierarchy is mounted; "v1" when cpu and memory are
    bound to v1 hierarchies."""
    mounts = _mounts()
    v1_mounts = [m for m, fstype in mounts if fstype == "cgroup"]
    if (ROOT, "cgroup2") in mounts and not v1_mounts:
        with open(os.path.join(ROOT, "cgroup.controllers")) as f:
            if {"cpu", "memory", "io", "pids"} <= set(f.read().split()):
                return "v2"
    # /proc/cgroups: a non-zero hierarchy id means a v1 hierarchy holds it
    with open("/proc/cgroups") as f:
        rows = [line.split() for line in f if not line.startswith("#")]
    bound = {row[0] for row in rows if row[1] != "0"}
    if {"cpu", "memory"} <= bound and v1_mounts:
        return "v1"
    return "neither"


def test_detect_picks_the_kernels_hierarchy():
    assert _kernel_layout() == EXPECTED
    backend = detect.detect_backend(ROOT, f"pyct-test-{os.getpid()}")
    want = v2.V2Backend if EXPECTED == "v2" else v1.V1Backend
    assert type(backend) is want
    assert backend.list_groups() == []  # detection creates nothing
