"""The launcher as a program: detach, take the state dir's lock, serve.

Runs in the fork server (``forkserver.daemon``): host root in the initial
namespaces, one thread (it imports nothing that starts one). It is the fork
server's main: it forks once to detach, then serves.

``python -m pyct_driver.virt.process.forkserver.daemon --state-dir DIR`` forks
once (so its starter, the compute service, reaps the original at once and the
launcher lives in its own session), holds ``DIR/launcher.lock`` so only one
launcher runs per state dir, becomes the child subreaper of the guest inits it
starts, listens on ``DIR/launcher.sock`` (0600) and serves
``launcher.Launcher`` until told to shut down.

It holds a few descriptors per guest (the console pty's master and slave
and the console log: ``DESCRIPTORS_PER_GUEST``), so 2,000 guests need
about 6,000: at start it raises its soft ``RLIMIT_NOFILE`` to the hard
limit (``raise_nofile``; a hard limit below ``NOFILE_FLOOR`` is raised to
it where the kernel lets root, as it usually does). A descriptor's
number is then often past 1024, so nothing in the launcher may use
``select()`` (``kernel.files.wait_readable`` polls); guest inits and
``exec`` sessions set their own limits from the spec, so the raised soft
limit never reaches a guest.

The launcher is the one host-side helper that does not set no_new_privs:
it is inherited across fork and execve by every guest init it starts, and
would break setuid programs (sudo, su, ping) inside guests. Its own
privileges are bounded instead: it runs no other program and takes
requests only on a 0600 socket in a 0700 directory.
"""

from __future__ import annotations

import argparse
import fcntl
import gc
import logging
import os
import resource
import socket
import sys

from pyct_driver.virt.kernel import proc
from pyct_driver.virt.process import spec as spec_mod
from pyct_driver.virt.process.forkserver.launcher import LOG, Launcher
from pyct_driver.virt.process.guestinit import seccomp

# pty master, pty slave, console log; asserted at 600 guests by
# tests/privileged/test_density.py
DESCRIPTORS_PER_GUEST = 3


# descriptors for 20,000 guests; raised to this only where the hard limit
# is lower and the launcher may (CAP_SYS_RESOURCE, within fs.nr_open)
NOFILE_FLOOR = 65536


def raise_nofile() -> tuple[int, int]:
    """Soft RLIMIT_NOFILE up to the hard limit (both up to
    ``NOFILE_FLOOR`` if the hard one is lower); the (soft, hard) now."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    for want in (max(hard, NOFILE_FLOOR), hard):
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (want, want))
            break
        except (ValueError, OSError):  # not allowed: keep the hard one
            continue
    return resource.getrlimit(resource.RLIMIT_NOFILE)


def run(state_dir: str, ready_fd: int | None) -> int:
    def ready(message: str) -> None:
        if ready_fd is not None:
            os.write(ready_fd, message.encode())
            os.close(ready_fd)

    lock = os.open(os.path.join(state_dir, spec_mod.LOCK_NAME),
                   os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        ready("ok already running\n")
        return 0
    try:
        proc.prctl(proc.PR_SET_CHILD_SUBREAPER, 1)
    except OSError as err:
        ready(f"error {err.strerror}\n")
        return 1
    sock_path = os.path.join(state_dir, spec_mod.SOCKET_NAME)
    pid_path = os.path.join(state_dir, spec_mod.PID_NAME)
    try:
        os.unlink(sock_path)  # stale: we hold the lock, nobody serves it
    except FileNotFoundError:
        pass
    listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    old_umask = os.umask(0o177)
    try:
        listener.bind(sock_path)
    finally:
        os.umask(old_umask)
    os.chmod(sock_path, 0o600)
    listener.listen(64)
    listener.setblocking(False)
    with open(pid_path + ".tmp", "w") as f:
        f.write(f"{os.getpid()}\n")
    os.replace(pid_path + ".tmp", pid_path)
    soft, hard = raise_nofile()
    LOG.info("launcher %d serving %s, open files limit %d (room for about "
             "%d guests)", os.getpid(), sock_path, soft,
             soft // DESCRIPTORS_PER_GUEST)
    ready("ok\n")
    try:
        launcher = Launcher(listener)
        seccomp.prepare()
        # Everything imported so far stays put: children forked later
        # (guests, namespace helpers) don't copy it on a collection.
        gc.freeze()
        launcher.serve()
    finally:
        for path in (sock_path, pid_path):
            try:
                os.unlink(path)
            except FileNotFoundError:
                pass
        LOG.info("launcher %d stopped", os.getpid())
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="pyct-launcher")
    parser.add_argument("--state-dir", required=True)
    parser.add_argument("--foreground", action="store_true",
                        help="don't fork into the background")
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, stream=sys.stderr,
        format="%(asctime)s %(process)d %(levelname)s %(message)s")
    state_dir = os.path.abspath(args.state_dir)
    os.makedirs(state_dir, mode=0o700, exist_ok=True)
    os.chdir("/")
    if args.foreground:
        return run(state_dir, None)
    ready_r, ready_w = os.pipe2(os.O_CLOEXEC)
    if os.fork() == 0:
        os.close(ready_r)
        code = 1
        try:
            code = run(state_dir, ready_w)
        except BaseException as err:  # noqa: B902 - tell the starter why
            LOG.exception("launcher failed")
            try:
                os.write(ready_w, f"error {err}\n".encode())
            except OSError:
                pass
        finally:
            os._exit(code)
    os.close(ready_w)
    message = b""
    while chunk := os.read(ready_r, 4096):
        message += chunk
    if not message.startswith(b"ok"):
        sys.stderr.write(f"launcher failed to start: {message.decode()!r}\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
