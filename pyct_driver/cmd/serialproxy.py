"""``pyct-serialproxy``: the websocket proxy of guests' serial consoles.

Serves ``[serial_console] serialproxy_host``:``serialproxy_port`` (the
URLs the API hands out start with ``[serial_console] base_url``) until
SIGTERM: ``console.websocketproxy``. It needs the database (the one-time
tokens) and a route to the compute hosts' ``proxyclient_address``.
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import sys

from oslo_config import cfg
from oslo_log import log as logging

from pyct_driver.cmd import bootstrap
from pyct_driver.console.websocketproxy import SerialProxy
from pyct_driver.db.engine import Database
from pyct_driver.exception import PyctError

LOG = logging.getLogger(__name__)


def build(conf: cfg.ConfigOpts, db: Database) -> SerialProxy:
    opts = conf.serial_console
    return SerialProxy(db, opts.serialproxy_host, opts.serialproxy_port,
                       opts.base_url, opts.allowed_origins)


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.parse_args(argv if argv is not None else sys.argv)
    proxy = build(conf, bootstrap.database(conf))
    try:
        proxy.start()
    except PyctError as err:
        LOG.error("%s", err.message)
        return 1
    try:
        bootstrap.wait_for_signal(conf)
    finally:
        proxy.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
