"""A Debian guest (systemd as PID 1) on a cgroup v2 kernel (the v2 lane).

What a systemd guest needs from v2 delegation and what it must not get:
systemd boots (``systemctl is-system-running`` answers running or
degraded), sees its own group as the root of its cgroup2 mount, makes its
own sub-groups (init.scope, system.slice) in the subtree the host delegated
to it, and still cannot raise the flavor's limits on that group from inside
(the namespace root is a delegation boundary with ``nsdelegate``). The
image is the host's cached tarball (``PYCT_TEST_DEBIAN_TAR``, shared into
the VM by tools/v2lane/run.sh). Boot timings are printed.
"""

from __future__ import annotations

import os
import time

from tests.privileged.debian_fixtures import (  # noqa: F401 - fixtures
    debian_image, seeded)
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    cgroup_dirs, driver, flavor, group_file, guest_exec, make_spec,
    read_group, wait_for)

_MiB = 1 << 20


def _sh(drv, spec, script: str, check: bool = True,
        timeout: float = 60) -> str:
    return guest_exec(drv, spec.uuid, ["/bin/sh", "-c", script],
                      check=check, timeout=timeout).stdout.strip()


def test_systemd_guest_owns_its_delegated_subtree(driver, debian_image,
                                                  seeded):
    guests, specs = seeded
    spec = make_spec(flavor(memory_mb=384, root_gb=2), image_id=debian_image,
                     hostname="pyct-deb-v2")
    specs[spec.uuid] = (spec,)
    guests.specs.append(spec)
    start = time.monotonic()
    driver.spawn(spec)
    top = os.path.dirname(group_file(driver, "", spec.uuid, "cgroup.procs"))
    wait_for(lambda: os.path.isdir(os.path.join(top, "system.slice")),
             timeout=120, what="systemd's system.slice", interval=0.1)
    state = _sh(driver, spec, "systemctl is-system-running --wait",
                check=False, timeout=240)
    booted = time.monotonic() - start
    print(f"\nDebian guest on v2: is-system-running={state} after "
          f"{booted:.1f}s")
    if state not in ("running", "degraded"):
        raise AssertionError(state + "\n" + _sh(
            driver, spec, "systemctl --failed --no-legend; journalctl -b "
            "--no-pager -p warning | tail -n 30", check=False))
    assert _sh(driver, spec, "cat /proc/1/comm") == "systemd"
    # the guest's view: its own group is the root of its cgroup2 mount
    assert _sh(driver, spec, "cat /proc/1/cgroup") == "0::/init.scope"
    assert _sh(driver, spec, "cat /proc/self/cgroup").startswith("0::/")
    assert _sh(driver, spec, "stat -f -c %T /sys/fs/cgroup") == "cgroup2fs"
    # systemd's own groups, on the host below the instance's group
    for name in ("init.scope", "system.slice"):
        assert os.path.isdir(os.path.join(top, name)), name
    units = [d for d in os.listdir(os.path.join(top, "system.slice"))
             if d.endswith(".service")]
    assert units, "no service groups under system.slice"
    assert "memory" in read_group(driver, "", spec.uuid,
                                  "cgroup.subtree_control").split()
    # the flavor's limits stand, and guest root cannot raise them
    assert read_group(driver, "", spec.uuid, "memory.max") \
        == str(384 * _MiB)
    out = _sh(driver, spec, "(echo max > /sys/fs/cgroup/memory.max) 2>&1; "
              "echo rc=$?", check=False)
    assert not out.endswith("rc=0"), out
    out = _sh(driver, spec, "(echo max > /sys/fs/cgroup/pids.max) 2>&1; "
              "echo rc=$?", check=False)
    assert not out.endswith("rc=0"), out
    assert read_group(driver, "", spec.uuid, "memory.max") \
        == str(384 * _MiB)
    # ... but a limit inside its own subtree is its business
    _sh(driver, spec, "echo 64M > /sys/fs/cgroup/system.slice/memory.max")
    assert open(os.path.join(top, "system.slice", "memory.max")).read() \
        .strip() == str(64 * _MiB)

    # a soft reboot: the new systemd starts in the group the old one left
    # with controllers enabled for its sub-groups
    driver.soft_reboot_timeout = 60
    start = time.monotonic()
    driver.reboot(spec, hard=False)
    # until the new systemd answers on its bus (an exec right away is
    # what a tenant may do too: it must not break systemd's start)
    state = wait_for(lambda: _sh(
        driver, spec, "systemctl is-system-running --wait 2>/dev/null",
        check=False, timeout=240), timeout=120, what="systemd answering",
        interval=0.5)
    print(f"soft reboot: is-system-running={state} after "
          f"{time.monotonic() - start:.1f}s")
    assert state in ("running", "degraded"), state
    assert _sh(driver, spec, "cat /proc/1/cgroup") == "0::/init.scope"
    assert read_group(driver, "", spec.uuid, "memory.max") \
        == str(384 * _MiB)

    driver.destroy(spec)
    guests.specs.remove(spec)
    assert not cgroup_dirs(driver, spec.uuid)
    assert spec.uuid not in driver.list_instances()
