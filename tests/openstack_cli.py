"""The real openstack CLI, run inside the test process.

``run(argv, config_file)`` runs python-openstackclient's own, unmodified
``openstackclient.shell.main(argv)`` — the function the ``openstack``
console script calls — and returns what ``subprocess.run`` would: the exit
code and the text written to stdout and stderr. A process per command costs
2-3 s of interpreter start and plugin loading on a loaded 2-core CI host,
and the suite runs hundreds of commands; in the process it costs
milliseconds. What the CLI changes for the whole process is put back after
each command: the root logger's level and handlers, the levels of the
loggers it quiets, the warning filters, ``OS_CLIENT_CONFIG_FILE``. Its
``--wait`` polls every 0.2 s instead of 5 (a server of the fake driver is
ACTIVE well within a second; the waiting itself is unchanged) and gives up
after ``timeout`` like the process would. Setting ``PYCT_TEST_CLI=process``
runs every command as a process; ``tests.services.Deployment.openstack``
runs each deployment's first command as one anyway, so the installed
console script is proven against every deployment too.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import subprocess
import sys
import time
import warnings
from typing import Iterator
from unittest import mock

IN_PROCESS = os.environ.get("PYCT_TEST_CLI", "in-process") != "process"
POLL = 0.2
_QUIETED = ("requests", "cliff", "stevedore", "iso8601")


def _forget_clients() -> None:
    """Drop the API clients osc-lib caches on the ClientManager *class*
    (``ClientCache`` descriptors: one per process, the first command's
    user's — a process per command never sees another's)."""
    from osc_lib import clientmanager
    from openstackclient.common import clientmanager as osc_manager
    for cls in osc_manager.ClientManager.__mro__:
        for value in vars(cls).values():
            if isinstance(value, clientmanager.ClientCache):
                value._handle = None


@contextlib.contextmanager
def _process_state_kept(config_file: str) -> Iterator[None]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    levels = {name: logging.getLogger(name).level for name in _QUIETED}
    old_env = os.environ.get("OS_CLIENT_CONFIG_FILE")
    os.environ["OS_CLIENT_CONFIG_FILE"] = config_file
    _forget_clients()
    try:
        with warnings.catch_warnings():
            yield
    finally:
        _forget_clients()
        for handler in root.handlers[:]:
            if handler not in handlers:
                root.removeHandler(handler)
                handler.close()
        root.setLevel(level)
        for name, value in levels.items():
            logging.getLogger(name).setLevel(value)
        if old_env is None:
            os.environ.pop("OS_CLIENT_CONFIG_FILE", None)
        else:
            os.environ["OS_CLIENT_CONFIG_FILE"] = old_env


def _fast_waits(deadline: float):
    """osc-lib's status wait with a short poll and the run's deadline."""
    from osc_lib import utils
    real = utils.wait_for_status

    def wait_for_status(status_f, res_id, *args, **kwargs):
        def status(res_id):
            if time.monotonic() > deadline:
                raise TimeoutError(f"--wait for {res_id} ran out of time")
            return status_f(res_id)
        if len(args) < 4:   # sleep_time not given by position
            kwargs["sleep_time"] = POLL
        return real(status, res_id, *args, **kwargs)
    return mock.patch.object(utils, "wait_for_status", wait_for_status)


def run(argv: list[str], config_file: str, timeout: float = 120,
        process: bool = False) -> subprocess.CompletedProcess:
    """``openstack *argv`` with ``OS_CLIENT_CONFIG_FILE=config_file``; as
    a process with ``process`` (or ``PYCT_TEST_CLI=process``)."""
    if process or not IN_PROCESS:
        env = dict(os.environ, OS_CLIENT_CONFIG_FILE=config_file)
        return subprocess.run(
            [os.path.join(os.path.dirname(sys.executable), "openstack"),
             *argv], capture_output=True, text=True, env=env,
            timeout=timeout)
    from openstackclient import shell
    out, err = io.StringIO(), io.StringIO()
    with _process_state_kept(config_file), \
            _fast_waits(time.monotonic() + timeout), \
            contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = shell.main(list(argv))
        except SystemExit as exit_:  # argparse's errors, as in the script
            code = (exit_.code if isinstance(exit_.code, int) else
                    0 if exit_.code is None else 1)
    return subprocess.CompletedProcess(["openstack", *argv], code,
                                       out.getvalue(), err.getvalue())
