"""``pyct-api``: the Nova-compatible REST API on the built-in server.

Serves ``pyct_driver.api.app.create_app`` on ``[api] listen``:``[api] port``
with ``[api] threads`` worker threads. ``application()`` gives the same app
to any WSGI server (uWSGI, gunicorn, mod_wsgi) configured by
``PYCT_CONFIG_FILE``.
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

from pyct_driver.api import app as api_app
from pyct_driver.api import wsgi_server
from pyct_driver.cmd import bootstrap
from pyct_driver.db.engine import Database
from pyct_driver.rpc import client as rpc_client
from pyct_driver.rpc import transport as rpc_transport

LOG = logging.getLogger(__name__)


def build_app(conf: cfg.ConfigOpts, db: Database) -> Callable:
    compute = rpc_client.ComputeClient(
        conf, rpc_transport.get_transport(conf),
        timeout=conf.rpc_response_timeout)
    return api_app.create_app(conf, db, compute)


def application() -> Callable:
    """WSGI entry point for external servers."""
    files = os.environ.get("PYCT_CONFIG_FILE", "/etc/pyct/pyct.conf")
    conf = bootstrap.parse_args(["pyct-api", "--config-file", files])
    return build_app(conf, bootstrap.database(conf))


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


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.parse_args(argv if argv is not None else sys.argv)
    server, _ = serve_in_thread(conf, build_app(conf,
                                                bootstrap.database(conf)))
    try:
        bootstrap.wait_for_signal(conf)
    finally:
        server.shutdown()
        server.server_close()
        rpc_transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
