"""The confined way into a running guest: the launcher's ``exec``.

Runs in the fork server (``forkserver.daemon``): host root in the initial
namespaces, one thread (it imports nothing that starts one). ``start`` runs
there; E1 and E2 are single-threaded forks of it, E2 host root until it enters
the guest's user namespace. ``ExecRequest`` (the wire format) is in ``spec``.

An operator's ``nsenter`` leaves a host process in the guest without the
guest's seccomp filter and with host file descriptors: guest root can
ptrace it (and make it run syscalls the filter denies) or steal its
descriptors with pidfd_getfd. ``start`` (in the launcher, single-threaded)
forks E1 instead, which keeps only its stdio pipes and the status pipe,
opens a pidfd of the guest's init (checked against its start time), joins
the guest's pid namespace for its children and forks E2; E1 stays outside
the guest, waits and reports E2's host pid once it exec'd and then its
exit status (or the setup step that failed) as JSON lines on the status
pipe. E2 joins
the guest's cgroups, takes the guest's open-file limit, enters every
namespace of the init through the pidfd -- its user namespace too, where
it becomes guest root -- and then makes itself undumpable (no ptrace, no
pidfd_getfd while it still runs host code), sets no_new_privs, gives a
privileged guest's capability bound, starts a session of its own, installs
the guest's seccomp filter and execs the command, found through the
guest's PATH in the guest's root. What runs is then an ordinary guest
process: guest ids, the guest's filter, no host descriptor beyond its
three pipes.
"""

from __future__ import annotations

import json
import os
from typing import NoReturn

from pyct_driver import exception
from pyct_driver.virt.kernel import proc as sc
from pyct_driver.virt.process.guestinit import caps, nsinit, seccomp, userns
from pyct_driver.virt.process import guest
from pyct_driver.virt.process.spec import ExecRequest

EXEC_NAMESPACES = (sc.CLONE_NEWNS | sc.CLONE_NEWNET | sc.CLONE_NEWUTS
                   | sc.CLONE_NEWIPC | sc.CLONE_NEWCGROUP)
DEFAULT_ENV = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
                       "/sbin:/bin", "HOME": "/root", "TERM": "dumb"}
PR_SET_DUMPABLE = 4
_STATUS_FD = 3


def start(req: ExecRequest) -> tuple[int, list[int]]:
    """Fork E1; returns its pid and the caller's ends (stdin to write,
    stdout and stderr to read, the status pipe to read), to pass on."""
    if not guest.is_same_process(req.pid, req.start_time):
        raise exception.InstanceNotRunning(instance_id=req.uuid)
    pipes = [os.pipe2(os.O_CLOEXEC) for _ in range(4)]
    (in_r, in_w), (out_r, out_w), (err_r, err_w), (st_r, st_w) = pipes
    try:
        pid = sc.fork_bare()
    except OSError:
        for pair in pipes:
            for fd in pair:
                os.close(fd)
        raise
    if pid == 0:
        _e1(req, in_r, out_w, err_w, st_w)
    for fd in (in_r, out_w, err_w, st_w):
        os.close(fd)
    return pid, [in_w, out_r, err_r, st_r]


def _report(message: dict) -> None:
    try:
        os.write(_STATUS_FD, json.dumps(message).encode()[:3000] + b"\n")
    except OSError:
        pass


def _e1(req: ExecRequest, stdin: int, stdout: int, stderr: int,
        status: int) -> NoReturn:
    code = 127
    try:
        # the launcher's signal handling and every one of its descriptors
        # (other guests' consoles, its socket) stay behind
        nsinit.reset_signals()
        for fd, target in ((stdin, 0), (stdout, 1), (stderr, 2),
                           (status, _STATUS_FD)):
            os.dup2(fd, target, inheritable=target < _STATUS_FD)
        sc.close_range(_STATUS_FD + 1, 0xFFFFFFFF)
        pidfd = os.pidfd_open(req.pid)
        if not guest.is_same_process(req.pid, req.start_time):
            _report({"error": "guest init is gone", "step": "pidfd"})
            os._exit(code)
        sc.setns(pidfd, sc.CLONE_NEWPID)  # for E2: the init's own
        fail_r, fail_w = os.pipe2(os.O_CLOEXEC)
        pid = sc.fork_bare()
        if pid == 0:
            os.close(fail_r)
            _e2(req, pidfd, fail_w)
        os.close(fail_w)
        for fd in (0, 1, 2, pidfd):
            os.close(fd)
        failure = b""
        while chunk := os.read(fail_r, 4096):  # EOF: the exec happened
            failure += chunk
        if failure:
            os.waitpid(pid, 0)
            _report(json.loads(failure))
        else:
            _report({"pid": pid})
            _, wait_status = os.waitpid(pid, 0)
            _report({"exit": os.waitstatus_to_exitcode(wait_status)})
        code = 0
    except BaseException as err:  # noqa: B902 - never return to the launcher
        _report({"error": f"{type(err).__name__}: {err}", "step": "exec"})
    os._exit(code)


def _e2(req: ExecRequest, pidfd: int, fail: int) -> NoReturn:
    step = "start"
    try:
        os.close(_STATUS_FD)
        step = "join cgroups"  # what it runs is charged to the guest
        for procs in req.cgroup_procs:
            with open(procs, "w") as f:
                f.write(str(os.getpid()))
        step = "limit open files"
        sc.limit_nofile(*req.nofile)
        step = "enter namespaces"
        sc.setns(pidfd, EXEC_NAMESPACES | (sc.CLONE_NEWUSER if req.userns
                                           else 0))
        os.close(pidfd)
        if req.userns:
            step = "become guest root"
            userns.become_root()
        step = "confine"
        sc.prctl(PR_SET_DUMPABLE, 0)
        sc.set_no_new_privs()
        if req.keep_caps is not None:
            caps.limit_bounding(req.keep_caps)
        os.setsid()
        os.chdir("/")
        step = "seccomp"
        seccomp.install(req.nesting)
        step = f"exec {req.argv[0]}"
        env = dict(req.env or DEFAULT_ENV)
        os.execvpe(req.argv[0], list(req.argv), env)
    except BaseException as err:  # noqa: B902 - never return to E1's code
        message = {"error": f"{step}: {getattr(err, 'strerror', None) or err}",
                   "step": step, "errno": getattr(err, "errno", None)}
        try:
            os.write(fail, json.dumps(message).encode()[:3000])
        except OSError:
            pass
    os._exit(127)
