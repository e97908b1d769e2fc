"""The host's one view service: lxcfs, started and watched by pyct.

Runs in the compute service (host root, many threads: ``watch`` is one of
them); the rebind helper it execs runs ``guestinit.views``.

lxcfs (Debian's package) is a FUSE file system whose /proc and /sys
files answer from the cgroup of the process that reads them: a guest's
``/proc/meminfo`` shows its memory limit, ``/proc/cpuinfo`` its cpuset
(and, with ``--enable-cfs``, its CPU quota), ``/proc/uptime`` its init's
age, ``/proc/loadavg`` (``-l``) its own tasks. One process serves every
guest: no per-guest host process. ``ensure`` adopts a live service at
``<directory>/mnt`` (a restarted compute service finds the one it left
running: lxcfs runs in its own session and outlives it) or starts one;
``watch`` checks it every ``interval`` seconds and, when it died, starts
a new one (new guests bind it) and puts the new files in place of the dead
ones in every running guest whose views are not locked (``views.rebind``
in an exec'd helper: privileged guests; an unprivileged guest's locked
views stay dead until it reboots, reads failing fast with ENOTCONN).
Without lxcfs installed, guests see the host's /proc as before (one
warning).
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from typing import Callable

from oslo_log import log as logging

from pyct_driver.virt.kernel import mounts as km

LOG = logging.getLogger(__name__)
_PROBE = "proc/uptime"
_STOPPED = "stopped"  # stopped on purpose: no watcher restarts it
# cgroup2's root flags: every cgroup2 mount in the initial cgroup
# namespace sets them anew, and lxcfs mounts cgroup2 (without them) for
# itself -- which would drop nsdelegate, the guests' delegation boundary
_CGROUP2_FLAGS = ("nsdelegate", "favordynmods", "memory_localevents",
                  "memory_recursiveprot", "memory_hugetlb_accounting")


class ViewService:
    """lxcfs mounted at ``directory/mnt``; ``guests`` lists the pids of the
    running guests' inits (for ``rebind`` after a restart)."""

    def __init__(self, directory: str, guests: Callable[[], list[int]],
                 binary: str = "lxcfs", interval: float = 1.0,
                 cgroup_root: str = "/sys/fs/cgroup") -> None:
        self.directory = directory
        self.cgroup_root = cgroup_root
        self.mount_dir = os.path.join(directory, "mnt")
        self.pid_file = os.path.join(directory, "lxcfs.pid")
        self.guests = guests
        self.binary = binary
        self.interval = interval
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def live(self) -> bool:
        """Whether the service answers (a dead one's mount: ENOTCONN)."""
        try:
            os.stat(os.path.join(self.mount_dir, _PROBE))
            return os.path.ismount(self.mount_dir)
        except OSError:
            return False

    def ensure(self) -> str | None:
        """The mount directory of a live service, started if need be;
        None when lxcfs is not installed or would not start."""
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, _STOPPED))
            if self.live():
                return self.mount_dir
            if shutil.which(self.binary) is None:
                if not self._warned:
                    LOG.warning("%s is not installed: guests see the "
                                "host's /proc/meminfo, cpuinfo, uptime",
                                self.binary)
                    self._warned = True
                return None
            return self._start()

    def _start(self) -> str | None:
        self._reap()
        with contextlib.suppress(OSError):  # a dead service's mount
            km.umount2(self.mount_dir, km.MNT_DETACH)
        os.makedirs(self.mount_dir, mode=0o755, exist_ok=True)
        flags = cgroup2_flags(self.cgroup_root)
        log = open(os.path.join(self.directory, "lxcfs.log"), "ab")
        with log:
            self._proc = subprocess.Popen(
                [self.binary, "-f", "-l", "--enable-cfs", "-p",
                 self.pid_file, self.mount_dir],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                start_new_session=True)
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            if self.live():
                LOG.info("view service %s started (pid %d)",
                         self.mount_dir, self._proc.pid)
                if restore_cgroup2_flags(self.cgroup_root, flags):
                    return self.mount_dir
                self.stop()  # no views rather than no delegation boundary
                return None
            if self._proc.poll() is not None:
                break
            time.sleep(0.01)
        LOG.error("view service did not start; see %s",
                  os.path.join(self.directory, "lxcfs.log"))
        return None

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def recover(self) -> dict[int, str | None]:
        """If the service died: start it and rebind every running guest
        ({init pid: error or None}); {} when it was live."""
        if not os.path.isdir(self.directory):
            self._stop.set()  # the state directory went: so did we
            return {}
        if self.live() or os.path.exists(
                os.path.join(self.directory, _STOPPED)):
            return {}  # alive, or stopped on purpose (``stop``)
        if self.ensure() is None:
            return {}
        self.restarts += 1
        pids = self.guests()
        if not pids:
            return {}
        out = subprocess.run(
            [sys.executable, "-m", "pyct_driver.virt.process.guestinit.views",
             self.mount_dir, *[str(p) for p in pids]],
            capture_output=True, text=True, timeout=60, check=False)
        result = {}
        for line in out.stdout.splitlines():
            item = json.loads(line)
            result[item["pid"]] = item["error"]
            if item["error"]:
                LOG.warning("guest init %s keeps stale views: %s",
                            item["pid"], item["error"])
        if out.returncode and not result:
            LOG.error("rebinding views failed: %s", out.stderr[-2000:])
        return result

    def watch(self) -> None:
        """Check (and recover) the service every ``interval`` seconds."""
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._loop, args=(self._stop,),
                    name="view-service", daemon=True)
                self._thread.start()

    def _loop(self, stop: threading.Event) -> None:
        while not stop.wait(self.interval):
            try:
                self.recover()
            except Exception:  # noqa: B902 - keep watching
                LOG.exception("view service check failed (no instance)")

    def stop(self) -> None:
        """Stop watching, stop the service this object started, unmount."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread, self._stop = None, threading.Event()
        pid = self.service_pid()
        with contextlib.suppress(OSError):
            open(os.path.join(self.directory, _STOPPED), "w").close()
        with contextlib.suppress(OSError):
            km.umount2(self.mount_dir, km.MNT_DETACH)
        if self._proc is not None:
            with contextlib.suppress(ProcessLookupError):
                self._proc.send_signal(signal.SIGTERM)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self._proc.wait(timeout=5)
        elif pid is not None and _is_lxcfs(pid, self.mount_dir):
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)

    def service_pid(self) -> int | None:
        """The running service's pid (from its pid file), if any."""
        try:
            with open(self.pid_file) as f:
                pid = int(f.read().strip() or 0)
        except (OSError, ValueError):
            return None
        return pid if pid and _is_lxcfs(pid, self.mount_dir) else None


def _is_lxcfs(pid: int, mount_dir: str) -> bool:
    """Whether ``pid`` is the lxcfs serving ``mount_dir`` (not a recycled
    pid of someone else's process)."""
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            argv = f.read().split(b"\0")
    except OSError as err:
        if err.errno in (errno.ENOENT, errno.ESRCH):
            return False
        raise
    return mount_dir.encode() in argv and os.path.basename(
        argv[0]).startswith(b"lxcfs")


def cgroup2_flags(root: str) -> list[str] | None:
    """The root flags of the cgroup2 mount at ``root`` (None: not one)."""
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            sep = fields.index("-")
            if fields[4] == root and fields[sep + 1] == "cgroup2":
                return [o for o in fields[sep + 3].split(",")
                        if o in _CGROUP2_FLAGS]
    return None


def restore_cgroup2_flags(root: str, flags: list[str] | None) -> bool:
    """Put back the flags ``cgroup2_flags`` read before lxcfs started
    (util-linux keeps the mount's other options on a remount); False if
    they could not be."""
    if not flags or cgroup2_flags(root) == flags:
        return True
    out = subprocess.run(["mount", "-o", "remount," + ",".join(flags),
                          root], capture_output=True, text=True, check=False)
    if out.returncode or cgroup2_flags(root) != flags:
        LOG.error("cgroup2 at %s lost %s when lxcfs started and could not "
                  "get them back: %s", root, flags, out.stderr.strip())
        return False
    return True
