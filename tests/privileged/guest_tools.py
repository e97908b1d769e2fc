"""Shared helpers for the container driver's tests on the real kernel.

``driver`` builds a ``ContainerDriver`` on a temporary state dir (its path
holds "pyct") with its own cgroup parent ``pyct-test-<rand>``; at teardown
it destroys every instance it can find, stops the launcher and removes the
parent group in every hierarchy. ``busybox_image`` imports the busybox
guest image. ``guests`` boots guests for one test and destroys them after
it. ``guest_exec`` runs a command *inside* a guest the confined way an
operator would (``ContainerDriver.exec_in_guest``: the launcher's helper
joins the guest's cgroups and namespaces, becomes guest root, takes the
guest's seccomp filter and execs with no host descriptor) -- never a bare
``nsenter``, whose process guest root could ptrace or rob of its fds.
"""

from __future__ import annotations

import contextlib
import dataclasses
import glob
import os
import secrets
import shutil
import signal
import subprocess
import tempfile
import threading
import uuid as uuid_mod
from typing import Iterator

import pytest
from oslo_config import cfg

from pyct_driver import conf as pyct_conf
from pyct_driver import states
from pyct_driver.virt import base
from pyct_driver.virt.container import ContainerDriver
from pyct_driver.virt.process.caller.exec_session import ExecSession
from pyct_driver.virt.rootfs.busybox import build_busybox_rootfs
from tests.waiting import wait_for

CGROUP_ROOT = "/sys/fs/cgroup"
IMAGE_ID = "busybox"


NO_DNS_UPSTREAM = "127.0.0.1:9"  # nothing answers: SERVFAIL at once


def make_conf(state_path: str, parent: str) -> cfg.ConfigOpts:
    conf = cfg.ConfigOpts()
    for group, opts in pyct_conf.list_opts():
        conf.register_opts(opts, group=group)
    conf([], project="pyct-test", default_config_files=[])
    conf.set_override("state_path", state_path)
    conf.set_override("cgroup_parent", parent, group="container")
    # the DNS forwarder (on by default) asks loopback, never the uplink's
    # resolvers; DNS tests point it at their own server
    conf.set_override("dns_upstreams", [NO_DNS_UPSTREAM], group="network")
    return conf


def stub_spec(uuid: str) -> base.InstanceSpec:
    """Enough of a spec for destroy/get_info, which only need the uuid."""
    return base.InstanceSpec(uuid=uuid, name=uuid, hostname="x",
                             flavor=base.FlavorSpec(1, 64, 0),
                             image_id=IMAGE_ID)


def _unified() -> bool:
    # the v2 lane's VM: one hierarchy at the root, no per-controller mounts
    return os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.subtree_control"))


def parent_dirs(parent: str) -> list[str]:
    """The parent group's directories in every hierarchy (existing ones)."""
    pattern = ((CGROUP_ROOT, parent) if _unified()
               else (CGROUP_ROOT, "*", parent))
    return sorted(set(glob.glob(os.path.join(*pattern))))


def cgroup_dirs(driver: ContainerDriver, uuid: str) -> list[str]:
    return [d for p in parent_dirs(driver.cgroups.parent)
            for d in [os.path.join(p, uuid)] if os.path.isdir(d)]


def group_file(driver: ContainerDriver, ctrl: str, uuid: str,
               name: str) -> str:
    """A group file; on v2 ``ctrl`` names no directory (one hierarchy)."""
    if _unified():
        return os.path.join(CGROUP_ROOT, driver.cgroups.parent, uuid, name)
    return os.path.join(CGROUP_ROOT, ctrl, driver.cgroups.parent, uuid, name)


def read_group(driver: ContainerDriver, ctrl: str, uuid: str,
               name: str) -> str:
    with open(group_file(driver, ctrl, uuid, name)) as f:
        return f.read().strip()


def cleanup_driver(driver: ContainerDriver, tmp: str, parent: str) -> None:
    uuids = set(driver.list_instances())
    with contextlib.suppress(Exception):
        uuids.update(driver.cgroups.list_groups())
    with contextlib.suppress(Exception):
        uuids.update(driver.roots.list_instances())
    errors = []
    for uuid in sorted(uuids):
        try:
            driver.destroy(stub_spec(uuid))
        except Exception as err:  # noqa: B902 - keep cleaning up
            errors.append(f"destroy {uuid}: {err}")
    with contextlib.suppress(Exception):
        driver.launcher.shutdown()
    if driver.views is not None:  # the lxcfs this driver started
        with contextlib.suppress(Exception):
            driver.views.stop()
    if driver._plumber is not None:  # its deletions, DNS sockets, netlink
        with contextlib.suppress(Exception):
            driver._plumber.close()
    for path in reversed(parent_dirs(parent)):
        for sub in sorted(glob.glob(os.path.join(path, "*/")), reverse=True):
            with contextlib.suppress(OSError):
                os.rmdir(sub)
        try:
            os.rmdir(path)
        except OSError as err:
            errors.append(f"rmdir {path}: {err}")
    # Lazily detached mounts may still pin files for a moment.
    for mnt in [line.split()[1] for line in open("/proc/mounts")
                if tmp in line.split()[1]]:
        subprocess.run(["umount", "-l", mnt], capture_output=True)
    shutil.rmtree(tmp, ignore_errors=True)
    assert not errors, errors


@contextlib.contextmanager
def container_driver(overrides: dict[str, dict] | None = None
                     ) -> Iterator[ContainerDriver]:
    """A driver on a temp state dir and its own cgroup parent; options
    of ``overrides`` ({group: {name: value}}) set; all removed after."""
    tmp = tempfile.mkdtemp(prefix="pyct-drvtest-")
    parent = f"pyct-test-{uuid_mod.uuid4().hex[:8]}"
    conf = make_conf(tmp, parent)
    for group, opts in (overrides or {}).items():
        for name, value in opts.items():
            conf.set_override(name, value, group=group)
    drv = ContainerDriver(conf)
    drv.test_tmp = tmp
    try:
        drv.init_host("pyct-test-host")
        yield drv
    finally:
        cleanup_driver(drv, tmp, parent)


@pytest.fixture(scope="module")
def driver():
    with container_driver() as drv:
        yield drv


@pytest.fixture(scope="module")
def busybox_image(driver):
    tar = os.path.join(driver.test_tmp, "busybox.tar")
    build_busybox_rootfs(tar)
    driver.import_image(IMAGE_ID, tar)
    return IMAGE_ID


def flavor(vcpus: int = 1, memory_mb: int = 128, root_gb: int = 1,
           **extra: str) -> base.FlavorSpec:
    return base.FlavorSpec(vcpus=vcpus, memory_mb=memory_mb, root_gb=root_gb,
                           extra_specs=dict(extra))


def guest_id_range() -> tuple[int, int]:
    """A uid/gid range for a guest booted without the database (the
    compute manager allocates real ones): a random 65536-block well above
    the database's default base, so concurrent tests rarely share one."""
    return ((3 << 30) + secrets.randbelow(8192) * 65536, 65536)


def make_spec(fl: base.FlavorSpec, image_id: str = IMAGE_ID,
              hostname: str | None = None,
              **image_properties: str) -> base.InstanceSpec:
    uuid = str(uuid_mod.uuid4())
    host_root = fl.extra_specs.get("pyct:host_root") == "true"
    privileged = host_root or fl.extra_specs.get("pyct:privileged") == "true"
    return base.InstanceSpec(uuid=uuid, name=f"pyct-{uuid[:8]}",
                             hostname=hostname or f"vm-{uuid[:8]}",
                             flavor=fl, image_id=image_id,
                             image_properties=image_properties,
                             privileged=privileged, host_root=host_root,
                             id_range=None if privileged
                             else guest_id_range())


class Guests:
    """Boots guests for one test; ``close`` destroys them all."""

    def __init__(self, drv: ContainerDriver) -> None:
        self.driver = drv
        self.specs: list[base.InstanceSpec] = []
        self.procs: list[subprocess.Popen] = []

    def boot(self, fl: base.FlavorSpec | None = None,
             vifs: tuple[base.VifSpec, ...] = (),
             **kwargs) -> base.InstanceSpec:
        spec = dataclasses.replace(make_spec(fl or flavor(), **kwargs),
                                   vifs=tuple(vifs))
        self.specs.append(spec)
        self.driver.spawn(spec)
        return spec

    def close(self) -> None:
        errors = []
        for proc in self.procs:
            proc.kill()
        for spec in self.specs:
            try:
                self.driver.destroy(spec)
            except Exception as err:  # noqa: B902 - keep cleaning up
                errors.append(f"destroy {spec.uuid}: {err}")
        for proc in self.procs:
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                errors.append(f"guest_exec pid {proc.pid} still running")
            proc.close()
        assert not errors, errors


@pytest.fixture
def guests(driver, busybox_image):
    g = Guests(driver)
    try:
        yield g
    finally:
        g.close()


def init_pid(drv: ContainerDriver, uuid: str) -> int:
    record = drv.records.load(uuid)
    assert record and record.get("pid"), f"{uuid} has no running init"
    return int(record["pid"])


class BackgroundExec:
    """A command left running in a guest (``guest_exec(background=True)``):
    ``poll``/``wait``/``kill`` like a Popen. Its output is drained so it
    never blocks on a full pipe; a signal goes through a pidfd taken when
    it started, never to a recycled pid."""

    def __init__(self, session: ExecSession) -> None:
        self.session = session
        session.close_stdin()
        self.pid = session.host_pid()
        try:
            self._pidfd: int | None = os.pidfd_open(self.pid)
        except ProcessLookupError:
            self._pidfd = None
        self._drain = threading.Thread(target=self._drain_output,
                                       daemon=True)
        self._drain.start()

    def _drain_output(self) -> None:
        with contextlib.suppress(OSError, TimeoutError):
            self.session.communicate(b"")

    def poll(self) -> int | None:
        return self.session.returncode

    def wait(self, timeout: float | None = None) -> int:
        self._drain.join(timeout)
        if self.session.returncode is None:
            raise subprocess.TimeoutExpired("guest command", timeout)
        return self.session.returncode

    def kill(self) -> None:
        if self._pidfd is not None and self.session.returncode is None:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, signal.SIGKILL)

    def close(self) -> None:
        if self._pidfd is not None:
            os.close(self._pidfd)
            self._pidfd = None


def guest_exec(drv: ContainerDriver, uuid: str, argv: list[str],
               timeout: float = 30.0, check: bool = True,
               background: bool = False, guests: Guests | None = None,
               input: str | None = None):
    """Run ``argv`` inside the guest the confined way (the driver's
    ``exec_in_guest``, as ``pyct-manage server exec`` does: guest root,
    the guest's seccomp filter and cgroups, no host descriptors); returns
    a CompletedProcess (text), or a ``BackgroundExec`` when ``background``
    (registered with ``guests``, killed before they are destroyed)."""
    session = drv.exec_in_guest(uuid, list(argv))
    if background:
        proc = BackgroundExec(session)
        if guests is not None:
            guests.procs.append(proc)
        return proc
    with session:
        try:
            code, out, err = session.communicate(
                (input or "").encode(), timeout)
        except TimeoutError as exc:
            raise subprocess.TimeoutExpired(argv, timeout) from exc
    result = subprocess.CompletedProcess(
        argv, code, out.decode("utf-8", "replace"),
        err.decode("utf-8", "replace"))
    if check and result.returncode != 0:
        raise AssertionError(
            f"{argv} in guest exited {result.returncode}: "
            f"{result.stdout!r} {result.stderr!r}")
    return result


def is_running(drv: ContainerDriver, spec: base.InstanceSpec) -> bool:
    return drv.get_info(spec).power_state == states.RUNNING


def cpu_ns(drv: ContainerDriver, spec: base.InstanceSpec) -> int:
    return drv.get_info(spec).cpu_time_ns
