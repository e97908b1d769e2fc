"""``pyct-api``: the Nova-compatible REST API on the built-in server.

Serves ``pyct_driver.api.app.create_app`` on ``[api] listen``:``[api] port``
with ``[api] threads`` worker threads, refusing to start (exit 2) when
``auth_strategy = noauth`` would listen beyond loopback (``check_listen``).
``application()`` gives the same app
to any WSGI server (uWSGI, gunicorn, mod_wsgi) configured by
``PYCT_CONFIG_FILE``. Either way the process also runs the stuck-work
task (``api.stuck_work``).
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import os
import sys
import threading
from typing import Callable

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver import exception
from pyct_driver.api import app as api_app
from pyct_driver.api import auth
from pyct_driver.api import stuck_work
from pyct_driver.api import wsgi_server
from pyct_driver.cmd import bootstrap
from pyct_driver.db.engine import Database
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport

LOG = logging.getLogger(__name__)


def build_app(conf: cfg.ConfigOpts, db: Database) -> Callable:
    compute = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf),
        timeout=conf.rpc_response_timeout, retry=conf.rpc_send_retries)
    return api_app.create_app(conf, db, compute)


def start_stuck_work(conf: cfg.ConfigOpts,
                     db: Database) -> stuck_work.StuckWorkTask:
    """This API process's share of the build and action timeouts
    (``api.stuck_work``); the caller stops it."""
    task = stuck_work.StuckWorkTask(
        db, f"pyct-api@{conf.host}:{os.getpid()}",
        conf.instance_build_timeout, conf.instance_action_timeout,
        conf.stuck_work_interval, conf.service_down_time)
    task.start()
    return task


def application() -> Callable:
    """WSGI entry point for external servers."""
    files = os.environ.get("PYCT_CONFIG_FILE", "/etc/pyct/pyct.conf")
    conf = bootstrap.parse_args(["pyct-api", "--config-file", files])
    db = bootstrap.database(conf)
    # each worker process runs its share: exactly once is the database's
    start_stuck_work(conf, db)
    return build_app(conf, db)


def serve_in_thread(conf: cfg.ConfigOpts, app: Callable
                    ) -> tuple[wsgi_server.ThreadPoolWSGIServer,
                               threading.Thread]:
    server = wsgi_server.make_server(app, conf.api.listen, conf.api.port,
                                     conf.api.threads)
    thread = threading.Thread(target=server.serve_forever, daemon=True,
                              name="pyct-api")
    thread.start()
    LOG.info("API listening on http://%s:%s", conf.api.listen,
             server.server_address[1])
    return server, thread


def check_listen(conf: cfg.ConfigOpts) -> bool:
    """False (and why, on stderr and in the log) if the API must not
    start: noauth on an address other hosts can reach."""
    try:
        auth.check_listen(conf.api.auth_strategy, conf.api.listen,
                          conf.api.allow_noauth_off_loopback)
    except exception.PyctError as err:
        LOG.error("%s", err.message)
        print(f"ERROR: {err.message}", file=sys.stderr)
        return False
    return True


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.parse_args(argv if argv is not None else sys.argv)
    if not check_listen(conf):
        return 2
    db = bootstrap.database(conf)
    server, _ = serve_in_thread(conf, build_app(conf, db))
    task = start_stuck_work(conf, db)
    try:
        bootstrap.wait_for_signal(conf)
    finally:
        task.stop()
        server.shutdown()
        server.server_close()
        rpc_transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
