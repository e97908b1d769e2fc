"""Launcher hold/release with real network plumbing: busybox guests whose
init only starts after their eth0 exists (runc's create/start split).

Fixtures (busybox root builder, pids cgroup, launcher under a subreaper)
come from test_process_launcher; this root's inittab prints the guest's
network as its very first action, so the console shows what init saw.
"""

from __future__ import annotations

import os
import random
import shutil
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.base import VifSpec
from pyct_driver.virt.process import guest
from tests.privileged.test_network_plumbing import (  # noqa: F401 fixture
    plumber)
from tests.privileged.test_process_launcher import (  # noqa: F401 fixtures
    _spec, _wait, busybox_root, cgroup, launcher, workdir)

INITTAB = """\
::sysinit:/bin/sh -c 'echo NET-BEGIN; ip -o addr show eth0; echo NET-END'
::once:/bin/sleep 1000000
"""


@pytest.fixture(scope="module")
def net_root(busybox_root, workdir):
    root = os.path.join(workdir, "netroot")
    if not os.path.exists(root):
        shutil.copytree(busybox_root, root, symlinks=True)
        with open(os.path.join(root, "etc", "inittab"), "w") as f:
            f.write(INITTAB)
    return root


def test_held_guest_starts_with_its_network(launcher, net_root, cgroup,
                                            workdir, plumber):
    prefix = f"10.241.{random.randrange(100, 250)}"
    net_id = uuid.uuid4().hex
    vif = VifSpec(port_id=uuid.uuid4().hex, network_id=net_id,
                  mac="fa:16:3e:12:34:56", ip=f"{prefix}.7", prefixlen=24,
                  gateway=f"{prefix}.1", mtu=1450)
    s = _spec(net_root, cgroup, workdir, hold=True)
    handle = launcher.spawn(s)
    try:
        status = launcher.status(s.uuid)
        assert status["alive"] and status["held"]
        # Held: PID 1 is still the launcher's Python, not busybox init.
        assert not os.readlink(f"/proc/{handle.pid}/exe").endswith("busybox")
        assert "NET-BEGIN" not in guest.read_console(s.console_log)

        plumber.plug_all(handle.pid, [vif])
        launcher.release(s.uuid)
        launcher.release(s.uuid)  # idempotent once running
        assert not launcher.status(s.uuid)["held"]
        assert guest.is_same_process(handle.pid, handle.start_time)
        _wait(lambda: "NET-END" in guest.read_console(s.console_log),
              what="init's first look at its network")
        console = guest.read_console(s.console_log)
        assert f"inet {vif.ip}/24" in console, console
    finally:
        plumber.unplug(vif)
        plumber.remove_bridge_if_unused(net_id)
        assert plumber.flush()


def test_forgotten_held_guest_never_execs(launcher, net_root, cgroup,
                                          workdir):
    s = _spec(net_root, cgroup, workdir, hold=True)
    handle = launcher.spawn(s)
    launcher.forget(s.uuid)
    _wait(lambda: not guest.is_same_process(handle.pid, handle.start_time),
          what="held guest to exit once forgotten")
    assert "NET-BEGIN" not in guest.read_console(s.console_log)
    with pytest.raises(exception.ProcessError):
        launcher.release(s.uuid)
