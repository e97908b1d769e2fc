"""CRIU on this host: whether ``criu check`` passes, and the checkpoint
and restore of one guest's process tree.

Detected, never assumed: a host without ``criu`` on ``PATH``, or whose
``criu check`` fails (Debian's build on many kernels), has no CRIU and a
suspend freezes the guest instead (``container_suspend``). The check runs
once, when the compute service starts (``Criu`` is built by the driver's
``init_host``), and its outcome is kept with the reason in words. The
dump leaves the guest's network namespace out (``--empty-ns net``): the
driver plugs the guest's ports again after a restore, with the same
addresses and MACs. criu's own log of each run stays in the checkpoint
directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess

from oslo_log import log as logging

from pyct_driver import exception

LOG = logging.getLogger(__name__)
_CHECK_TIMEOUT = 60
_RUN_TIMEOUT = 300
_COMMON = ("--shell-job", "--tcp-established", "--ext-unix-sk",
           "--file-locks", "--empty-ns", "net")


def _tail(text: str, limit: int = 300) -> str:
    lines = [ln for ln in text.strip().splitlines() if ln.strip()]
    return (lines[-1] if lines else "no output")[-limit:]


class Criu:
    """The host's CRIU as found at construction; ``path`` is the PATH to
    look in (the process's by default)."""

    def __init__(self, path: str | None = None) -> None:
        self.binary = shutil.which("criu", path=path)
        self.available, self.reason = self._check()

    def _check(self) -> tuple[bool, str]:
        if not self.binary:
            return False, "criu is not installed"
        try:
            proc = subprocess.run([self.binary, "check"],
                                  capture_output=True, text=True,
                                  timeout=_CHECK_TIMEOUT, check=False)
        except (OSError, subprocess.TimeoutExpired) as err:
            return False, f"criu check could not run: {err}"
        if proc.returncode != 0:
            return False, ("criu check failed: "
                           + _tail(proc.stderr + proc.stdout))
        return True, "criu check passed"

    def _run(self, argv: list[str], what: str, log: str,
             pass_fds: tuple[int, ...] = ()) -> None:
        try:
            proc = subprocess.run(argv, capture_output=True, text=True,
                                  timeout=_RUN_TIMEOUT, check=False,
                                  pass_fds=pass_fds)
        except (OSError, subprocess.TimeoutExpired) as err:
            raise exception.VirtError(
                reason=f"criu {what} could not run: {err}") from err
        if proc.returncode != 0:
            detail = proc.stderr + proc.stdout
            if os.path.exists(log):
                with open(log, errors="replace") as f:
                    detail = f.read()[-4096:]
            raise exception.VirtError(
                reason=f"criu {what} failed ({proc.returncode}): "
                       f"{_tail(detail)}")

    def dump(self, pid: int, images_dir: str) -> None:
        """Checkpoint the tree of ``pid`` into ``images_dir`` (made
        here); on success criu has killed the tree, on failure it left
        it running."""
        if not self.binary:
            raise exception.VirtError(reason="criu is not installed")
        os.makedirs(images_dir, mode=0o700, exist_ok=True)
        self._run([self.binary, "dump", "-t", str(pid), "-D", images_dir,
                   "-o", "dump.log", *_COMMON], "dump",
                  os.path.join(images_dir, "dump.log"))

    def restore(self, images_dir: str, root: str) -> int:
        """Restore the checkpoint in ``images_dir`` onto the mounted root
        ``root``, detached; returns the restored init's host pid."""
        if not self.binary:
            raise exception.VirtError(reason="criu is not installed")
        pidfile = os.path.join(images_dir, "restored.pid")
        with _removed(pidfile):
            self._run([self.binary, "restore", "-D", images_dir, "-d",
                       "--root", root, "--pidfile", pidfile,
                       "-o", "restore.log", *_COMMON], "restore",
                      os.path.join(images_dir, "restore.log"))
            try:
                with open(pidfile) as f:
                    return int(f.read().strip())
            except (OSError, ValueError) as err:
                raise exception.VirtError(
                    reason=f"criu restore left no pid: {err}") from err


class _removed:
    """Remove ``path`` before and after the block."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __enter__(self) -> None:
        self._rm()

    def __exit__(self, *exc: object) -> None:
        self._rm()

    def _rm(self) -> None:
        try:
            os.unlink(self.path)
        except FileNotFoundError:
            pass
