"""What C1 hands its children: the host's files, taken before its mount
namespace is staged, and the mount helper it reaps.

Runs in a child the fork server forked and that has not exec'd yet (C1, the
guest's PID 1 and its mount helper): one thread, host root; it imports
nothing from ``caller`` or ``forkserver``. ``nsinit`` forks them: C1 takes
``HostFiles`` (detached binds of host files) while the host's mount tree is
still in its namespace; the mount helper (a privileged guest's PID 1) mounts
them once the root is attached. ``Started`` is C1's side of the helper: it
reaps it, so a failed spawn leaves no process once the launcher reaped C1.
"""

from __future__ import annotations

import contextlib
import os
import signal

from pyct_driver.virt.process import spec as spec_mod
from pyct_driver.virt.process.guestinit import mounts


class HostFiles:
    """Detached binds of host files, taken before C1's namespace is staged:
    the /dev nodes and console (``mounts.clone_host_files``) and the
    flavor's views (``views.clone_views``)."""

    def __init__(self, dev: dict[str, int],
                 views: list[tuple[str, int]]) -> None:
        self.dev = dev
        self.views = views

    def finish(self, owner: tuple[int, int], guest: spec_mod.GuestSpec,
               finish_guest_side: bool = True) -> None:
        """Host root, cwd = the attached root: /dev, then (unless a
        privileged init's ``_guest_main`` does it) the rest."""
        mounts.prepare_host_side(self.dev, owner)
        if finish_guest_side:
            mounts.finish_guest_side(owner, guest.devpts_max, self.views,
                                     guest.nesting)


class Started:
    """C1's view of the guest's PID 1 (and its mount helper) waiting for
    the root at the gate: ``wait`` reaps the helper (the launcher reaps
    C1 after a failure, so a failed spawn leaves no process), ``abandon``
    kills it (the launcher kills and reaps the PID 1)."""

    def __init__(self, pid: int, helper: int | None = None) -> None:
        self.pid = pid
        self.helper = helper

    def wait(self) -> None:
        """Reap the helper (C1 exits after it: the launcher waits for C1
        only after a failure)."""
        if self.helper is None:
            return
        _, status = os.waitpid(self.helper, 0)
        self.helper = None
        if status != 0:  # it reported why; the init sees EOF and exits
            os._exit(127)

    def abandon(self) -> None:
        if self.helper is not None:
            with contextlib.suppress(OSError):
                os.kill(self.helper, signal.SIGKILL)
                os.waitpid(self.helper, 0)
