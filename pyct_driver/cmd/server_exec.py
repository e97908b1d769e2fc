"""``pyct-manage server exec SERVER -- CMD...``: the operator's way into a
guest.

Runs on the compute host of the server (it talks to that host's
launcher), as root. The command runs the way the guest's own processes
do -- guest root in its user namespace, the guest's seccomp filter and
cgroups, no_new_privs, no host descriptor but its three pipes (see
``virt.process.forkserver.guest_exec``) -- so guest root cannot ptrace it into
running denied syscalls or steal host descriptors from it, as it can with
an operator's ``nsenter``. Every use is logged (oslo.log) with the
operator's name, the server, its project and the command, and again with
the exit code. The exit code is the command's (128+N for signal N).
"""

from __future__ import annotations

import getpass
import os
import shlex
import sys
import threading

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver import exception, plugins
from pyct_driver.db import instances as db_instances
from pyct_driver.db.engine import Database
from pyct_driver.virt.process.caller.exec_session import ExecSession

LOG = logging.getLogger("pyct.audit")


def add_parser(subparsers) -> None:
    server = subparsers.add_parser("server", help="servers on this host")
    ssub = server.add_subparsers(dest="action", required=True)
    run_ = ssub.add_parser(
        "exec", help="run a command inside a server on this host, confined "
                     "like the guest's own processes (never use nsenter)")
    run_.add_argument("server", metavar="SERVER", help="uuid or name")
    run_.add_argument("argv", metavar="CMD", nargs="+",
                      help="the command and its arguments, after --")


def _find(db: Database, name_or_uuid: str) -> dict:
    try:
        return db_instances.get(db, name_or_uuid)
    except exception.InstanceNotFound:
        pass
    found = [i for i in db_instances.list_(db) if i["name"] == name_or_uuid]
    if not found:
        raise exception.InstanceNotFound(instance_id=name_or_uuid)
    if len(found) > 1:
        raise exception.Invalid(
            f"{len(found)} servers are named {name_or_uuid}; give a uuid")
    return found[0]


def _copy(src, dst_fd: int) -> None:
    try:
        while chunk := os.read(src.fileno(), 65536):
            view = memoryview(chunk)
            while view:
                view = view[os.write(dst_fd, view):]
    except OSError:
        pass  # the command stopped reading


def _pump(session: ExecSession) -> int:
    """Copy our stdin in and the command's output out until it ends."""
    feeder = threading.Thread(
        target=lambda: (_copy(sys.stdin, session.stdin),
                        session.close_stdin()), daemon=True)
    feeder.start()
    drains = [threading.Thread(target=_drain, args=(src, dst))
              for src, dst in ((session.stdout, sys.stdout),
                               (session.stderr, sys.stderr))]
    for thread in drains:
        thread.start()
    code = session.wait()
    for thread in drains:
        thread.join()
    return code


def _drain(src_fd: int, dst) -> None:
    while chunk := os.read(src_fd, 65536):
        dst.buffer.write(chunk)
        dst.buffer.flush()


def run(conf: cfg.ConfigOpts, db: Database) -> int:
    argv = list(conf.command.argv)
    if argv[:1] == ["--"]:
        argv = argv[1:]
    if not argv:
        raise exception.InvalidInput(reason="give the command after --")
    inst = _find(db, conf.command.server)
    if inst["host"] != conf.host:
        raise exception.Invalid(
            f"server {inst['uuid']} runs on host {inst['host']}, not on "
            f"{conf.host}: run this there")
    if conf.virt_driver != "container":
        raise exception.Invalid("server exec needs the container driver")
    driver = plugins.load_virt_driver(conf.virt_driver, conf)
    operator = os.environ.get("SUDO_USER") or getpass.getuser()
    LOG.info("server exec by %s in server %s (project %s): %s", operator,
             inst["uuid"], inst["project_id"], shlex.join(argv))
    with driver.exec_in_guest(inst["uuid"], argv) as session:
        code = _pump(session)
    LOG.info("server exec by %s in server %s ended: exit %d", operator,
             inst["uuid"], code)
    return code if code >= 0 else 128 - code
