"""Rescue, unrescue, suspend and resume through ``pyct-all-in-one``.

Usage (root): ``.venv/bin/python tools/bench/rescue.py [--runs 10]
[--json]``

Starts a real ``pyct-all-in-one`` (SQLite, in-process bus, the container
driver, cgroup parent ``pyct-bench-*``) with ``tests/services.Deployment``,
imports busybox, makes m1.tiny (1 vCPU, 512 MiB, 1 GiB) and boots one
server. Each run: POST ``rescue`` (default image: its own), then GET
every 5 ms until RESCUE with no task (the clock stops there: the guest
was shut down, the rescue root made, the guest booted from it with its
root at /mnt and root's password set inside it), then POST ``unrescue``
until ACTIVE (rescue guest stopped, its root deleted, the guest booted
from its own root). Then ``--runs`` suspends (→ SUSPENDED) and resumes
(→ ACTIVE). At exit the server is deleted, the service and its launcher
stopped, and every guest cgroup, mount, loop device and the temp dir
removed.
"""

from __future__ import annotations

import api_boot
import report
from resize import act, deployment, prepare


def main() -> None:
    args = report.parser(__doc__.splitlines()[0], 10).parse_args()
    report.interrupt_on_term()
    tmp, parent, dep = deployment("rescue")
    client = None
    rows: dict[str, dict] = {}
    try:
        image = prepare(dep)
        dep.start("pyct-all-in-one")
        client = api_boot.Client(dep.port)
        sid = api_boot.boot(client, image)["id"]
        act(client, sid, {"rescue": None}, "RESCUE")  # warm-up
        act(client, sid, {"unrescue": None}, "ACTIVE")
        rescue, unrescue, suspend, resume = [], [], [], []
        for _ in range(args.runs):
            rescue.append(act(client, sid, {"rescue": None}, "RESCUE"))
            unrescue.append(act(client, sid, {"unrescue": None}, "ACTIVE"))
        for _ in range(args.runs):
            suspend.append(act(client, sid, {"suspend": None}, "SUSPENDED"))
            resume.append(act(client, sid, {"resume": None}, "ACTIVE"))
        rows = {"rescue: POST -> RESCUE": report.summarize(rescue),
                "unrescue: POST -> ACTIVE": report.summarize(unrescue),
                "suspend: POST -> SUSPENDED": report.summarize(suspend),
                "resume: POST -> ACTIVE": report.summarize(resume)}
    finally:
        api_boot.teardown_deployment(client, dep, tmp, parent)
    report.emit("rescue and suspend through the API", rows,
                {"poll": f"{api_boot.POLL * 1000:.0f} ms"}, args.json)


if __name__ == "__main__":
    main()
