"""What every pyct console script does first: config, logging, database.

Parses ``--config-file``/``--config-dir`` (defaults: ``/etc/pyct/pyct.conf``
when present), sets up oslo.log, and builds the ``Database`` handle and the
RPC transport the services share; ``wait_for_signal`` is the services'
main loop (SIGTERM/SIGINT stop them, SIGHUP reloads the mutable options).
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import os
import signal
import threading
from typing import Sequence

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver import conf as pyct_conf
from pyct_driver.db.engine import Database
from pyct_driver.rpc import transport as rpc_transport

CONF = pyct_conf.CONF
LOG = logging.getLogger(__name__)
# third-party loggers whose INFO lines say nothing an operator needs
# websockets: the console proxy logs its own listen and attach lines
QUIET_LOGGERS = ("alembic=WARN", "websockets=WARN")
_logging_registered = False


def parse_args(argv: Sequence[str], conf: cfg.ConfigOpts = CONF,
               default_transport: str | None = None,
               log_to_stderr: bool = False) -> cfg.ConfigOpts:
    """Load configuration and logging for a service started with ``argv``
    (``log_to_stderr``: a command whose stdout is its output)."""
    global _logging_registered
    if not _logging_registered:
        logging.register_options(conf)
        _logging_registered = True
    # alembic says which dialect it found on every start, db version too
    logging.set_defaults(default_log_levels=[
        *logging.get_default_log_levels(), *QUIET_LOGGERS])
    if log_to_stderr:
        conf.set_default("use_stderr", True)
    rpc_transport.register_opts(conf)
    if default_transport:
        # a config file's transport_url still wins over this default
        conf.set_default("transport_url", default_transport)
    conf(list(argv[1:]), project="pyct", prog=os.path.basename(
        argv[0]) if argv else "pyct")
    logging.setup(conf, "pyct")
    return conf


def database(conf: cfg.ConfigOpts = CONF) -> Database:
    url = conf.database.connection
    if url.startswith("sqlite:///") and not url.startswith("sqlite:////:"):
        os.makedirs(os.path.dirname(url[len("sqlite:///"):]) or ".",
                    exist_ok=True)
    return Database(url, max_pool_size=conf.database.max_pool_size,
                    debug=conf.database.connection_debug)


def reload_config(conf: cfg.ConfigOpts = CONF) -> None:
    """Re-read the config files and apply the mutable options (SIGHUP):
    ``[DEFAULT] debug`` and ``log_config_append`` through oslo.log's
    mutate hook; a change to any other option is logged and ignored until
    the service restarts."""
    LOG.info("SIGHUP: reloading the configuration files")
    try:
        conf.mutate_config_files()
    except Exception:  # a broken file keeps the running configuration
        LOG.exception("could not reload the configuration; the running "
                      "one stays")
        return
    LOG.info("configuration reloaded (debug=%s)", conf.debug)


def wait_for_signal(conf: cfg.ConfigOpts = CONF) -> int:
    """Block until SIGTERM or SIGINT; return the signal number. SIGHUP
    meanwhile reloads the mutable options (``reload_config``) without
    stopping anything: requests in flight and guests are untouched."""
    got: list[int] = []
    wake = threading.Event()

    def handler(signum: int, _frame: object) -> None:
        got.append(signum)
        wake.set()

    signal.signal(signal.SIGTERM, handler)
    signal.signal(signal.SIGINT, handler)
    signal.signal(signal.SIGHUP, handler)
    while True:
        # a timeout keeps the main thread responsive to signals
        wake.wait(1.0)
        wake.clear()
        while got and got[0] == signal.SIGHUP:
            got.pop(0)
            # here, not in the handler: reloading takes locks and logs
            reload_config(conf)
        if got:
            return got[0]
