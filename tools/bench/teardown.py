"""Leave the host as the benchmark found it, even after Ctrl-C or a crash.

The benchmarks create cgroups under a parent named ``pyct-bench-<random>``
in every cgroup hierarchy (pyct's backend and runc both do), mounts and
loop devices under a ``pyct-bench-`` temp dir, and the per-state-dir
launcher. These helpers remove exactly those -- processes only by the
cgroup we created, never by name -- and say what they could not remove.
"""

from __future__ import annotations

import contextlib
import fcntl
import os
import signal
import sys
import time

CGROUP_ROOT = "/sys/fs/cgroup"
_LOOP_CLR_FD = 0x4C01


def hierarchies() -> list[str]:
    """Every mounted cgroup hierarchy (v1 controllers, name=systemd,
    the unified v2 tree), de-duplicated through co-mount symlinks."""
    seen: dict[str, str] = {}
    for entry in sorted(os.listdir(CGROUP_ROOT)):
        path = os.path.join(CGROUP_ROOT, entry)
        real = os.path.realpath(path)
        if os.path.isdir(real) and \
                os.path.exists(os.path.join(real, "cgroup.procs")):
            seen.setdefault(real, real)
    if os.path.exists(os.path.join(CGROUP_ROOT, "cgroup.procs")):
        seen.setdefault(CGROUP_ROOT, CGROUP_ROOT)  # pure v2 host
    return list(seen)


def cgroup_pids(parent: str) -> set[int]:
    pids: set[int] = set()
    for hier in hierarchies():
        top = os.path.join(hier, parent)
        for dirpath, _dirs, _files in os.walk(top):
            with contextlib.suppress(OSError):
                with open(os.path.join(dirpath, "cgroup.procs")) as f:
                    pids.update(int(x) for x in f.read().split())
    return pids


def remove_cgroup_parent(parent: str, timeout: float = 10.0) -> list[str]:
    """SIGKILL what is still in ``parent`` and rmdir it in every
    hierarchy, deepest first; returns the dirs that would not go."""
    assert parent.startswith("pyct-bench-"), parent
    deadline = time.monotonic() + timeout
    while True:
        pids = cgroup_pids(parent)
        if not pids:
            break
        for pid in pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)
        if time.monotonic() > deadline:
            break
        time.sleep(0.02)
    left: list[str] = []
    for hier in hierarchies():
        top = os.path.join(hier, parent)
        if not os.path.isdir(top):
            continue
        for dirpath, _dirs, _files in sorted(os.walk(top), reverse=True,
                                            key=lambda w: w[0].count("/")):
            while True:
                try:
                    os.rmdir(dirpath)
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    if time.monotonic() > deadline:
                        left.append(dirpath)
                        break
                    time.sleep(0.02)
    return left


def unmount_under(prefix: str) -> list[str]:
    """Unmount (lazily if busy) every mount below ``prefix``, deepest
    first; returns mount points still present."""
    prefix = os.path.realpath(prefix).rstrip("/") + "/"

    def mounts() -> list[str]:
        with open("/proc/self/mounts") as f:
            points = [line.split()[1].replace("\\040", " ")
                      for line in f]
        return [p for p in points if (p + "/").startswith(prefix)]

    import ctypes
    libc = ctypes.CDLL(None, use_errno=True)
    for point in sorted(set(mounts()), key=len, reverse=True):
        if libc.umount2(point.encode(), 0) != 0:
            libc.umount2(point.encode(), 2)  # MNT_DETACH
    return mounts()


def detach_loops_backed_under(prefix: str) -> list[str]:
    """Detach loop devices whose backing file lives under ``prefix``
    (autoclear normally frees them at unmount); returns those left."""
    prefix = os.path.realpath(prefix).rstrip("/") + "/"
    left = []
    base = "/sys/block"
    for name in os.listdir(base):
        if not name.startswith("loop"):
            continue
        try:
            with open(os.path.join(base, name, "loop", "backing_file")) as f:
                backing = f.read().strip()
        except OSError:
            continue
        if not backing.startswith(prefix):
            continue
        try:
            fd = os.open(f"/dev/{name}", os.O_RDONLY | os.O_CLOEXEC)
            try:
                fcntl.ioctl(fd, _LOOP_CLR_FD)
            finally:
                os.close(fd)
        except OSError:
            left.append(f"/dev/{name} ({backing})")
    return left


def report_leftovers(what: str, items: list[str]) -> None:
    if items:
        print(f"WARNING: could not remove {what}: {items}", file=sys.stderr)
