"""Evacuation of a dead host's 20 servers to the other host.

Usage (root): ``.venv/bin/python tools/bench/evacuate.py [--runs 5]
[--servers 20] [--json]``

Runs the two-host cloud of tests/privileged/evac_cloud.py: ``pyct-api``
and one ``pyct-compute`` per namespaced host (container driver, real
guests), over a throw-away PostgreSQL database and RabbitMQ vhost.
``--servers`` servers (m1.tiny: 64 MiB, busybox, each on the project's
network) boot on host-a. Each run kills the compute service of the host
holding them (SIGKILL by pid: the guests live on), forces it down, then
POSTs ``evacuate`` (2.29, no host: the scheduler picks) for every server
back to back and polls the server list every 100 ms: the clock runs from
the first POST until every server is ACTIVE with no task on the other
host (also timed per server, from its own POST). The dead host's service
is then started again (it destroys its copies, timed as "return"), taken
back up, and the next run evacuates the other way. At exit the cloud is
torn down as the test does (servers deleted through the API, services
and launchers stopped, namespaces removed, nothing left).
"""

from __future__ import annotations

import os
import sys
import time

import report

REPO = os.path.dirname(os.path.dirname(os.path.dirname(
    os.path.abspath(__file__))))
sys.path.insert(0, REPO)
from tests.privileged import evac_cloud  # noqa: E402

POLL = 0.1


def _hosts(admin) -> dict[str, tuple]:
    return {s.id: (s.compute_host, s.status, s.task_state)
            for s in admin.compute.servers(all_projects=True)}


def _wait(admin, ids: list[str], want: tuple, timeout: float = 300
          ) -> dict[str, float]:
    """When (perf_counter) each of ``ids`` first showed ``want``."""
    done: dict[str, float] = {}
    deadline = time.perf_counter() + timeout
    while len(done) < len(ids):
        now = time.perf_counter()
        for sid, state in _hosts(admin).items():
            if sid in ids and sid not in done:
                if state[1] == "ERROR":
                    fault = admin.compute.get_server(sid).fault
                    raise RuntimeError(f"{sid} went ERROR: {fault}")
                if state == want:
                    done[sid] = now
        if now > deadline:
            raise RuntimeError(f"{len(ids) - len(done)} servers not "
                               f"{want} after {timeout} s")
        time.sleep(POLL)
    return done


def _boot(cloud, admin, count: int) -> list[str]:
    cloud.set_host("host-b", "--disable")
    conn = cloud.dep.sdk_connection("user")
    image = conn.image.find_image("busybox", ignore_missing=False)
    conn.compute.create_server(
        name="bench", image_id=image.id, flavor_id="1", networks="auto",
        min_count=count, max_count=count)
    ids = [s.id for s in conn.compute.servers()]  # a fresh cloud
    assert len(ids) == count, ids
    _wait(admin, ids, ("host-a", "ACTIVE", None))
    cloud.set_host("host-b", "--enable")
    return ids


def _run(cloud, admin, ids: list[str], source: str, dest: str
         ) -> tuple[float, list[float], float]:
    cloud.kill_compute(source)
    cloud.set_host(source, "--down")
    posted: dict[str, float] = {}
    for sid in ids:
        posted[sid] = time.perf_counter()
        reply = admin.compute.post(f"/servers/{sid}/action",
                                   json={"evacuate": {}},
                                   microversion="2.29")
        if reply.status_code != 200:
            raise RuntimeError(f"evacuate {sid}: {reply.status_code} "
                               f"{reply.text}")
    done = _wait(admin, ids, (dest, "ACTIVE", None))
    total = max(done.values()) - min(posted.values())
    each = [done[sid] - posted[sid] for sid in ids]
    t0 = time.perf_counter()
    cloud.start_compute(source)  # destroys its copies before it serves
    back = time.perf_counter() - t0
    cloud.set_host(source, "--up")
    return total, each, back


def main() -> None:
    p = report.parser(__doc__.splitlines()[0], 5)
    p.add_argument("--servers", type=int, default=20)
    args = p.parse_args()
    report.interrupt_on_term()
    totals: list[float] = []
    each: list[float] = []
    returns: list[float] = []
    room = args.servers * 2
    with evac_cloud.cloud({"quota": {"instances": room, "cores": room,
                                     "ram": room * 64}}) as cloud:
        admin = cloud.dep.sdk_connection("admin")
        ids = _boot(cloud, admin, args.servers)
        where = ("host-a", "host-b")
        for run in range(args.runs):
            source, dest = where if run % 2 == 0 else where[::-1]
            total, per_server, back = _run(cloud, admin, ids, source, dest)
            totals.append(total)
            each.extend(per_server)
            returns.append(back)
            print(f"run {run + 1}: {args.servers} servers {source} -> "
                  f"{dest} in {total:.2f} s; {source}'s return "
                  f"{back:.2f} s", file=sys.stderr)
    report.emit(f"evacuate {args.servers} servers (2 namespaced hosts, "
                "container driver, PostgreSQL + RabbitMQ)",
                {"all servers": report.summarize(totals),
                 "per server": report.summarize(each),
                 "dead host's return": report.summarize(returns)},
                {"servers": args.servers, "runs": args.runs}, args.json,
                unit="s")


if __name__ == "__main__":
    main()
