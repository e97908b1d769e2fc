"""The launcher on the real kernel: busybox guests in fresh namespaces.

Every guest runs in a pids cgroup the test creates, so whatever happens the
fixture can SIGKILL exactly the test's own processes and rmdir the cgroup.
"""

from __future__ import annotations

import contextlib
import ctypes
import functools
import os
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid

import pytest

from pyct_driver import exception
from pyct_driver.virt.process import guest
from pyct_driver.virt.process import spec
from pyct_driver.virt.process.caller import client as client_mod
from pyct_driver.virt.process.spec import ExecRequest
from tests.waiting import wait_for

PIDS_ROOT = "/sys/fs/cgroup/pids"
INITTAB = """\
::sysinit:/bin/echo pyct-guest-booted
::sysinit:/bin/hostname
::once:/bin/sleep 1000000
::shutdown:/bin/echo pyct-guest-shutdown
"""
PR_SET_CHILD_SUBREAPER = 36
REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))


# The fork server's boots take milliseconds: poll at 10 ms, not the
# suite's 20 ms, so the waits stay as tight as the steps they measure.
_wait = functools.partial(wait_for, interval=0.01)


def _busybox() -> str:
    path = shutil.which("busybox") or "/bin/busybox"
    if not os.path.exists(path):
        subprocess.run(["apt-get", "install", "-y", "busybox-static"],
                       check=True, capture_output=True)
    return path


@pytest.fixture(scope="module")
def workdir():
    path = tempfile.mkdtemp(prefix="pyct-proc-test-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="module")
def busybox_root(workdir):
    root = os.path.join(workdir, "root")
    for d in ("bin", "sbin", "etc", "proc", "sys", "dev", "run", "tmp",
              "root"):
        os.makedirs(os.path.join(root, d))
    shutil.copy2(_busybox(), os.path.join(root, "bin", "busybox"))
    applets = subprocess.run([os.path.join(root, "bin", "busybox"),
                              "--list-full"], capture_output=True, text=True,
                             check=True).stdout.split()
    for applet in applets:
        target = os.path.join(root, applet)
        os.makedirs(os.path.dirname(target), exist_ok=True)
        if not os.path.lexists(target):
            os.symlink("/bin/busybox", target)
    with open(os.path.join(root, "etc", "inittab"), "w") as f:
        f.write(INITTAB)
    return root


def _cgroup_pids(path: str) -> list[int]:
    with open(os.path.join(path, "cgroup.procs")) as f:
        return [int(x) for x in f.read().split()]


@pytest.fixture
def cgroup():
    path = os.path.join(PIDS_ROOT, f"pyct-test-{uuid.uuid4().hex[:10]}")
    os.mkdir(path)
    yield path
    deadline = time.monotonic() + 10
    while True:
        pids = _cgroup_pids(path)
        if not pids:
            break
        for pid in pids:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    _wait(lambda: _try_rmdir(path), timeout=10, what=f"rmdir {path}")


def _try_rmdir(path: str) -> bool:
    try:
        os.rmdir(path)
        return True
    except OSError:
        return False


@contextlib.contextmanager
def _subreaper(client):
    """Make this test process the subreaper while the block runs, so the
    orphaned launcher and guests are ours to reap instead of zombies left
    with this host's PID 1; always shut the launcher down at the end."""
    libc = ctypes.CDLL(None, use_errno=True)
    assert libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0
    try:
        yield
    finally:
        try:
            client.shutdown()
        finally:
            pid = client.launcher_pid()
            if pid is not None and guest.proc_start_time(pid) is not None:
                os.kill(pid, signal.SIGKILL)  # shutdown failed; pid is ours
            for pid in _children(os.getpid()):
                try:
                    os.waitpid(pid, os.WNOHANG)
                except ChildProcessError:
                    pass
            libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@pytest.fixture
def launcher(workdir):
    state = tempfile.mkdtemp(prefix="pyct-launcher-", dir=workdir)
    client = client_mod.LauncherClient(state)
    with _subreaper(client):
        client.ensure_running()
        yield client


def _spec(root, cgroup, workdir, **kw) -> spec.GuestSpec:
    name = kw.pop("uuid", uuid.uuid4().hex)
    return spec.GuestSpec(
        uuid=name, root=root, hostname=kw.pop("hostname", f"pyct-{name[:8]}"),
        cgroup_procs=(os.path.join(cgroup, "cgroup.procs"),) if cgroup else (),
        console_log=os.path.join(workdir, f"{name}.console.log"), **kw)


def _children(ppid: int) -> set[int]:
    kids = set()
    for name in os.listdir("/proc"):
        if name.isdigit():
            try:
                with open(f"/proc/{name}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue
            if int(fields[1]) == ppid:
                kids.add(int(name))
    return kids


def _run_in(launcher: client_mod.LauncherClient, handle: spec.GuestHandle,
            *argv: str) -> str:
    """A command in the guest the confined way (the launcher's exec)."""
    with launcher.exec(ExecRequest(
            uuid="t", pid=handle.pid, start_time=handle.start_time,
            argv=argv, userns=False)) as session:
        code, out, err = session.communicate(b"", timeout=10)
    assert code == 0, (argv, out, err)
    return out.decode()


def _booted(path: str, *needles: str):
    return lambda: all(n in guest.read_console(path) for n in needles)


def test_guest_boots_isolated(launcher, busybox_root, cgroup, workdir):
    s = _spec(busybox_root, cgroup, workdir, hostname="pyct-guest-one")
    handle = launcher.spawn(s)
    assert guest.is_same_process(handle.pid, handle.start_time)
    _wait(_booted(s.console_log, "pyct-guest-booted", "pyct-guest-one"),
          what="boot messages on the console")
    _wait(lambda: len(_cgroup_pids(cgroup)) == 2, what="init + sleep")

    # PID 1 is busybox init from the guest's root.
    exe, ours = os.stat(f"/proc/{handle.pid}/exe"), os.stat(
        os.path.join(busybox_root, "bin", "busybox"))
    assert (exe.st_dev, exe.st_ino) == (ours.st_dev, ours.st_ino)
    assert _run_in(launcher, handle, "/bin/readlink", "/proc/1/exe").strip() == \
        "/bin/busybox"
    assert _run_in(launcher, handle, "/bin/hostname").strip() == "pyct-guest-one"
    for ns in ("pid", "mnt", "uts", "ipc", "net", "cgroup"):
        assert os.readlink(f"/proc/{handle.pid}/ns/{ns}") != \
            os.readlink(f"/proc/self/ns/{ns}"), ns
    assert os.readlink(f"/proc/{handle.pid}/ns/user") == \
        os.readlink("/proc/self/ns/user")

    # Only guest processes are visible inside: init, sleep, and this ls.
    inside = [p for p in _run_in(launcher, handle, "/bin/ls", "/proc").split()
              if p.isdigit()]
    assert "1" in inside
    assert len(inside) == len(_cgroup_pids(cgroup)) + 1

    # init holds the console pty on 0, 1, 2 and no host fd.
    fds = os.listdir(f"/proc/{handle.pid}/fd")
    assert sorted(fds) == ["0", "1", "2"]
    rdevs = {os.stat(f"/proc/{handle.pid}/fd/{fd}").st_rdev for fd in fds}
    assert len(rdevs) == 1 and 136 <= os.major(rdevs.pop()) <= 143

    # The init and everything it starts sit in the cgroup; the only host
    # process the launcher added for this guest is the init itself.
    members = set(_cgroup_pids(cgroup))
    assert handle.pid in members
    assert _children(handle.pid) == members - {handle.pid}
    lpid = launcher.ensure_running()
    # the guest's first child (C1) exits once the init runs; the
    # launcher's SIGCHLD loop reaps it without the spawn waiting for it
    _wait(lambda: _children(lpid) == {handle.pid},
          what="the launcher's only child to be the guest's init")
    assert os.listdir(f"/proc/{lpid}/task") == [str(lpid)]  # one thread
    assert os.getsid(lpid) not in (os.getsid(0), handle.pid)

    # The guest's mounts live in its own namespace only.
    with open("/proc/self/mounts") as f:
        assert busybox_root not in f.read()
    st = launcher.status(s.uuid)
    assert st["alive"] and st["pid"] == handle.pid and st["exit_code"] is None


def test_console_log_stays_bounded(launcher, busybox_root, cgroup, workdir):
    script = ("i=0; while [ $i -lt 5000 ]; do "
              "echo line-$i-pyct-console-padding-padding-padding; "
              "i=$((i+1)); done; echo pyct-console-done; "
              "exec /bin/sleep 1000000")
    s = _spec(busybox_root, cgroup, workdir, argv=("/bin/sh", "-c", script),
              console_max_bytes=8192)
    launcher.spawn(s)
    _wait(_booted(s.console_log, "pyct-console-done"), timeout=30,
          what="all console output")
    assert os.path.getsize(s.console_log) <= 8192
    text = guest.read_console(s.console_log)
    assert "line-4999-" in text and "line-0-" not in text
    assert guest.read_console(s.console_log, 1) == "pyct-console-done\n"
    assert not os.path.exists(s.console_log + ".pyct-tmp")


@pytest.mark.parametrize("argv,root_name,step", [
    (("/sbin/pyct-no-such-init",), "busybox", "exec /sbin/pyct-no-such-init"),
    (("/sbin/init",), "missing", "bind root"),
    (("/sbin/init",), "hostile-dev", "check /dev"),
])
def test_failed_spawn_names_step_and_leaves_nothing(
        launcher, busybox_root, cgroup, workdir, argv, root_name, step):
    if root_name == "busybox":
        root = busybox_root
    else:
        root = tempfile.mkdtemp(prefix="pyct-bad-root-", dir=workdir)
        if root_name == "missing":
            os.rmdir(root)
        else:  # /dev pointing out of the root must not be mounted over
            os.symlink(workdir, os.path.join(root, "dev"))
    s = _spec(root, cgroup, workdir, argv=argv)
    before = _children(launcher.ensure_running())
    with pytest.raises(exception.ProcessError) as err:
        launcher.spawn(s)
    assert err.value.kwargs["step"] == step
    assert step in str(err.value)
    assert _cgroup_pids(cgroup) == []
    assert _children(launcher.ensure_running()) == before == set()
    assert not launcher.status(s.uuid)["known"]
    with open("/proc/self/mounts") as f:
        assert workdir not in f.read()


COMPUTE = """
import sys, time
from pyct_driver.virt.process import spec
from pyct_driver.virt.process.caller import client
c = client.LauncherClient(sys.argv[1])
c.ensure_running()
h = c.spawn(spec.GuestSpec.from_json(sys.argv[2]))
print(h.to_json(), flush=True)
time.sleep(1000)
"""


def test_killing_compute_leaves_launcher_and_guest(busybox_root, cgroup,
                                                   workdir):
    state = tempfile.mkdtemp(prefix="pyct-launcher-", dir=workdir)
    client = client_mod.LauncherClient(state)
    with _subreaper(client):
        s = _spec(busybox_root, cgroup, workdir)
        compute = subprocess.Popen(
            [sys.executable, "-c", COMPUTE, state, s.to_json()],
            stdout=subprocess.PIPE, text=True, start_new_session=True,
            env=dict(os.environ, PYTHONPATH=REPO))
        try:
            handle = spec.GuestHandle.from_json(compute.stdout.readline())
            launcher_pid = client.launcher_pid()
            assert os.getsid(launcher_pid) != compute.pid
        finally:
            os.killpg(compute.pid, signal.SIGKILL)
            compute.wait()
        time.sleep(0.1)
        assert guest.proc_start_time(launcher_pid) is not None
        assert client.ensure_running() == launcher_pid
        assert client.status(s.uuid)["alive"]
        assert guest.is_same_process(handle.pid, handle.start_time)


def test_guest_outlives_its_launcher(busybox_root, cgroup, workdir):
    state = tempfile.mkdtemp(prefix="pyct-launcher-", dir=workdir)
    client = client_mod.LauncherClient(state)
    with _subreaper(client):
        first = client.ensure_running()
        s = _spec(busybox_root, cgroup, workdir)
        handle = client.spawn(s)
        _wait(_booted(s.console_log, "pyct-guest-booted"), what="boot")
        os.kill(first, signal.SIGKILL)
        os.waitpid(first, 0)
        time.sleep(0.2)
        assert guest.is_same_process(handle.pid, handle.start_time)
        second = client.ensure_running()
        assert second != first
        # a new launcher enters a guest it never spawned, by pid+start time
        assert _run_in(client, handle, "/bin/hostname").strip() == s.hostname
        assert client.status(s.uuid) == {"known": False, "alive": False}
        assert guest.is_same_process(handle.pid, handle.start_time)
        client.shutdown()
        assert guest.is_same_process(handle.pid, handle.start_time)
        assert guest.signal_init(handle.pid, handle.start_time,
                                 signal.SIGKILL)
        _wait(lambda: not guest.is_same_process(handle.pid,
                                                handle.start_time))


@pytest.mark.parametrize("sig", [signal.SIGUSR2, signal.SIGTERM])
def test_busybox_init_shuts_down_on_signal(launcher, busybox_root, cgroup,
                                           workdir, sig):
    s = _spec(busybox_root, cgroup, workdir)
    assert guest.shutdown_signal(s.argv, busybox_root) == signal.SIGUSR2
    handle = launcher.spawn(s)
    _wait(_booted(s.console_log, "pyct-guest-booted"), what="boot")
    # busybox init installs its handlers right after start; the boot message
    # means sysinit ran, so they are in place.
    assert guest.signal_init(handle.pid, handle.start_time, sig)
    _wait(lambda: not launcher.status(s.uuid)["alive"], timeout=20,
          what="init to exit")
    assert launcher.status(s.uuid)["exit_code"] is not None
    assert "pyct-guest-shutdown" in guest.read_console(s.console_log)
    assert not guest.signal_init(handle.pid, handle.start_time, sig)
    _wait(lambda: _cgroup_pids(cgroup) == [], what="empty cgroup")


def test_twenty_spawns_are_fast(launcher, busybox_root, cgroup, workdir):
    times, handles = [], []
    for _ in range(20):
        s = _spec(busybox_root, cgroup, workdir)
        t0 = time.perf_counter()
        handles.append(launcher.spawn(s))
        times.append(time.perf_counter() - t0)
    times.sort()
    median = statistics.median(times)
    p95 = times[int(0.95 * len(times)) - 1]
    print(f"\nspawn (request -> init exec'd), 20 guests: "
          f"median {median * 1000:.1f} ms, p95 {p95 * 1000:.1f} ms, "
          f"max {times[-1] * 1000:.1f} ms")
    assert median < 0.5
    assert _children(launcher.ensure_running()) == {h.pid for h in handles}


def test_client_is_thread_safe(launcher, busybox_root, cgroup, workdir):
    results, errors = [], []

    def spawn():
        try:
            results.append(launcher.spawn(_spec(busybox_root, cgroup,
                                                workdir)))
        except Exception as err:  # noqa: B902 - reported below
            errors.append(err)

    threads = [threading.Thread(target=spawn) for _ in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len({h.pid for h in results}) == 6
    assert all(guest.is_same_process(h.pid, h.start_time) for h in results)


def test_spawn_refuses_a_running_uuid(launcher, busybox_root, cgroup,
                                      workdir):
    s = _spec(busybox_root, cgroup, workdir)
    launcher.spawn(s)
    with pytest.raises(exception.ProcessError, match="already running"):
        launcher.spawn(s)
    launcher.forget(s.uuid)
    assert not launcher.status(s.uuid)["known"]
