"""``pyct-manage host evacuate-check HOST``: what an evacuation would move.

Read-only: from the database alone (no API or compute service needed) it
says whether HOST is down (forced down or its heartbeat older than
``service_down_time``: only then does the API evacuate its servers), then
one tab-separated line per server on HOST: uuid, name, vm_state (and
task), the flavor (name, vCPUs, RAM MiB, disk GiB) and where the
scheduler would put it, placing them one after another as an evacuation
of them all would (each counting the ones before): a host, ``NO HOST
FITS``, or ``NOT EVACUABLE`` for a server in a state Nova refuses
(anything but ACTIVE, SHUTOFF or ERROR with no task). The exit status is
0 if every server has a place, else 1; nothing is changed.
"""

from __future__ import annotations

from oslo_config import cfg

from pyct_driver import states
from pyct_driver.api import app as api_app
from pyct_driver.api import scheduler as api_scheduler
from pyct_driver.db import instances as db_instances
from pyct_driver.db.engine import Database

_EVACUABLE = (states.ACTIVE, states.STOPPED, states.ERROR)


def add_to(hsub) -> None:
    """The ``evacuate-check`` action under ``pyct-manage host``."""
    check = hsub.add_parser(
        "evacuate-check", help="list the servers an evacuation of HOST "
                               "would move and where each would go "
                               "(changes nothing)")
    # dest: "host" is [DEFAULT] host's name, which oslo.config keeps apart
    check.add_argument("evacuate_host", metavar="HOST")


def _flavor(inst: dict) -> str:
    flavor = inst["flavor"]
    name = flavor.get("name") or inst["flavor_id"]
    return (f"{name} ({flavor['vcpus']} vCPU, "
            f"{flavor['memory_mb']} MiB, {flavor['root_gb']} GiB)")


def lines(sched: api_scheduler.Scheduler, db: Database,
          host: str) -> tuple[list[str], bool]:
    """The report's lines, and whether every server has a place."""
    state = sched.host_state(host)
    if state == "UNKNOWN":
        return [f"host {host}: no compute service of that name"], False
    down = state == "DOWN"
    out = [f"host {host}: {'down' if down else 'up'}; evacuation "
           + ("allowed" if down else "refused until it is down")]
    servers = sorted(db_instances.list_(db, host=host),
                     key=lambda i: i["created_at"])
    movable = [i for i in servers if i["vm_state"] in _EVACUABLE
               and i["task_state"] is None]
    places = dict(zip((i["uuid"] for i in movable), sched.place_each(
        [i["flavor"] for i in movable], exclude=host)))
    fits = True
    for inst in servers:
        if inst["uuid"] not in places:
            where = "NOT EVACUABLE"
        else:
            where = places[inst["uuid"]] or "NO HOST FITS"
        fits = fits and where not in ("NOT EVACUABLE", "NO HOST FITS")
        status = inst["vm_state"] + (f"/{inst['task_state']}"
                                     if inst["task_state"] else "")
        out.append("\t".join((inst["uuid"], inst["name"], status,
                              _flavor(inst), where)))
    if not servers:
        out.append("no servers")
    return out, fits


def run(conf: cfg.ConfigOpts, db: Database) -> int:
    found, fits = lines(api_app.build_scheduler(conf, db), db,
                        conf.command.evacuate_host)
    for line in found:
        print(line)
    return 0 if fits else 1
