"""``pyct-manage service list``: the services of this deployment.

One line per registered service (today each ``pyct-compute``), as
``openstack compute service list`` shows them but read straight from the
database, so it works while no API runs: id, binary, host, enabled or
disabled, up or down (a heartbeat within ``[DEFAULT] service_down_time``),
the last heartbeat (UTC) and the reason it was disabled, tab-separated.
"""

from __future__ import annotations

from oslo_config import cfg

from pyct_driver.db import services as db_services
from pyct_driver.db.engine import Database


def add_parser(subparsers) -> None:
    service = subparsers.add_parser("service", help="compute services")
    ssub = service.add_subparsers(dest="action", required=True)
    listing = ssub.add_parser("list", help="list services, up or down")
    # dest: "host" is [DEFAULT] host's name, which oslo.config keeps apart
    listing.add_argument("--host", dest="service_host",
                         help="only the services of this host")


def lines(db: Database, down_time_s: int, host: str | None = None
          ) -> list[str]:
    """The listing's lines, in registration order."""
    out = []
    for svc in db_services.service_list(db):
        if host is not None and svc["host"] != host:
            continue
        seen = svc["last_seen_up"]
        out.append("\t".join((
            str(svc["id"]), svc["binary"], svc["host"],
            "disabled" if svc["disabled"] else "enabled",
            "up" if db_services.is_up(svc, down_time_s) else "down",
            seen.strftime("%Y-%m-%dT%H:%M:%S") if seen else "-",
            svc["disabled_reason"] or "-")))
    return out


def run(conf: cfg.ConfigOpts, db: Database) -> int:
    for line in lines(db, conf.service_down_time, conf.command.service_host):
        print(line)
    return 0
