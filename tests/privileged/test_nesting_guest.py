"""Containers inside guests: ``pyct:nesting=true`` and its absence.

Every attempt runs as a real guest process -- a child of the guest's init
(the escape suite's agent, ``escape_fixtures``), with the namespaces,
cgroups, user namespace and seccomp filter the launcher gave it. A
nesting guest runs ``unshare -Urmpf --mount-proc`` and a real nested
container with Debian's runc (``nesting_fixtures``), whose cgroup the host
then finds beneath the guest's own; a guest without the spec is refused
both, as before. The nesting guest's limits stay out of its reach: it
cannot write its own group's limit files, move itself out of its group,
reach the host's groups, get a device, or reach the hidden full proc.
"""

from __future__ import annotations

import glob
import os

import pytest

from tests.privileged import escape_fixtures as ef
from tests.privileged import nesting_fixtures as nf
from tests.privileged.escape_fixtures import probe_binary  # noqa: F401
from tests.privileged.guest_tools import (  # noqa: F401 - fixtures
    Guests, _unified, busybox_image, driver, flavor, group_file, guests,
    init_pid)

NESTING = {"pyct:nesting": "true"}
UNSHARE = ("unshare -Urmpf --mount-proc sh -c "
           "'echo inner-pid=$$; id -u; ls /proc | grep -c [0-9]'")
OVERLAY = """\
mkdir -p /dev/shm/up /dev/shm/wk /tmp/ov
unshare -m sh -c 'mount -t overlay overlay \
  -o lowerdir=/nest/rootfs,upperdir=/dev/shm/up,workdir=/dev/shm/wk /tmp/ov \
  && echo written > /tmp/ov/etc/pyct-ov && /tmp/ov/bin/busybox echo ov-ok'
cat /dev/shm/up/etc/pyct-ov
"""


@pytest.fixture(scope="module")
def nesting_image(driver, probe_binary):  # noqa: F811
    tar = os.path.join(driver.test_tmp, "nesting.tar")
    nf.build_nesting_image(tar, probe_binary)
    driver.import_image(nf.NESTING_IMAGE, tar)
    return nf.NESTING_IMAGE


def _boot(guests: Guests, **extra: str):
    spec = guests.boot(flavor(memory_mb=256, **extra),
                       image_id=nf.NESTING_IMAGE,
                       os_command_line=ef.AGENT_ARGV)
    ef.wait_for(lambda: os.path.isdir(
        f"/proc/{init_pid(guests.driver, spec.uuid)}/root/run/pyct"),
        what="agent ready")
    return spec


@pytest.fixture
def nest_guests(guests, nesting_image):  # noqa: F811
    return guests


def _host_pids_in(path: str) -> list[int]:
    pids = []
    for procs in glob.glob(os.path.join(path, "**", "cgroup.procs"),
                           recursive=True):
        with open(procs) as f:
            pids += [int(p) for p in f.read().split()]
    return pids


def test_unshare_with_fresh_proc_works_in_a_nesting_guest(
        driver, nest_guests):
    spec = _boot(nest_guests, **NESTING)
    out = ef.agent_run(driver, spec.uuid, UNSHARE)
    assert "inner-pid=1" in out and "exit=0" in out, out
    out = ef.agent_run(driver, spec.uuid, OVERLAY)
    assert "ov-ok" in out and "written" in out, out


def test_unshare_with_fresh_proc_is_refused_without_the_spec(
        driver, nest_guests):
    spec = _boot(nest_guests)
    out = ef.agent_run(driver, spec.uuid, UNSHARE)
    assert "inner-pid=1" not in out and "exit=0" not in out, out
    assert "Operation not permitted" in out, out
    # overlay mounts never needed the spec (user namespaces may mount it)
    assert "ov-ok" in ef.agent_run(driver, spec.uuid, OVERLAY)
    out = ef.agent_run(driver, spec.uuid, nf.RUNC_SCRIPT)
    assert nf.NESTED_HELLO not in out.replace("grep -q", ""), out
    assert "runc_rc=0" not in out, out
    assert not os.path.exists(group_file(driver, "memory", spec.uuid,
                                         nf.NESTED_CGROUP.strip("/")))


def test_runc_runs_a_nested_container_beneath_the_guests_cgroup(
        driver, nest_guests):
    spec = _boot(nest_guests, **NESTING)
    out = ef.agent_run(driver, spec.uuid, nf.RUNC_SCRIPT)
    try:
        assert "runc_rc=0" in out, out
        assert nf.NESTED_HELLO in out, out
        for ctrl in ("memory", "pids", "cpu", "freezer", "devices"):
            nested = group_file(driver, ctrl, spec.uuid,
                                nf.NESTED_CGROUP.strip("/"))
            pids = _host_pids_in(nested)
            assert pids, f"no nested task in {nested}: {out}"
            for pid in pids:
                with open(f"/proc/{pid}/cgroup") as f:
                    lines = f.read()
                assert f"/{driver.cgroups.parent}/{spec.uuid}" \
                    f"{nf.NESTED_CGROUP}" in lines, lines
            if _unified():
                break
    finally:
        stop = ef.agent_run(driver, spec.uuid, nf.RUNC_STOP)
    assert "nest1" not in stop, stop
