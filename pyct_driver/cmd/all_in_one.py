"""``pyct-all-in-one``: API, compute service and serial console proxy in
one process.

The development and demo setup: the in-process message bus (``inproc://``,
unless the configuration names a transport) joins the API to a compute
service for ``[DEFAULT] host``; the database is whatever
``[database] connection`` says (SQLite by default). The schema is migrated
on start so a fresh state directory just works. On SIGINT or SIGTERM
(Ctrl-C of ``make run``) it stops serving; if no guest runs it also stops
the launcher and removes the cgroup parent and bridges, else it logs which
guests (and the launcher holding them) keep running and that
``pyct-manage host stop`` (``make stop``) shuts them down.
"""

from __future__ import annotations

# first: eventlet must be unimportable before any oslo library loads
from pyct_driver import no_eventlet  # noqa: F401,I100

import sys

from oslo_log import log as logging

from pyct_driver.cmd import api as api_cmd
from pyct_driver.cmd import bootstrap
from pyct_driver.cmd import compute as compute_cmd
from pyct_driver.cmd import serialproxy as serialproxy_cmd
from pyct_driver.db import migration
from pyct_driver.exception import PyctError
from pyct_driver.rpc import transport as rpc_transport

LOG = logging.getLogger(__name__)


def main(argv: list[str] | None = None) -> int:
    conf = bootstrap.parse_args(argv if argv is not None else sys.argv,
                                default_transport="inproc://")
    if not api_cmd.check_listen(conf):
        return 2
    db = bootstrap.database(conf)
    migration.upgrade(conf.database.connection)
    service = compute_cmd.build_service(conf, db)
    if not compute_cmd.start(service):
        return 1
    server, _ = api_cmd.serve_in_thread(conf, api_cmd.build_app(conf, db))
    task = api_cmd.start_stuck_work(conf, db)
    proxy = None
    if conf.serial_console.enabled:
        proxy = serialproxy_cmd.build(conf, db)
        try:
            proxy.start()
        except PyctError as err:  # the rest works; console URLs fail
            LOG.error("%s", err.message)
            proxy = None
    try:
        bootstrap.wait_for_signal(conf)
    finally:
        task.stop()
        if proxy is not None:
            proxy.stop()
        server.shutdown()
        server.server_close()
        service.stop()
        rpc_transport.cleanup()
    return 0


if __name__ == "__main__":
    sys.exit(main())
