"""The host's one view service: lxcfs, started, published and watched.

Runs in the compute service (host root, many threads: ``watch`` is one of
them).

lxcfs (Debian's package) is a FUSE file system whose /proc and /sys
files answer from the cgroup of the process that reads them: a guest's
``/proc/meminfo`` shows its memory limit, ``/proc/cpuinfo`` its cpuset
(and, with ``--enable-cfs``, its CPU quota), ``/proc/uptime`` its init's
age, ``/proc/loadavg`` (``-l``) its own tasks. One process serves every
guest: no per-guest host process. lxcfs mounts itself at
``<directory>/mnt``; the service publishes each view file
(``views.VIEW_FILES``) on an anchor, a file of a shared tmpfs at
``<directory>/files``, by binding lxcfs' file on it. Guests bind the
anchors' files as slaves (``guestinit.views``). ``ensure`` adopts a live
service (a restarted compute service finds the one it left running:
lxcfs runs in its own session and outlives it; the anchors are mounts
of the host and outlive it too) or starts one; ``watch`` checks it every
``interval`` seconds and, when it died, starts a new one and binds its
files on top of the dead ones on the anchors: mount propagation puts them
on every running guest's views, privileged or not (an unprivileged
guest's locked binds included), within the interval, with no per-guest
work. Each restart leaves one dead layer per file under the new one, in
the host's anchors and in each guest that ran across it, until ``stop``
or the guest's reboot. Without lxcfs installed, guests see the host's
/proc as before (one warning).
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import signal
import subprocess
import threading
import time

from oslo_log import log as logging

from pyct_driver.virt.kernel import mounts as km
from pyct_driver.virt.process.guestinit.views import VIEW_FILES

LOG = logging.getLogger(__name__)
_PROBE = "proc/uptime"
_STOPPED = "stopped"  # stopped on purpose: no watcher restarts it
# cgroup2's root flags: every cgroup2 mount in the initial cgroup
# namespace sets them anew, and lxcfs mounts cgroup2 (without them) for
# itself -- which would drop nsdelegate, the guests' delegation boundary
_CGROUP2_FLAGS = ("nsdelegate", "favordynmods", "memory_localevents",
                  "memory_recursiveprot", "memory_hugetlb_accounting")


class ViewService:
    """lxcfs mounted at ``directory/mnt``, its files published on the
    anchors at ``directory/files`` (``files_dir``: what guests bind)."""

    def __init__(self, directory: str, binary: str = "lxcfs",
                 interval: float = 1.0,
                 cgroup_root: str = "/sys/fs/cgroup") -> None:
        self.directory = directory
        self.cgroup_root = cgroup_root
        self.mount_dir = os.path.join(directory, "mnt")
        self.files_dir = os.path.join(directory, "files")
        self.pid_file = os.path.join(directory, "lxcfs.pid")
        self.binary = binary
        self.interval = interval
        self.restarts = 0
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._warned = False

    def live(self) -> bool:
        """Whether the service answers through the anchors guests bind (a
        dead service's files: ENOTCONN). Only the top file's own inode
        is asked: no lookup in a dead lxcfs' tree (``_publish``)."""
        return _answers(self.files_dir)

    def _serving(self) -> bool:
        """A started lxcfs not yet published (its own mount answers)."""
        return os.path.ismount(self.mount_dir) and _answers(self.mount_dir)

    def ensure(self) -> str | None:
        """The anchors' directory of a live service, started (and its
        files published) if need be; None when lxcfs is not installed or
        would not start."""
        with self._lock:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(os.path.join(self.directory, _STOPPED))
            if self.live():
                # published, but the compute service that did it died
                # before it detached lxcfs' own mount (``_publish``)
                if os.path.ismount(self.mount_dir):
                    with contextlib.suppress(OSError):
                        km.umount2(self.mount_dir, km.MNT_DETACH)
                return self.files_dir
            if shutil.which(self.binary) is None:
                if not self._warned:
                    LOG.warning("%s is not installed: guests see the "
                                "host's /proc/meminfo, cpuinfo, uptime",
                                self.binary)
                    self._warned = True
                return None
            if self._serving():  # started by a compute service that died
                return self.files_dir if self._publish() else None
            return self._start()

    def _start(self) -> str | None:
        self._reap()
        with contextlib.suppress(OSError):  # a dead, unpublished service
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
            if self._serving():
                LOG.info("view service %s started (pid %d)",
                         self.mount_dir, self._proc.pid)
                if restore_cgroup2_flags(self.cgroup_root, flags):
                    return self.files_dir if self._publish() else None
                self._stop_locked()  # no views, not no delegation boundary
                return None
            if self._proc.poll() is not None:
                break
            time.sleep(0.01)
        LOG.error("view service did not start; see %s",
                  os.path.join(self.directory, "lxcfs.log"))
        return None

    def _publish(self) -> bool:
        """Put the new service's files on the anchors, on top of any dead
        ones (propagation stacks them on every guest's views), then
        detach the service's own mount.

        Each file goes on as one tree of two binds of it (``_pair``): the
        kernel locks every mount it propagates into a guest's user
        namespace but the tree's root, and systemd, before it mounts a
        sandboxed service's /proc, unmounts every unlocked mount below
        /proc and then refuses to start the service. A guest's path
        reaches only the top bind, which is locked.

        A mount can only go on a dentry whose ancestors are all hashed,
        and a lookup in a dead FUSE tree unhashes what it walks (the
        entries' 0.5 s validity expired, the revalidation fails). With
        the service's mount detached, nothing can walk its tree: its
        files are reachable only as the roots of their binds, which stay
        mountable after it dies."""
        stage = os.path.join(self.directory, "stage")
        try:
            if not os.path.ismount(self.files_dir):
                _make_anchors(self.files_dir, self.mount_dir)
            os.makedirs(stage, mode=0o700, exist_ok=True)
            km.mount("tmpfs", stage, "tmpfs", km.MS_NOSUID | km.MS_NODEV
                     | km.MS_NOEXEC, "mode=700,size=64k")
            try:
                km.mount(None, stage, None, km.MS_PRIVATE)
                for rel in VIEW_FILES:
                    anchor = os.path.join(self.files_dir, rel)
                    if _listed(anchor):
                        _pair(os.path.join(self.mount_dir, rel), os.path.join(
                            stage, rel.replace("/", "_")), anchor)
            finally:
                km.umount2(stage, km.MNT_DETACH)
            km.umount2(self.mount_dir, km.MNT_DETACH)
        except OSError as err:
            LOG.error("publishing the views on %s failed: %s",
                      self.files_dir, err)
            return False
        return True

    def _reap(self) -> None:
        if self._proc is not None and self._proc.poll() is not None:
            self._proc = None

    def recover(self) -> bool:
        """If the service died: start it and publish its files (every
        running guest's views answer again); False when it was live,
        stopped on purpose, or would not start."""
        if not os.path.isdir(self.directory):
            self._stop.set()  # the state directory went: so did we
            return False
        if self.live() or os.path.exists(
                os.path.join(self.directory, _STOPPED)):
            return False  # alive, or stopped on purpose (``stop``)
        if self.ensure() is None:
            return False
        self.restarts += 1
        LOG.warning("view service restarted (%d so far): running guests' "
                    "views follow", self.restarts)
        return True

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
        """Stop watching, stop the service this object started, unmount
        it and the anchors (no guest runs: ``release_host``)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
        self._thread, self._stop = None, threading.Event()
        with self._lock:
            self._stop_locked()

    def _stop_locked(self) -> None:
        pid = self.service_pid()
        with contextlib.suppress(OSError):
            open(os.path.join(self.directory, _STOPPED), "w").close()
        for path in (self.files_dir, self.mount_dir):
            with contextlib.suppress(OSError):
                km.umount2(path, km.MNT_DETACH)
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


def _answers(directory: str) -> bool:
    try:
        os.stat(os.path.join(directory, _PROBE))
        return True
    except OSError:
        return False


def _listed(anchor: str) -> bool:
    """Whether the anchor exists, from its directory's listing: a stat
    would ask the (maybe dead) service bound on it."""
    try:
        return os.path.basename(anchor) in os.listdir(os.path.dirname(anchor))
    except FileNotFoundError:
        return False


def _pair(source: str, staged: str, anchor: str) -> None:
    """Attach two binds of ``source``, one on the other, on ``anchor`` in
    one step: built at ``staged`` (a private tmpfs file) and cloned from
    the lower one (its fd: a path would reach the upper one)."""
    os.close(os.open(staged, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC, 0o400))
    km.mount(source, staged, None, km.MS_BIND)
    lower = os.open(staged, os.O_PATH | os.O_CLOEXEC)
    try:
        km.mount(source, staged, None, km.MS_BIND)
        tree = km.open_tree("", km.OPEN_TREE_CLONE | km.AT_RECURSIVE
                            | km.AT_EMPTY_PATH, lower)
    finally:
        os.close(lower)
    try:
        km.move_mount(tree, km.AT_FDCWD, anchor)
    finally:
        os.close(tree)


def _make_anchors(files_dir: str, mount_dir: str) -> None:
    """A small shared tmpfs at ``files_dir`` with an empty file for each
    view file the service at ``mount_dir`` serves."""
    os.makedirs(files_dir, mode=0o755, exist_ok=True)
    km.mount("tmpfs", files_dir, "tmpfs", km.MS_NOSUID | km.MS_NODEV
             | km.MS_NOEXEC, "mode=755,size=64k")
    km.mount(None, files_dir, None, km.MS_SHARED)
    for rel in VIEW_FILES:
        if os.path.exists(os.path.join(mount_dir, rel)):
            path = os.path.join(files_dir, rel)
            os.makedirs(os.path.dirname(path), mode=0o755, exist_ok=True)
            os.close(os.open(path, os.O_CREAT | os.O_WRONLY | os.O_CLOEXEC,
                             0o444))


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
